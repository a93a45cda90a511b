package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/carqueue/carqueue/shared/redistest"
	"github.com/carqueue/carqueue/shared/testkit"
	"github.com/redis/go-redis/v9"
)

// The end-to-end tests run the real command: `go build` of this package, started as a
// subprocess with flags and environment. shared/app builds its clients once per process from
// the environment, so a subprocess per scenario is also the only way to give each its own
// settings.

var (
	buildOnce sync.Once
	buildPath string
	buildErr  error
)

// TestMain removes the harness built for the tests.
func TestMain(m *testing.M) {
	code := m.Run()
	if buildPath != "" {
		os.RemoveAll(filepath.Dir(buildPath))
	}
	os.Exit(code)
}

// harnessBinary builds the harness once per test run (with -race when the tests have it, so
// the harness itself is race-checked too).
func harnessBinary(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "carqueue-local-test-")
		if err != nil {
			buildErr = err
			return
		}
		buildPath = filepath.Join(dir, "local")
		args := []string{"build", "-o", buildPath}
		if raceEnabled {
			args = append(args, "-race")
		}
		cmd := exec.Command("go", append(args, ".")...)
		if out, err := cmd.CombinedOutput(); err != nil {
			buildErr = fmt.Errorf("go build ./local: %w\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return buildPath
}

// runningHarness is one harness subprocess.
type runningHarness struct {
	Addrs
	Base   string // http://host:port
	Queue  string // its QUEUE_ID, unique per test so a shared Redis is safe
	cmd    *exec.Cmd
	out    *testkit.SyncBuffer
	exited chan error
	killed bool // killed on purpose: cleanup expects no clean exit
}

// clusterRedisAddr returns REDIS_ADDR=<the nodes of REDIS_CLUSTER_ADDRS>, which runs the
// harness on that Redis Cluster, or skips the test when it is unset (fails it under CI=true,
// where .ci/run starts the cluster).
func clusterRedisAddr(t *testing.T) string {
	t.Helper()
	addrs := redistest.ClusterAddrs()
	if len(addrs) == 0 {
		if os.Getenv("CI") == "true" {
			t.Fatal("REDIS_CLUSTER_ADDRS is unset under CI=true: .ci/run starts a Redis Cluster (scripts/redis-cluster.sh)")
		}
		t.Skip("REDIS_CLUSTER_ADDRS unset: start a cluster with scripts/redis-cluster.sh start and set REDIS_CLUSTER_ADDRS=$(scripts/redis-cluster.sh addrs)")
	}
	redistest.Cluster(t) // holds the cluster against a reshaping test for this test's run
	return "REDIS_ADDR=" + strings.Join(addrs, ",")
}

// startLocal starts the harness with flags and extra environment (NAME=value) and waits until
// it serves. On cleanup it stops it with SIGINT, as Ctrl-C would, and checks it exits cleanly.
func startLocal(t *testing.T, flags []string, env ...string) *runningHarness {
	t.Helper()
	bin := harnessBinary(t)
	ready := filepath.Join(t.TempDir(), "ready.json")
	queue := "t" + randomHex(6)
	args := append([]string{"-addr", "127.0.0.1:0", "-emulator-addr", "127.0.0.1:0", "-ready-file", ready}, flags...)
	cmd := exec.Command(bin, args...)
	// Its own TMPDIR, so whatever it leaves behind (even when killed) goes with the test.
	cmd.Env = append(os.Environ(), "QUEUE_ID="+queue, "LOG_LEVEL=warn", "TMPDIR="+t.TempDir())
	cmd.Env = append(cmd.Env, env...)
	h := &runningHarness{Queue: queue, cmd: cmd, out: &testkit.SyncBuffer{}, exited: make(chan error, 1)}
	cmd.Stdout, cmd.Stderr = h.out, h.out
	if err := cmd.Start(); err != nil {
		t.Fatalf("start harness: %v", err)
	}
	go func() { h.exited <- cmd.Wait() }()
	t.Cleanup(func() {
		h.stop(t)
		// On a shared Redis (REDIS_ADDR, the test's own or else the process's), remove this
		// test's queue, and only it.
		addr := os.Getenv("REDIS_ADDR")
		for _, kv := range env {
			if v, ok := strings.CutPrefix(kv, "REDIS_ADDR="); ok {
				addr = v
			}
		}
		if addr != "" {
			// Several addresses: a cluster client, as the functions build (queue.Connect).
			rdb := redis.NewUniversalClient(&redis.UniversalOptions{Addrs: strings.Split(addr, ","), Protocol: 2})
			defer rdb.Close()
			redistest.DeleteMatching(context.Background(), rdb, "*"+queue+"*")
		}
	})

	// Binaries mode first builds seven functions, which takes minutes on a cold build cache.
	wait := 30 * time.Second
	if slices.Contains(flags, modeBinaries) {
		wait = 4 * time.Minute
	}
	deadline := time.Now().Add(wait)
	for {
		if b, err := os.ReadFile(ready); err == nil {
			if err := json.Unmarshal(b, &h.Addrs); err != nil {
				t.Fatalf("ready file: %v", err)
			}
			h.Base = "http://" + h.HTTP
			return h
		}
		select {
		case err := <-h.exited:
			h.exited <- err
			t.Fatalf("harness exited before serving (%v):\n%s", err, h.out.String())
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("harness not ready after %s:\n%s", wait, h.out.String())
		}
	}
}

// stop sends SIGINT and expects a clean exit within the shutdown grace.
func (h *runningHarness) stop(t *testing.T) {
	t.Helper()
	if h.killed {
		<-h.exited
		return
	}
	_ = h.cmd.Process.Signal(syscall.SIGINT)
	select {
	case err := <-h.exited:
		if err != nil {
			t.Errorf("harness did not exit cleanly on SIGINT: %v\n%s", err, h.out.String())
		}
	case <-time.After(15 * time.Second):
		_ = h.cmd.Process.Kill()
		<-h.exited
		t.Errorf("harness did not stop within 15s of SIGINT\n%s", h.out.String())
	}
	if t.Failed() {
		t.Logf("harness output:\n%s", tail(h.out.String(), 8000))
	}
}

// envelope is the contract's answer.
type envelope struct {
	Code      int
	Msg       string
	RequestId string
	Data      map[string]any
}

// post calls a route with a JSON body and decodes the envelope; it fails the test on transport
// errors and on an answer that is not an envelope.
func (h *runningHarness) post(t *testing.T, route string, body any) (int, envelope) {
	t.Helper()
	b, _ := json.Marshal(body)
	req, _ := http.NewRequest(http.MethodPost, h.Base+"/"+route, bytes.NewReader(b))
	return h.do(t, req)
}

func (h *runningHarness) do(t *testing.T, req *http.Request) (int, envelope) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	resp, err := http.DefaultClient.Do(req.WithContext(ctx))
	if err != nil {
		t.Fatalf("%s %s: %v", req.Method, req.URL.Path, err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	var env envelope
	if err := json.Unmarshal(raw, &env); err != nil {
		t.Fatalf("%s %s: HTTP %d, not an envelope: %s", req.Method, req.URL.Path, resp.StatusCode, raw)
	}
	return resp.StatusCode, env
}

// emulatorState fetches GET /emulator/state from the harness.
type emulatorState struct {
	Total, Idle      int
	Locked, Sessions []string
}

func (h *runningHarness) emulatorState(t *testing.T) emulatorState {
	t.Helper()
	resp, err := http.Get(h.Base + "/emulator/state")
	if err != nil {
		t.Fatalf("GET /emulator/state: %v", err)
	}
	defer resp.Body.Close()
	var s emulatorState
	if err := json.NewDecoder(resp.Body).Decode(&s); err != nil {
		t.Fatalf("GET /emulator/state: %v", err)
	}
	return s
}

// eventually retries check until it returns nil or the deadline passes; wall time is real
// here (the harness is a real process), so the deadline is generous and nothing asserts on
// how long it took.
func eventually(t *testing.T, within time.Duration, what string, check func() error) {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		err := check()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: still not true after %s: %v", what, within, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// str reads a string field of Data.
func str(d map[string]any, k string) string { s, _ := d[k].(string); return s }

// num reads a number field of Data.
func num(d map[string]any, k string) float64 { f, _ := d[k].(float64); return f }

var errNotYet = errors.New("not yet")

// statusIs is a check for eventually: the route answers Status want.
func statusIs(t *testing.T, h *runningHarness, route string, body any, want string) func() error {
	return func() error {
		code, env := h.post(t, route, body)
		if code != http.StatusOK || str(env.Data, "Status") != want {
			return fmt.Errorf("%w: /%s answered HTTP %d %s %v", errNotYet, route, code, env.Msg, env.Data)
		}
		return nil
	}
}
