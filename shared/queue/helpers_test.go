package queue

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/carqueue/carqueue/shared/redistest"
)

// clock is the fake clock every test drives; it never moves by itself.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock() *clock { return &clock{t: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)} }

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// forBackends runs f as a subtest on every backend with a fresh queue of its own.
func forBackends(t *testing.T, opts Options, f func(t *testing.T, q *Queue, clk *clock)) {
	t.Helper()
	for _, b := range redistest.Backends(t) {
		t.Run(b.Name, func(t *testing.T) {
			clk := newClock()
			o := opts
			o.QueueID = redistest.Prefix(t, b.Client)
			o.Now = clk.Now
			q, err := New(b.Client, o)
			if err != nil {
				t.Fatal(err)
			}
			f(t, q, clk)
			mustInvariants(t, q)
		})
	}
}

func mustInvariants(t testing.TB, q *Queue) {
	t.Helper()
	if err := q.CheckInvariants(context.Background()); err != nil {
		t.Fatalf("invariants broken:\n%v", err)
	}
}

func must[T any](t testing.TB) func(v T, err error) T {
	return func(v T, err error) T {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
}

func noErr(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func wantErrIs(t testing.TB, err, target error) {
	t.Helper()
	if !errors.Is(err, target) {
		t.Fatalf("err = %v, want %v", err, target)
	}
}

func user(i int) string { return fmt.Sprintf("u%03d", i) }

var bg = context.Background()
