package session

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/carqueue/carqueue/shared/car"
	"github.com/carqueue/carqueue/shared/queue"
	"github.com/carqueue/carqueue/shared/redistest"
)

func quietLogger() *slog.Logger { return slog.New(slog.DiscardHandler) }

// testOptions are valid Service options for tests; now may be nil (time.Now).
func testOptions(now func() time.Time) Options {
	return Options{
		LockTTL: 30 * time.Second, CARBudget: 25 * time.Second, RunMode: "RunWithoutClient",
		StopWait: 10 * time.Second, ReleaseRetryMin: 5 * time.Second, ReleaseRetryMax: time.Minute,
		HeartbeatInterval: 15 * time.Second, HeartbeatTimeout: 60 * time.Second,
		PollMin: time.Second, PollMax: 30 * time.Second,
		Logger: quietLogger(), Now: now, Jitter: func() float64 { return 0.5 },
	}
}

func newService(t *testing.T, q Queue, c CAR, o Options) *Service {
	t.Helper()
	s, err := New(q, c, o)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// errNotUsed is what a fake answers for a method the test at hand does not expect.
func errNotUsed(method string) error {
	return fmt.Errorf("fakeQueue.%s: not used by this test", method)
}

// fakeQueue records what the Service asked of the queue. It implements every method of Queue
// explicitly: the admission and release bookkeeping do what the fields say; Poll answers
// state; Stats calls stats when set; the rest answer errNotUsed.
type fakeQueue struct {
	mu          sync.Mutex
	lockBusy    bool
	lockErr     error
	markErr     error
	requeueErr  error
	refuseErr   error
	releasedErr error
	retryErr    error
	state       queue.State
	stats       func(ctx context.Context) (queue.Stats, error)

	locks, unlocks int
	lockTTLs       []time.Duration
	calls          []string
	marked         string
	retries        [][2]time.Duration // base and max of each RetryRelease
}

var _ Queue = (*fakeQueue)(nil)

func (q *fakeQueue) record(s string) {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.calls = append(q.calls, s)
}

func (q *fakeQueue) LockUser(ctx context.Context, userID string, ttl time.Duration) (func(), bool, error) {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.lockTTLs = append(q.lockTTLs, ttl)
	if q.lockErr != nil || q.lockBusy {
		return nil, false, q.lockErr
	}
	q.locks++
	return func() { q.mu.Lock(); q.unlocks++; q.mu.Unlock() }, true, nil
}

// The bookkeeping calls fail on a done context, as the Redis client does: the Service must
// give them a live one even when its caller gave up.

func (q *fakeQueue) MarkReady(ctx context.Context, c queue.Claim, ss string) error {
	q.record("MarkReady")
	if err := ctx.Err(); err != nil {
		return err
	}
	q.mu.Lock()
	q.marked = ss
	q.mu.Unlock()
	return q.markErr
}

func (q *fakeQueue) Requeue(ctx context.Context, c queue.Claim) error {
	q.record("Requeue")
	if err := ctx.Err(); err != nil {
		return err
	}
	return q.requeueErr
}

func (q *fakeQueue) Refuse(ctx context.Context, c queue.Claim, locked bool) error {
	q.record(fmt.Sprintf("Refuse(%v)", locked))
	if err := ctx.Err(); err != nil {
		return err
	}
	return q.refuseErr
}

func (q *fakeQueue) Released(ctx context.Context, userID string) error {
	q.record("Released")
	if err := ctx.Err(); err != nil {
		return err
	}
	return q.releasedErr
}

func (q *fakeQueue) RetryRelease(ctx context.Context, userID string, base, max time.Duration) (int, bool, error) {
	q.record("RetryRelease")
	if err := ctx.Err(); err != nil {
		return 0, false, err
	}
	q.mu.Lock()
	defer q.mu.Unlock()
	q.retries = append(q.retries, [2]time.Duration{base, max})
	if q.retryErr != nil {
		return 0, false, q.retryErr
	}
	return len(q.retries), true, nil
}

func (q *fakeQueue) Poll(ctx context.Context, userID string, c queue.Client, _ queue.Proof) (queue.Status, error) {
	return queue.Status{State: q.state}, nil
}

func (q *fakeQueue) Stats(ctx context.Context) (queue.Stats, error) {
	if q.stats == nil {
		return queue.Stats{}, errNotUsed("Stats")
	}
	return q.stats(ctx)
}

func (q *fakeQueue) JoinETA(ctx context.Context, userID string, c queue.Client, _ queue.Proof, _ time.Duration) (queue.Status, error) {
	return queue.Status{}, errNotUsed("Join")
}

func (q *fakeQueue) ClaimUser(ctx context.Context, userID string) (queue.Claim, bool, error) {
	return queue.Claim{}, false, errNotUsed("ClaimUser")
}

func (q *fakeQueue) Reattach(ctx context.Context, userID string, c queue.Client, _ queue.Proof) (queue.Claim, bool, error) {
	return queue.Claim{}, false, errNotUsed("Reattach")
}

func (q *fakeQueue) Heartbeat(ctx context.Context, userID string, _ queue.Proof) (queue.Status, error) {
	return queue.Status{}, errNotUsed("Heartbeat")
}

func (q *fakeQueue) Expire(ctx context.Context, userID string) (bool, error) {
	return false, errNotUsed("Expire")
}

func (q *fakeQueue) Stop(ctx context.Context, userID string, _ queue.Proof) (queue.State, error) {
	return queue.StateNone, errNotUsed("Stop")
}

func (q *fakeQueue) StateOf(ctx context.Context, userID string) (queue.State, error) {
	return queue.StateNone, errNotUsed("StateOf")
}

func (q *fakeQueue) CARTotalDue(ctx context.Context, every time.Duration) (bool, error) {
	return false, errNotUsed("CARTotalDue")
}

func (q *fakeQueue) SetCARTotal(ctx context.Context, total int) error {
	return errNotUsed("SetCARTotal")
}

// fakeCAR answers each action from a script of errors (nil = success), then succeeds. It
// records the calls, their inputs and the deadlines they were given.
type fakeCAR struct {
	mu        sync.Mutex
	apply     []error
	create    []error
	destroy   []error
	empty     bool // CreateSession succeeds without a ServerSession
	calls     []string
	inputs    []any
	deadlines []time.Time // of each call; zero when it had none
}

var _ CAR = (*fakeCAR)(nil)

func pop(s *[]error) error {
	if len(*s) == 0 {
		return nil
	}
	e := (*s)[0]
	*s = (*s)[1:]
	return e
}

func (f *fakeCAR) note(ctx context.Context, call string, in any) {
	f.calls = append(f.calls, call)
	f.inputs = append(f.inputs, in)
	d, _ := ctx.Deadline()
	f.deadlines = append(f.deadlines, d)
}

func (f *fakeCAR) ApplyConcurrent(ctx context.Context, in car.ApplyConcurrentInput) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.note(ctx, "Apply", in)
	return pop(&f.apply)
}

func (f *fakeCAR) CreateSession(ctx context.Context, in car.CreateSessionInput) (string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.note(ctx, "Create", in)
	if err := pop(&f.create); err != nil {
		return "", err
	}
	if f.empty {
		return "", nil
	}
	return "server-session-" + in.UserID, nil
}

func (f *fakeCAR) DestroySession(ctx context.Context, userID string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.note(ctx, "Destroy", userID)
	return pop(&f.destroy)
}

func (f *fakeCAR) DescribeConcurrentCount(ctx context.Context, projectID string) (car.ConcurrentCount, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.note(ctx, "DescribeConcurrentCount", projectID)
	return car.ConcurrentCount{}, fmt.Errorf("fakeCAR.DescribeConcurrentCount: not used by this test")
}

func carErr(k car.Kind, code string) error {
	return &car.Error{Action: "X", Code: code, Message: "test", Kind: k}
}

// eachBackend runs f against miniredis and, with REDIS_ADDR, the real redis-server.
func eachBackend(t *testing.T, f func(t *testing.T, b redistest.Backend)) {
	for _, b := range redistest.Backends(t) {
		t.Run(b.Name, func(t *testing.T) { f(t, b) })
	}
}

// The operator's side: no controls set; the rest is not used by these tests.
func (q *fakeQueue) Controls(context.Context) (queue.Controls, error)  { return queue.Controls{}, nil }
func (q *fakeQueue) SetPaused(context.Context, bool) error             { return errNotUsed("SetPaused") }
func (q *fakeQueue) SetNotice(context.Context, string) error           { return errNotUsed("SetNotice") }
func (q *fakeQueue) SetCapacity(context.Context, int) error            { return errNotUsed("SetCapacity") }
func (q *fakeQueue) ResetCapacity(context.Context) error               { return errNotUsed("ResetCapacity") }
func (q *fakeQueue) Kick(context.Context, string) (queue.State, error) { return "", errNotUsed("Kick") }
func (q *fakeQueue) Holders(context.Context, int) ([]queue.Holder, error) {
	return nil, errNotUsed("Holders")
}
func (q *fakeQueue) Records(context.Context, string, int) ([]queue.Record, string, error) {
	return nil, "", errNotUsed("Records")
}
func (q *fakeQueue) History(context.Context, time.Time) ([]queue.Minute, error) {
	return nil, errNotUsed("History")
}
func (q *fakeQueue) ETAError(context.Context, time.Time) (float64, int, error) {
	return 0, 0, errNotUsed("ETAError")
}
func (q *fakeQueue) Newest(context.Context, int) ([]queue.Record, error) {
	return nil, errNotUsed("Newest")
}
