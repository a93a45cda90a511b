package reaper

import (
	"context"
	"io"
	"log/slog"
	"sync"
	"testing"

	"github.com/carqueue/carqueue/local/caremu"
	"github.com/carqueue/carqueue/local/caremu/caremutest"
	"github.com/carqueue/carqueue/shared/admission"
	"github.com/carqueue/carqueue/shared/car"
	"github.com/carqueue/carqueue/shared/queue"
	"github.com/carqueue/carqueue/shared/redistest"
	"github.com/carqueue/carqueue/shared/testkit"
	"github.com/redis/go-redis/v9"
)

func quiet() *slog.Logger { return slog.New(slog.NewJSONHandler(io.Discard, nil)) }

// env is a queue on one Redis backend, a CAR emulator over HTTP, the real CAR client signed
// with the emulator's local credentials, and an admitter and reaper over them.
type env struct {
	t        *testing.T
	b        redistest.Backend
	id       string
	clk      *testkit.Clock
	emu      *caremu.Emulator
	car      *car.Client
	q        *queue.Queue
	a        *admission.Admitter
	r        *Reaper
	capacity int
}

type envOpts struct {
	capacity, slots int
	reaper          Options
}

func newEnv(t *testing.T, b redistest.Backend, o envOpts) *env {
	t.Helper()
	clk := testkit.NewClock()
	emu, srv := caremutest.Server(t, caremu.Options{Slots: o.slots, Now: clk.Now})
	cc := caremutest.Client(t, srv, car.Config{})
	e := &env{t: t, b: b, id: redistest.Prefix(t, b.Client), clk: clk, emu: emu, car: cc, capacity: o.capacity}
	e.q = e.newQueue(b.Client)
	e.a = &admission.Admitter{Queue: e.q, CAR: cc, Logger: quiet()}
	ro := o.reaper
	ro.Now, ro.Logger = clk.Now, quiet()
	e.r = New(b.Client, e.id, e.q, e.a, ro)
	return e
}

func (e *env) newQueue(rdb *redis.Client) *queue.Queue {
	q, err := queue.New(rdb, queue.Options{QueueID: e.id, Capacity: e.capacity, Now: e.clk.Now})
	if err != nil {
		e.t.Fatal(err)
	}
	return q
}

// reaperWith builds another reaper on the same queue id with its own Redis client and CAR.
func (e *env) reaperWith(rdb *redis.Client, c admission.CAR, opts Options) *Reaper {
	q := e.newQueue(rdb)
	opts.Now, opts.Logger = e.clk.Now, quiet()
	return New(rdb, e.id, q, &admission.Admitter{Queue: q, CAR: c, Logger: quiet()}, opts)
}

func (e *env) join(users ...string) {
	e.t.Helper()
	for _, u := range users {
		if _, err := e.q.Join(context.Background(), u, admission.Pack("198.51.100.1", "cs-"+u)); err != nil {
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
	st, err := e.q.Poll(context.Background(), u, "")
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
	e.b.Client.Del(context.Background(), "cq:{"+e.id+"}:lock:"+u)
}

// countingCAR wraps a CAR and counts calls per action and user.
type countingCAR struct {
	admission.CAR
	mu    sync.Mutex
	calls map[string]int // "Action/user"
}

func (c *countingCAR) add(k string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.calls == nil {
		c.calls = map[string]int{}
	}
	c.calls[k]++
}

func (c *countingCAR) count(k string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.calls[k]
}

func (c *countingCAR) ApplyConcurrent(ctx context.Context, in car.ApplyConcurrentInput) error {
	c.add("ApplyConcurrent/" + in.UserID)
	c.add("ApplyConcurrent")
	return c.CAR.ApplyConcurrent(ctx, in)
}

func (c *countingCAR) CreateSession(ctx context.Context, in car.CreateSessionInput) (string, error) {
	c.add("CreateSession/" + in.UserID)
	return c.CAR.CreateSession(ctx, in)
}

func (c *countingCAR) DestroySession(ctx context.Context, u string) error {
	c.add("DestroySession/" + u)
	return c.CAR.DestroySession(ctx, u)
}
