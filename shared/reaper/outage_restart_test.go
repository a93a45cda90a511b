package reaper

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/carqueue/carqueue/shared/queue"
	"github.com/carqueue/carqueue/shared/redistest"
	"github.com/redis/go-redis/v9"
)

// ownRedis is a redis-server this test starts, stops and starts again on the same AOF.
type ownRedis struct {
	t    *testing.T
	dir  string
	port int
	cmd  *exec.Cmd
}

// startOwnRedis starts a redis-server with AOF (fsync always) on a free port, or skips when
// there is none on PATH (and fails under CI, which has one).
func startOwnRedis(t *testing.T) *ownRedis {
	t.Helper()
	if _, err := exec.LookPath("redis-server"); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("redis-server is not on PATH; CI must have it")
		}
		t.Skip("redis-server is not on PATH: the restart test needs a real server")
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	r := &ownRedis{t: t, dir: t.TempDir(), port: port}
	r.start()
	t.Cleanup(r.stop)
	return r
}

func (r *ownRedis) addr() string { return fmt.Sprintf("127.0.0.1:%d", r.port) }

func (r *ownRedis) start() {
	r.t.Helper()
	r.cmd = exec.Command("redis-server", "--port", fmt.Sprint(r.port), "--bind", "127.0.0.1",
		"--dir", r.dir, "--appendonly", "yes", "--appendfsync", "always", "--save", "")
	if err := r.cmd.Start(); err != nil {
		r.t.Fatal(err)
	}
	c := redis.NewClient(&redis.Options{Addr: r.addr(), MaxRetries: -1})
	defer c.Close()
	for range 200 { // up to 10s for the server to load its AOF and answer
		if err := c.Ping(context.Background()).Err(); err == nil {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	r.t.Fatal("redis-server did not come up")
}

// stop sends SIGTERM (the server writes its AOF and exits) and waits for it to exit.
func (r *ownRedis) stop() {
	if r.cmd == nil || r.cmd.Process == nil {
		return
	}
	_ = r.cmd.Process.Signal(syscall.SIGTERM)
	_ = r.cmd.Wait()
	r.cmd = nil
}

// A real redis-server stopped for longer than both timeouts (by the queue's clock: the
// injectable clock moves 90s while the server is down) and started again on its AOF: while it
// is down the users' calls and the reaper's runs fail; after it, the first run (before any
// user got through again) finds the outage in the watch that survived the restart and drops
// nobody; the users who kept trying stay, the ones who left are dropped once the hold ends.
func TestRedisRestartedAfterAnOutageLosesNobody(t *testing.T) {
	srv := startOwnRedis(t)
	rdb := redis.NewClient(&redis.Options{Addr: srv.addr(), MaxRetries: -1, DialTimeout: 200 * time.Millisecond})
	t.Cleanup(func() { rdb.Close() })
	ctx := context.Background()
	e := newEnv(t, redistest.Backend{Name: "own redis-server", Client: rdb}, envOpts{capacity: 2, slots: 2})
	e.watchOutages(testOutageGrace)
	e.join("u01", "u02", "u03", "u04", "u05")
	if rep := e.run(); rep.Admitted != 2 {
		t.Fatalf("admit: %+v", rep)
	}
	heartbeat := func(u string) {
		t.Helper()
		if _, err := e.q.Heartbeat(ctx, u, queue.Trusted); err != nil {
			t.Fatal(err)
		}
	}
	stay := func() {
		t.Helper()
		heartbeat("u01")
		wantState(t, e, "u03", queue.StateQueued, 1)
		wantState(t, e, "u04", queue.StateQueued, 2)
	}
	heartbeat("u02")
	stay()
	e.clk.Advance(5 * time.Second)
	e.run()

	srv.stop()
	e.clk.Advance(testIdleTimeout + 30*time.Second)
	if _, err := e.q.Poll(ctx, "u03", queue.Client{}, queue.Trusted); err == nil {
		t.Fatal("a poll succeeded while redis-server was down")
	}
	if _, err := e.r.Run(ctx); err == nil {
		t.Fatal("a reaper run succeeded while redis-server was down")
	}
	srv.start()

	back := e.clk.Now()
	rep := e.run()
	if sum(rep.Reaped) != 0 || !rep.ReapHeldUntil.Equal(back.Add(time.Minute)) {
		t.Fatalf("first run after the restart: %+v, want nobody reaped and reaping held 1m", rep)
	}
	for range 5 {
		e.clk.Advance(10 * time.Second)
		stay()
		if rep := e.run(); sum(rep.Reaped) != 0 {
			t.Fatalf("during the hold: reaped %v", rep.Reaped)
		}
	}
	e.clk.Advance(10 * time.Second)
	stay()
	rep = e.run()
	if rep.Reaped[queue.ReasonIdle] != 1 || rep.Reaped[queue.ReasonHeartbeatTimeout] != 1 {
		t.Fatalf("after the hold: %+v, want u05 idle and u02 heartbeat_timeout", rep)
	}
	wantGone(t, e, "u05", queue.ReasonIdle)
	wantGone(t, e, "u02", queue.ReasonHeartbeatTimeout)
}

// A write refused by a read-only replica (or a loading server) fails the whole script: the
// queue's every state change is one Lua script, so nothing is half done, and the error reaches
// the caller as an error (which the HTTP routes answer with a 503 and Retry-After, like any
// Redis failure: shared/httpapi's sessionErr).
func TestReadOnlyRedisChangesNothing(t *testing.T) {
	srv := startOwnRedis(t)
	rdb := redis.NewClient(&redis.Options{Addr: srv.addr(), MaxRetries: -1})
	t.Cleanup(func() { rdb.Close() })
	ctx := context.Background()
	e := newEnv(t, redistest.Backend{Name: "own redis-server", Client: rdb}, envOpts{capacity: 1, slots: 1})
	e.join("u01", "u02")
	before, err := e.q.Stats(ctx)
	if err != nil {
		t.Fatal(err)
	}
	// A replica of a server that is not there: read-only, and its data stays.
	if err := rdb.Do(ctx, "REPLICAOF", "127.0.0.1", "1").Err(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { rdb.Do(context.Background(), "REPLICAOF", "NO", "ONE") })
	_, err = e.q.Join(ctx, "u03", client("u03"), queue.Trusted)
	if err == nil || !strings.Contains(err.Error(), "READONLY") {
		t.Fatalf("join on a read-only replica: %v, want READONLY", err)
	}
	if _, err := e.r.Run(ctx); err == nil {
		t.Fatal("a reaper run succeeded on a read-only replica")
	}
	if err := rdb.Do(ctx, "REPLICAOF", "NO", "ONE").Err(); err != nil {
		t.Fatal(err)
	}
	after, err := e.q.Stats(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if after.Queued != before.Queued || after.Admitting+after.Ready+after.Active != before.Admitting+before.Ready+before.Active {
		t.Fatalf("stats %+v after refused writes, want as before %+v", after, before)
	}
	if err := e.q.CheckInvariants(ctx); err != nil {
		t.Fatal(err)
	}
}
