package main

import (
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"
)

// shortTimeouts make expiry happen within seconds; the harness is a real process, so the
// checks below wait with deadlines and never assert on elapsed time.
var shortTimeouts = []string{
	"HEARTBEAT_TIMEOUT=2s", "READY_TIMEOUT=2s", "QUEUE_IDLE_TIMEOUT=10s",
	"POLL_MIN_INTERVAL=200ms", "POLL_MAX_INTERVAL=2s",
}

// TestEndToEndOneSlot plays the whole contract over HTTP against `go run ./local` with one
// emulated slot: admission at once, FIFO wait, heartbeat, stop handing the slot on, a reconnect
// inside the window, expiry by the reaper, and no slot leaked at the end.
//
// It runs on the embedded miniredis and on a real redis-server (REDIS_ADDR when set, else one
// the harness starts from PATH), as the harness picks one or the other, and on the Redis
// Cluster of REDIS_CLUSTER_ADDRS (given to the harness as REDIS_ADDR="a,b,c") when set; and in
// the server mode (-functions=server) on both kinds of Redis.
func TestEndToEndOneSlot(t *testing.T) {
	flags := []string{"-capacity", "1", "-tick", "200ms", "-cleanup-delay", "100ms"}
	t.Run("miniredis", func(t *testing.T) {
		// An empty REDIS_ADDR counts as unset, so a CI-provided one does not win here.
		playOneSlot(t, startLocal(t, append(flags, "-redis", "embedded"), append(shortTimeouts, "REDIS_ADDR=")...))
	})
	t.Run("redis-server", func(t *testing.T) {
		if os.Getenv("REDIS_ADDR") == "" {
			if _, err := exec.LookPath("redis-server"); err != nil {
				t.Skip("no REDIS_ADDR and no redis-server on PATH")
			}
		}
		playOneSlot(t, startLocal(t, append(flags, "-redis", "server"), shortTimeouts...))
	})
	t.Run("redis-cluster", func(t *testing.T) {
		playOneSlot(t, startLocal(t, flags, append(shortTimeouts, clusterRedisAddr(t))...))
	})
	// The server mode (functions/web's handler and in-process reaper timer) plays the same
	// contract: the reaper that admits, expires and releases here is the server's own.
	t.Run("server-mode", func(t *testing.T) {
		playOneSlot(t, startLocal(t, append(flags, "-functions", "server", "-redis", "embedded"), append(shortTimeouts, "REDIS_ADDR=")...))
	})
	t.Run("server-mode-redis-server", func(t *testing.T) {
		if os.Getenv("REDIS_ADDR") == "" {
			if _, err := exec.LookPath("redis-server"); err != nil {
				t.Skip("no REDIS_ADDR and no redis-server on PATH")
			}
		}
		playOneSlot(t, startLocal(t, append(flags, "-functions", "server", "-redis", "server"), shortTimeouts...))
	})
}

func playOneSlot(t *testing.T, h *runningHarness) {
	a, b := "a-"+h.Queue, "b-"+h.Queue

	// A arrives to an empty line and a free slot: Ready in the same answer.
	code, env := h.post(t, "start", map[string]any{"UserId": a, "ClientSession": "cs-a1", "RequestId": "req-a"})
	if code != http.StatusOK || env.Code != 0 || str(env.Data, "Status") != "Ready" {
		t.Fatalf("A /start = HTTP %d %+v, want Ready", code, env)
	}
	if env.RequestId != "req-a" {
		t.Errorf("RequestId = %q, want the caller's req-a echoed", env.RequestId)
	}
	ticketA := str(env.Data, "Ticket")
	if ticketA == "" || str(env.Data, "ServerSession") == "" {
		t.Fatalf("A /start Data = %v, want a Ticket and a ServerSession", env.Data)
	}

	// B waits at the head of the line.
	_, env = h.post(t, "start", map[string]any{"UserId": b, "ClientSession": "cs-b1"})
	if str(env.Data, "Status") != "Queued" || num(env.Data, "Position") != 1 || num(env.Data, "QueueLength") != 1 || num(env.Data, "NextPollMs") <= 0 {
		t.Fatalf("B /start Data = %v, want Queued at Position 1 of 1 with NextPollMs", env.Data)
	}
	ticketB := str(env.Data, "Ticket")

	// A plays: heartbeat makes it Active; CAR has its session.
	_, env = h.post(t, "heartbeat", map[string]any{"UserId": a, "Ticket": ticketA})
	if str(env.Data, "Status") != "Active" || num(env.Data, "NextHeartbeatMs") <= 0 {
		t.Fatalf("A /heartbeat Data = %v, want Active with NextHeartbeatMs", env.Data)
	}
	if s := h.emulatorState(t); !slices.Contains(s.Sessions, a) {
		t.Fatalf("emulator sessions = %v, want A's", s.Sessions)
	}

	// Tickets are bound to their user.
	if code, _ := h.post(t, "poll", map[string]any{"UserId": b, "Ticket": ticketA}); code != http.StatusUnauthorized {
		t.Errorf("B /poll with A's ticket = HTTP %d, want 401", code)
	}

	// A stops (twice: idempotent); the slot goes to B.
	for range 2 {
		if _, env = h.post(t, "stop", map[string]any{"UserId": a, "Ticket": ticketA}); str(env.Data, "Status") != "Stopped" {
			t.Fatalf("A /stop Data = %v, want Stopped", env.Data)
		}
	}
	poll := map[string]any{"UserId": b, "Ticket": ticketB}
	eventually(t, 15*time.Second, "B Ready after A stopped", statusIs(t, h, "poll", poll, "Ready"))
	if _, env = h.post(t, "heartbeat", poll); str(env.Data, "Status") != "Active" {
		t.Fatalf("B /heartbeat Data = %v, want Active", env.Data)
	}

	// B drops (no heartbeats) and reconnects inside HEARTBEAT_TIMEOUT: straight back to its
	// slot with a new ClientSession, no queueing.
	_, env = h.post(t, "reconnect", map[string]any{"UserId": b, "Ticket": ticketB, "ClientSession": "cs-b2"})
	if st := str(env.Data, "Status"); st != "Ready" || str(env.Data, "ServerSession") == "" {
		t.Fatalf("B /reconnect inside the window Data = %v, want Ready with a ServerSession", env.Data)
	}

	// B now stays silent: the reaper expires it and CAR's session is destroyed.
	eventually(t, 20*time.Second, "B expired by the reaper", statusIs(t, h, "poll", poll, "Expired"))
	eventually(t, 10*time.Second, "B's CAR session destroyed", func() error {
		if s := h.emulatorState(t); slices.Contains(s.Sessions, b) || slices.Contains(s.Locked, b) {
			return fmt.Errorf("%w: emulator still holds B: %+v", errNotYet, s)
		}
		return nil
	})

	// After the window, /reconnect behaves like /start: B gets the free slot again.
	_, env = h.post(t, "reconnect", map[string]any{"UserId": b, "Ticket": ticketB, "ClientSession": "cs-b3"})
	if st := str(env.Data, "Status"); st != "Ready" && st != "Queued" && st != "Admitting" {
		t.Fatalf("B /reconnect after expiry Data = %v, want it back in line or Ready", env.Data)
	}
	if t2 := str(env.Data, "Ticket"); t2 != "" {
		poll["Ticket"] = t2
	}
	eventually(t, 15*time.Second, "B Ready again", statusIs(t, h, "poll", poll, "Ready"))
	if _, env = h.post(t, "stop", poll); str(env.Data, "Status") != "Stopped" {
		t.Fatalf("B /stop Data = %v, want Stopped", env.Data)
	}

	// Nothing leaked: every emulated slot idle once clean-up is done.
	eventually(t, 10*time.Second, "every emulated slot idle", func() error {
		s := h.emulatorState(t)
		if s.Idle != s.Total || len(s.Locked) > 0 || len(s.Sessions) > 0 {
			return fmt.Errorf("%w: %+v", errNotYet, s)
		}
		return nil
	})

	// /stats needs the admin token and counts what happened.
	req, _ := http.NewRequest(http.MethodGet, h.Base+"/stats", nil)
	if code, _ := h.do(t, req); code != http.StatusUnauthorized {
		t.Errorf("/stats without a token = HTTP %d, want 401", code)
	}
	req, _ = http.NewRequest(http.MethodGet, h.Base+"/stats", nil)
	req.Header.Set("Authorization", "Bearer "+h.AdminToken)
	code, env = h.do(t, req)
	if code != http.StatusOK || num(env.Data, "Capacity") != 1 || num(env.Data, "AdmittedTotal") < 3 || num(env.Data, "ReapedTotal") < 1 {
		t.Errorf("/stats = HTTP %d %v, want Capacity 1, AdmittedTotal >= 3, ReapedTotal >= 1", code, env.Data)
	}
}

// TestHarnessSurface checks what the harness adds around the functions: unknown paths, the
// pages, CORS preflight passing through to the handler, and the emulator's state.
func TestHarnessSurface(t *testing.T) {
	h := startLocal(t, []string{"-capacity", "2"})

	req, _ := http.NewRequest(http.MethodPost, h.Base+"/nope", strings.NewReader("{}"))
	if code, env := h.do(t, req); code != http.StatusNotFound || env.Code == 0 {
		t.Errorf("POST /nope = HTTP %d %+v, want 404 with a non-zero Code", code, env)
	}
	for path, want := range map[string]string{"/": "text/html", "/dashboard": "text/html", "/app.js": "text/javascript", "/app.css": "text/css", "/dashboard.js": "text/javascript"} {
		resp, err := http.Get(h.Base + path)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK || !strings.HasPrefix(resp.Header.Get("Content-Type"), want) {
			t.Errorf("GET %s = %d %q, want 200 %s", path, resp.StatusCode, resp.Header.Get("Content-Type"), want)
		}
	}
	req, _ = http.NewRequest(http.MethodOptions, h.Base+"/start", nil)
	req.Header.Set("Origin", "https://game.example.com")
	req.Header.Set("Access-Control-Request-Method", "POST")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode >= 300 || resp.Header.Get("Access-Control-Allow-Origin") == "" {
		t.Errorf("OPTIONS /start = %d with Allow-Origin %q, want a preflight answer", resp.StatusCode, resp.Header.Get("Access-Control-Allow-Origin"))
	}
	if s := h.emulatorState(t); s.Total != 2 || s.Idle != 2 {
		t.Errorf("emulator state = %+v, want 2 idle slots of 2", s)
	}
}

// TestBinariesMode builds the seven function binaries and drives them over the SCF Go runtime
// protocol: the artefacts that get deployed answer like the in-process handlers.
func TestBinariesMode(t *testing.T) {
	if testing.Short() {
		t.Skip("builds seven binaries")
	}
	h := startLocal(t, []string{"-functions", "binaries", "-capacity", "1", "-tick", "200ms", "-cleanup-delay", "100ms"})
	user := "bin-" + h.Queue
	code, env := h.post(t, "start", map[string]any{"UserId": user, "ClientSession": "cs-1"})
	if code != http.StatusOK || str(env.Data, "Status") != "Ready" {
		t.Fatalf("/start through the binary = HTTP %d %+v, want Ready", code, env)
	}
	ticket := str(env.Data, "Ticket")
	if _, env = h.post(t, "heartbeat", map[string]any{"UserId": user, "Ticket": ticket}); str(env.Data, "Status") != "Active" {
		t.Fatalf("/heartbeat through the binary Data = %v, want Active", env.Data)
	}
	req, _ := http.NewRequest(http.MethodPost, h.Base+"/stats", strings.NewReader("{}"))
	req.Header.Set("Authorization", "Bearer "+h.AdminToken)
	if code, env = h.do(t, req); code != http.StatusOK || num(env.Data, "Capacity") != 1 || num(env.Data, "Active") != 1 {
		t.Fatalf("/stats through the binary = HTTP %d %v, want Capacity 1, Active 1", code, env.Data)
	}
	if _, env = h.post(t, "stop", map[string]any{"UserId": user, "Ticket": ticket}); str(env.Data, "Status") != "Stopped" {
		t.Fatalf("/stop through the binary Data = %v, want Stopped", env.Data)
	}
	eventually(t, 10*time.Second, "every emulated slot idle", func() error {
		if s := h.emulatorState(t); s.Idle != s.Total || len(s.Sessions) > 0 || len(s.Locked) > 0 {
			return fmt.Errorf("%w: %+v", errNotYet, s)
		}
		return nil
	})
}

// A harness killed without a chance to clean up (SIGKILL) must not leave its redis-server
// running: the kernel stops it (Linux's parent-death signal).
func TestKilledHarnessLeavesNoRedisServer(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("parent-death signal is Linux-only")
	}
	if _, err := exec.LookPath("redis-server"); err != nil {
		t.Skip("no redis-server on PATH")
	}
	h := startLocal(t, []string{"-redis", "server"}, "REDIS_ADDR=")
	_ = h.cmd.Process.Kill()
	h.exited <- <-h.exited // leave the exit for the cleanup, which then sees a killed process
	h.killed = true
	eventually(t, 10*time.Second, "redis-server gone with its harness", func() error {
		c, err := net.DialTimeout("tcp", h.Redis, time.Second)
		if err != nil {
			return nil
		}
		c.Close()
		return fmt.Errorf("%w: %s still accepts connections", errNotYet, h.Redis)
	})
}
