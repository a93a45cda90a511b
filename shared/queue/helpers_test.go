package queue

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/carqueue/carqueue/shared/redistest"
	"github.com/carqueue/carqueue/shared/testkit"
)

// testOptions returns complete Options (New takes no defaults). The values are fixed here, not
// read from shared/config, so the tests' timings do not move when the deployed defaults do;
// tests change the fields they are about. forBackends sets QueueID and Now.
func testOptions(capacity int) Options {
	return Options{
		QueueID:          "q",
		Capacity:         capacity,
		QueueIdleTimeout: 60 * time.Second,
		HeartbeatTimeout: 60 * time.Second,
		ReadyTimeout:     60 * time.Second,
		ClaimLease:       30 * time.Second,
		GoneRetention:    10 * time.Minute,
		RateWindow:       5 * time.Minute,
	}
}

// forBackends runs f as a subtest on every backend with a fresh queue of its own.
func forBackends(t *testing.T, opts Options, f func(t *testing.T, q *Queue, clk *testkit.Clock)) {
	t.Helper()
	for _, b := range redistest.Backends(t) {
		t.Run(b.Name, func(t *testing.T) {
			clk := testkit.NewClock()
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
