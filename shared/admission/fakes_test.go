package admission

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/carqueue/carqueue/shared/car"
	"github.com/carqueue/carqueue/shared/queue"
)

// fakeQueue records what admission asked of the queue. Only the methods admission uses do
// anything; the rest are never called.
type fakeQueue struct {
	queue.Interface
	mu          sync.Mutex
	lockBusy    bool
	lockErr     error
	markErr     error
	requeueErr  error
	refuseErr   error
	releasedErr error
	state       queue.State
	locks       int
	unlocks     int
	calls       []string
	marked      string
	refusedLock bool
}

func (q *fakeQueue) record(s string) {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.calls = append(q.calls, s)
}

func (q *fakeQueue) LockUser(ctx context.Context, userID string, ttl time.Duration) (func(), bool, error) {
	if q.lockErr != nil || q.lockBusy {
		return nil, false, q.lockErr
	}
	q.mu.Lock()
	q.locks++
	q.mu.Unlock()
	return func() { q.mu.Lock(); q.unlocks++; q.mu.Unlock() }, true, nil
}

func (q *fakeQueue) MarkReady(ctx context.Context, c queue.Claim, ss string) error {
	q.record("MarkReady")
	q.marked = ss
	return q.markErr
}

func (q *fakeQueue) Requeue(ctx context.Context, c queue.Claim) error {
	q.record("Requeue")
	return q.requeueErr
}

func (q *fakeQueue) Refuse(ctx context.Context, c queue.Claim, locked bool) error {
	q.record(fmt.Sprintf("Refuse(%v)", locked))
	return q.refuseErr
}

func (q *fakeQueue) Poll(ctx context.Context, userID, cs string) (queue.Status, error) {
	return queue.Status{State: q.state}, nil
}

func (q *fakeQueue) Released(ctx context.Context, userID string) error {
	q.record("Released")
	return q.releasedErr
}

// fakeCAR answers each action from a script of errors (nil = success), then succeeds.
type fakeCAR struct {
	mu      sync.Mutex
	apply   []error
	create  []error
	destroy []error
	calls   []string
	inputs  []any
}

func pop(s *[]error) error {
	if len(*s) == 0 {
		return nil
	}
	e := (*s)[0]
	*s = (*s)[1:]
	return e
}

func (f *fakeCAR) ApplyConcurrent(ctx context.Context, in car.ApplyConcurrentInput) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, "Apply")
	f.inputs = append(f.inputs, in)
	return pop(&f.apply)
}

func (f *fakeCAR) CreateSession(ctx context.Context, in car.CreateSessionInput) (string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, "Create")
	f.inputs = append(f.inputs, in)
	if err := pop(&f.create); err != nil {
		return "", err
	}
	return "server-session-" + in.UserID, nil
}

func (f *fakeCAR) DestroySession(ctx context.Context, userID string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, "Destroy")
	return pop(&f.destroy)
}

func carErr(k car.Kind, code string) error {
	return &car.Error{Action: "X", Code: code, Message: "test", Kind: k}
}
