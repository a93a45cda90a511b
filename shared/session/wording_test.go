package session

import (
	"context"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/carqueue/carqueue/local/caremu"
	"github.com/carqueue/carqueue/local/caremu/caremutest"
	"github.com/carqueue/carqueue/shared/car"
	"github.com/carqueue/carqueue/shared/queue"
	"github.com/carqueue/carqueue/shared/redistest"
	"github.com/carqueue/carqueue/shared/testkit"
)

// TestErrorsSayEachThingOnce: the cause an admission reports, as built by the real CAR client,
// names the action and the user once each. (It used to read "apply concurrent for u1: apply
// concurrent for u1: car ApplyConcurrent: …": each layer repeated what the one below said.)
func TestErrorsSayEachThingOnce(t *testing.T) {
	for _, c := range []struct{ faults, action string }{
		{"ApplyConcurrent:script=InvalidParameter", "ApplyConcurrent"},
		{"ApplyConcurrent:script=InternalError", "ApplyConcurrent"},
		{"CreateSession:script=InvalidParameterValue", "CreateSession"},
	} {
		t.Run(c.faults, func(t *testing.T) {
			b := redistest.Embedded(t)
			clk := testkit.NewClock()
			_, srv := caremutest.Server(t, caremu.Options{Slots: 1, Now: clk.Now, Faults: c.faults})
			cc := caremutest.Client(t, srv, car.Config{MaxRetries: -1})
			q, err := queue.New(b.Client, queue.Options{QueueID: redistest.Prefix(t, b.Client), Capacity: 1,
				QueueIdleTimeout: time.Minute, HeartbeatTimeout: time.Minute, ReadyTimeout: time.Minute,
				ClaimLease: 30 * time.Second, GoneRetention: time.Minute, RateWindow: time.Minute, Now: clk.Now})
			if err != nil {
				t.Fatal(err)
			}
			s, err := New(q, cc, Options{LockTTL: 30 * time.Second, CARBudget: 25 * time.Second,
				StopWait: 2 * time.Second, ReleaseRetryMin: time.Second, ReleaseRetryMax: time.Minute,
				HeartbeatInterval: time.Second, HeartbeatTimeout: 4 * time.Second, PollMin: time.Second, PollMax: time.Second,
				Logger: slog.New(slog.DiscardHandler), Now: clk.Now})
			if err != nil {
				t.Fatal(err)
			}
			ctx := context.Background()
			if _, err := q.Join(ctx, "u1", queue.Client{IP: "203.0.113.5", Session: "cs"}, queue.Trusted); err != nil {
				t.Fatal(err)
			}
			claim, ok, err := q.ClaimUser(ctx, "u1")
			if err != nil || !ok {
				t.Fatalf("claim: %v %v", ok, err)
			}
			res, err := s.Admit(ctx, claim)
			if err != nil || res.Cause == nil {
				t.Fatalf("admit: %+v, %v", res, err)
			}
			msg := res.Cause.Error()
			if n := strings.Count(msg, c.action); n != 1 {
				t.Errorf("cause %q names %s %d times, want once", msg, c.action, n)
			}
			if n := strings.Count(msg, "u1"); n != 1 {
				t.Errorf("cause %q names the user %d times, want once", msg, n)
			}
			if strings.Contains(strings.ToLower(msg), "apply concurrent") || strings.Contains(strings.ToLower(msg), "create session") {
				t.Errorf("cause %q repeats the action in other words", msg)
			}
		})
	}
}
