package reaper

import (
	"context"
	"io"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/carqueue/carqueue/local/caremu"
	"github.com/carqueue/carqueue/local/caremu/caremutest"
	"github.com/carqueue/carqueue/shared/car"
	"github.com/carqueue/carqueue/shared/queue"
	"github.com/carqueue/carqueue/shared/redistest"
	"github.com/carqueue/carqueue/shared/session"
	"github.com/carqueue/carqueue/shared/testkit"
	"github.com/redis/go-redis/v9"
)

func quiet() *slog.Logger { return slog.New(slog.NewJSONHandler(io.Discard, nil)) }

// The settings every test runs with unless it says otherwise. Nothing has a default any more,
// so they are spelled out here; the timeouts the tests step the clock past are these.
const (
	testIdleTimeout = 60 * time.Second // QUEUE_IDLE_TIMEOUT
	testClaimLease  = 30 * time.Second // CLAIM_LEASE
	testLockTTL     = 30 * time.Second // CAR_LOCK_TTL
	testReaperLease = 6 * time.Second  // REAPER_LEASE
	// RELEASE_RETRY_MIN and _MAX: a user's failed DestroySession is retried after 1s, then
	// 2s, 4s, … at most 1m.
	testReleaseRetryMin = time.Second
	testReleaseRetryMax = time.Minute
)

// testOptions are the reaper settings of the tests (shared/config's defaults).
func testOptions() Options {
	return Options{Batch: 50, Lease: testReaperLease, Parallel: 8, MaxReapBatches: 200}
}

// env is a queue on one Redis backend, a CAR emulator over HTTP, the real CAR client signed
// with the emulator's local credentials, and a session service and reaper over them.
type env struct {
	t        testing.TB
	b        redistest.Backend
	id       string
	clk      *testkit.Clock
	emu      *caremu.Emulator
	car      *car.Client
	q        *queue.Queue
	s        *session.Service
	r        *Reaper
	capacity int
}

type envOpts struct {
	capacity, slots int
}

func newEnv(t *testing.T, b redistest.Backend, o envOpts) *env {
	t.Helper()
	clk := testkit.NewClock()
	emu, srv := caremutest.Server(t, caremu.Options{Slots: o.slots, Now: clk.Now})
	cc := caremutest.Client(t, srv, car.Config{})
	e := &env{t: t, b: b, id: redistest.Prefix(t, b.Client), clk: clk, emu: emu, car: cc, capacity: o.capacity}
	e.q = e.newQueue(b.Client)
	e.s = e.newSessions(e.q, cc)
	e.r = e.newReaper(e.q, e.s, nil)
	return e
}

func (e *env) newQueue(rdb queue.Scripter) *queue.Queue {
	e.t.Helper()
	q, err := queue.New(rdb, queue.Options{
		QueueID: e.id, Capacity: e.capacity,
		QueueIdleTimeout: testIdleTimeout, HeartbeatTimeout: 60 * time.Second, ReadyTimeout: 60 * time.Second,
		ClaimLease: testClaimLease, GoneRetention: 10 * time.Minute, RateWindow: 5 * time.Minute,
		Now: e.clk.Now,
	})
	if err != nil {
		e.t.Fatal(err)
	}
	return q
}

func (e *env) newSessions(q *queue.Queue, c session.CAR) *session.Service {
	e.t.Helper()
	s, err := session.New(q, c, session.Options{
		LockTTL: testLockTTL, CARBudget: testLockTTL * 5 / 6, StopWait: 2 * time.Second,
		ReleaseRetryMin: testReleaseRetryMin, ReleaseRetryMax: testReleaseRetryMax,
		HeartbeatInterval: 15 * time.Second, HeartbeatTimeout: 60 * time.Second,
		PollMin: time.Second, PollMax: 25 * time.Second,
		Logger: quiet(), Now: e.clk.Now, Jitter: func() float64 { return 0.5 },
	})
	if err != nil {
		e.t.Fatal(err)
	}
	return s
}

// newReaper builds a reaper with testOptions, changed by tune when non-nil.
func (e *env) newReaper(q Queue, s Sessions, tune func(*Options)) *Reaper {
	e.t.Helper()
	o := testOptions()
	if tune != nil {
		tune(&o)
	}
	o.Now, o.Logger = e.clk.Now, quiet()
	r, err := New(q, s, o)
	if err != nil {
		e.t.Fatal(err)
	}
	r.after = never // real-time renewals would race the fake clock
	return r
}

// useCAR rebuilds the env's session service and reaper over c, a wrapper of e.car.
func (e *env) useCAR(c session.CAR) {
	e.t.Helper()
	e.s = e.newSessions(e.q, c)
	e.r = e.newReaper(e.q, e.s, nil)
}

// reaperWith builds another reaper on the same queue id with its own Redis client and CAR.
func (e *env) reaperWith(rdb redis.UniversalClient, c session.CAR, tune func(*Options)) *Reaper {
	e.t.Helper()
	q := e.newQueue(rdb)
	return e.newReaper(q, e.newSessions(q, c), tune)
}

func parallelism(n int) func(*Options) { return func(o *Options) { o.Parallel = n } }

func client(u string) queue.Client { return queue.Client{IP: "198.51.100.1", Session: "cs-" + u} }

func (e *env) join(users ...string) {
	e.t.Helper()
	for _, u := range users {
		if _, err := e.q.Join(context.Background(), u, client(u), queue.Trusted); err != nil {
			e.t.Fatalf("join %s: %v", u, err)
		}
	}
}

func (e *env) run() Report {
	e.t.Helper()
	rep, err := e.r.Run(context.Background())
	if err != nil {
		e.t.Fatalf("reaper run: %v", err)
	}
	e.checkInvariants()
	return rep
}

func (e *env) status(u string) queue.Status {
	e.t.Helper()
	st, err := e.q.Poll(context.Background(), u, queue.Client{}, queue.Trusted)
	if err != nil {
		e.t.Fatalf("poll %s: %v", u, err)
	}
	return st
}

func (e *env) checkInvariants() {
	e.t.Helper()
	if err := e.q.CheckInvariants(context.Background()); err != nil {
		e.t.Fatalf("queue invariants: %v", err)
	}
	st := e.emu.State()
	if n := len(st.Locked) + len(st.Sessions); n > e.capacity {
		e.t.Fatalf("CAR holds %d slots (%v %v), capacity %d", n, st.Locked, st.Sessions, e.capacity)
	}
}

// expireUserLock stands in for the per-user lock's own expiry (a Redis PX TTL in real time)
// after a caller died holding it.
func (e *env) expireUserLock(u string) {
	e.t.Helper()
	if err := e.b.Client.Del(context.Background(), e.q.KeyPrefix()+"lock:"+u).Err(); err != nil {
		e.t.Fatal(err)
	}
}

// countingCAR passes every call to next and counts calls per action and user.
type countingCAR struct {
	next    session.CAR
	mu      sync.Mutex
	calls   map[string]int // "Action/user", and "Action" in all
	applied []string       // users of ApplyConcurrent, in order
}

// order is the users of every ApplyConcurrent so far, in order.
func (c *countingCAR) order() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]string(nil), c.applied...)
}

func (c *countingCAR) add(action, user string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.calls == nil {
		c.calls = map[string]int{}
	}
	c.calls[action+"/"+user]++
	c.calls[action]++
}

func (c *countingCAR) count(k string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.calls[k]
}

func (c *countingCAR) ApplyConcurrent(ctx context.Context, in car.ApplyConcurrentInput) error {
	c.add("ApplyConcurrent", in.UserID)
	c.mu.Lock()
	c.applied = append(c.applied, in.UserID)
	c.mu.Unlock()
	return c.next.ApplyConcurrent(ctx, in)
}

func (c *countingCAR) CreateSession(ctx context.Context, in car.CreateSessionInput) (string, error) {
	c.add("CreateSession", in.UserID)
	return c.next.CreateSession(ctx, in)
}

func (c *countingCAR) DestroySession(ctx context.Context, u string) error {
	c.add("DestroySession", u)
	return c.next.DestroySession(ctx, u)
}

func (c *countingCAR) DescribeConcurrentCount(ctx context.Context, p string) (car.ConcurrentCount, error) {
	c.add("DescribeConcurrentCount", p)
	return c.next.DescribeConcurrentCount(ctx, p)
}

// leaseKey is the reaper lease's Redis key.
func (e *env) leaseKey() string { return e.q.KeyPrefix() + "reaper" }

// timers stands in for the keepalive's timer: every after(d) is handed to the test on armed,
// and fires only when the test sends on it. So the test decides when a renewal happens, and
// the next arming tells it that the renewal finished.
type timers struct{ armed chan chan time.Time }

func newTimers() *timers { return &timers{armed: make(chan chan time.Time, 16)} }

func (ts *timers) after(time.Duration) <-chan time.Time {
	ch := make(chan time.Time, 1)
	ts.armed <- ch
	return ch
}

// next waits for the keepalive to arm its timer (it has renewed, or just started).
func (ts *timers) next(t *testing.T) chan time.Time {
	t.Helper()
	select {
	case ch := <-ts.armed:
		return ch
	case <-time.After(gaugeGuard):
		t.Fatal("the keepalive never armed its timer: no renewal loop?")
		return nil
	}
}

// never is a keepalive timer that never fires: renewals happen only before rounds, as the
// fake clock says they are due.
func never(time.Duration) <-chan time.Time { return nil }

// clocked makes a run's pauses pass on the fake clock at once, calling each (when non-nil)
// after the clock moved, as if the world went on meanwhile.
func clocked(clk *testkit.Clock, each func()) func(context.Context, time.Duration) bool {
	return func(ctx context.Context, d time.Duration) bool {
		if ctx.Err() != nil {
			return false
		}
		clk.Advance(d)
		if each != nil {
			each()
		}
		return ctx.Err() == nil
	}
}
