package clustertest

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/carqueue/carqueue/shared/queue"
	"github.com/redis/go-redis/v9"
)

// workload drives one queue the way the functions do, from several goroutines: users join
// and poll, an admitter claims them, marks them Ready, and stops and releases the oldest.
// Every call is retried until it succeeds, as a client retries an answer 503: what a cluster
// event may cost is time, never a user.
type workload struct {
	t     *testing.T
	q     *queue.Queue
	users []string

	mu        sync.Mutex
	joined    map[string]bool
	stopTried map[string]bool
	outage    time.Duration  // longest time one call kept failing
	kinds     map[string]int // failures by the error's first word (TRYAGAIN, MOVED, EOF…)

	calls, failures atomic.Int64
}

func newWorkload(t *testing.T, q *queue.Queue, n int) *workload {
	w := &workload{t: t, q: q, joined: map[string]bool{}, stopTried: map[string]bool{}, kinds: map[string]int{}}
	for i := range n {
		w.users = append(w.users, fmt.Sprintf("u%03d", i))
	}
	return w
}

// permanent errors are answers, not failures of Redis: retrying them changes nothing.
func permanent(err error) bool {
	return errors.Is(err, queue.ErrInvalid) || errors.Is(err, queue.ErrBadTicket) ||
		errors.Is(err, queue.ErrLeaseLost) || errors.Is(err, queue.ErrNotHolding)
}

// retry calls f until it succeeds, answers a permanent error, or ctx ends (the liveness bound
// of the test: a call that cannot succeed within it is a failure).
func (w *workload) retry(ctx context.Context, what string, f func() error) error {
	var since time.Time
	for {
		w.calls.Add(1)
		err := f()
		if err == nil || permanent(err) {
			if !since.IsZero() {
				w.mu.Lock()
				w.outage = max(w.outage, time.Since(since))
				w.mu.Unlock()
			}
			return err
		}
		w.failures.Add(1)
		w.mu.Lock()
		w.kinds[errorKind(err)]++
		w.mu.Unlock()
		if since.IsZero() {
			since = time.Now()
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%s: still failing when the test's time ran out: %w", what, err)
		case <-time.After(10 * time.Millisecond):
		}
	}
}

// errorKind is the Redis error's code (its first word), or the error after the queue's
// "<op> <user>: " prefix.
func errorKind(err error) string {
	var re redis.Error
	if errors.As(err, &re) {
		if f := strings.Fields(re.Error()); len(f) > 0 {
			return f[0]
		}
	}
	s := err.Error()
	if i := strings.LastIndex(s, ": "); i >= 0 {
		s = s[i+2:]
	}
	return s
}

// run starts the workload, calls disrupt once a third of the users have joined, and returns
// when disrupt has returned and every user has joined, after the workload stopped.
func (w *workload) run(ctx context.Context, disrupt func(ctx context.Context) error) {
	t := w.t
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	stop := make(chan struct{})
	var wg sync.WaitGroup
	var workErr atomic.Value
	fail := func(err error) {
		if err != nil && workErr.CompareAndSwap(nil, err) {
			t.Errorf("workload: %v", err)
		}
	}
	stopped := func() bool {
		select {
		case <-stop:
			return true
		default:
			return false
		}
	}

	todo := make(chan string, len(w.users))
	for _, u := range w.users {
		todo <- u
	}
	close(todo)
	third := make(chan struct{})
	var joinedN atomic.Int64
	for range 2 { // joiners: paced, so that joins go on during the disruption
		wg.Add(1)
		go func() {
			defer wg.Done()
			for u := range todo {
				err := w.retry(ctx, "join "+u, func() error {
					_, err := w.q.Join(ctx, u, queue.Client{IP: "10.0.0.1", Session: "cs-" + u}, queue.Unproven)
					return err
				})
				if err != nil {
					fail(err)
					return
				}
				w.mu.Lock()
				w.joined[u] = true
				w.mu.Unlock()
				if joinedN.Add(1) == int64(len(w.users)/3) {
					close(third)
				}
				time.Sleep(15 * time.Millisecond)
			}
		}()
	}
	for range 2 { // pollers: any joined user who was not stopped
		wg.Add(1)
		go func() {
			defer wg.Done()
			for !stopped() {
				u := w.users[rand.IntN(len(w.users))]
				w.mu.Lock()
				ok := w.joined[u] && !w.stopTried[u]
				w.mu.Unlock()
				if !ok {
					time.Sleep(time.Millisecond)
					continue
				}
				fail(w.retry(ctx, "poll "+u, func() error {
					_, err := w.q.Poll(ctx, u, queue.Client{}, queue.Trusted)
					return err
				}))
				time.Sleep(2 * time.Millisecond)
			}
		}()
	}
	wg.Add(1)
	go func() { // the admitter: claim, Ready, and the oldest holder stops and is released
		defer wg.Done()
		var holders []string
		for !stopped() {
			var claims []queue.Claim
			if err := w.retry(ctx, "claim", func() (err error) {
				claims, err = w.q.Claim(ctx, 2)
				return err
			}); err != nil {
				fail(err)
				return
			}
			for _, c := range claims {
				// ErrLeaseLost after a retry: the first attempt did it; the user holds either way.
				err := w.retry(ctx, "mark ready "+c.UserID, func() error { return w.q.MarkReady(ctx, c, "ss-"+c.UserID) })
				if err != nil && !errors.Is(err, queue.ErrLeaseLost) {
					fail(err)
					return
				}
				holders = append(holders, c.UserID)
			}
			if len(holders) > 2 {
				u := holders[0]
				holders = holders[1:]
				w.mu.Lock()
				w.stopTried[u] = true
				w.mu.Unlock()
				fail(w.retry(ctx, "stop "+u, func() error { _, err := w.q.Stop(ctx, u, queue.Trusted); return err }))
				if err := w.retry(ctx, "released "+u, func() error { return w.q.Released(ctx, u) }); err != nil && !errors.Is(err, queue.ErrNotHolding) {
					fail(err)
				}
			}
			time.Sleep(20 * time.Millisecond) // slower than the joins: a line builds up
		}
	}()

	select {
	case <-third:
	case <-ctx.Done():
	}
	if err := disrupt(ctx); err != nil {
		t.Errorf("disruption: %v", err)
	}
	// Let every user join, and the workload run on the changed cluster for a while.
	for joinedN.Load() < int64(len(w.users)) && ctx.Err() == nil && workErr.Load() == nil {
		time.Sleep(10 * time.Millisecond)
	}
	time.Sleep(200 * time.Millisecond)
	close(stop)
	wg.Wait()
}

// verify checks that nobody was lost: every user who joined is still queued or holds a slot,
// unless the workload stopped it (then the queue remembers it left as stopped), and the
// queue's structures agree with each other.
func (w *workload) verify(ctx context.Context) {
	t := w.t
	lost, queued, holding, left := 0, 0, 0, 0
	for _, u := range w.users {
		var st queue.Status
		if err := w.retry(ctx, "final poll "+u, func() (err error) {
			st, err = w.q.Poll(ctx, u, queue.Client{}, queue.Trusted)
			return err
		}); err != nil {
			t.Fatalf("final poll: %v", err)
		}
		switch {
		case st.State == queue.StateQueued:
			queued++
		case st.State.Holds():
			holding++
		case st.State == queue.StateNone && w.stopTried[u] && st.Reason == queue.ReasonStopped:
			left++
		default:
			lost++
			t.Errorf("user %s lost: state %q reason %q (stopped by the workload: %v)", u, st.State, st.Reason, w.stopTried[u])
		}
	}
	if err := w.q.CheckInvariants(ctx); err != nil {
		t.Errorf("invariants: %v", err)
	}
	if left == 0 || holding == 0 {
		t.Errorf("the workload did too little: %d left, %d holding", left, holding)
	}
	t.Logf("%d users: %d queued, %d holding, %d left, %d lost; %d calls, %d failed and retried, longest outage of one call %s; failures by kind %v",
		len(w.users), queued, holding, left, lost, w.calls.Load(), w.failures.Load(), w.outage.Round(time.Millisecond), w.kinds)
}
