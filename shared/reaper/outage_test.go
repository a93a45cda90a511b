package reaper

import (
	"context"
	"testing"
	"time"

	"github.com/carqueue/carqueue/shared/queue"
	"github.com/carqueue/carqueue/shared/redistest"
)

// testOutageGrace is REAPER_OUTAGE_GRACE in these tests (shared/config's default).
const testOutageGrace = 20 * time.Second

// watchOutages rebuilds the env's queue, sessions and reaper with the outage watch on.
func (e *env) watchOutages(grace time.Duration) {
	e.t.Helper()
	o := e.q.Options()
	o.OutageGrace = grace
	q, err := queue.New(e.b.Client, o)
	if err != nil {
		e.t.Fatal(err)
	}
	e.q = q
	e.s = e.newSessions(q, e.car)
	e.r = e.newReaper(q, e.s, nil)
}

// An outage longer than every timeout (Redis down: nobody's poll or heartbeat got through,
// and no reaper run either) is not charged to anyone: the first run after it, even before any
// user got through again, drops nobody, and reaping stays held for one full timeout, in which
// the users who kept trying show up again. A user who really left is still dropped, once the
// hold ends.
func TestOutageIsNotChargedToUsers(t *testing.T) {
	for _, b := range redistest.Backends(t) {
		t.Run(b.Name, func(t *testing.T) {
			ctx := context.Background()
			e := newEnv(t, b, envOpts{capacity: 2, slots: 2})
			e.watchOutages(testOutageGrace)
			// u01 plays and keeps heartbeating, u02 plays and leaves during the outage;
			// u03 and u04 wait and keep polling, u05 waits and leaves during the outage.
			e.join("u01", "u02", "u03", "u04", "u05")
			if rep := e.run(); rep.Admitted != 2 {
				t.Fatalf("admit: %+v", rep)
			}
			stay := func() {
				t.Helper()
				for _, u := range []string{"u01"} {
					if _, err := e.q.Heartbeat(ctx, u, queue.Trusted); err != nil {
						t.Fatal(err)
					}
				}
				wantState(t, e, "u03", queue.StateQueued, 1)
				wantState(t, e, "u04", queue.StateQueued, 2)
			}
			heartbeat := func(u string) {
				t.Helper()
				if _, err := e.q.Heartbeat(ctx, u, queue.Trusted); err != nil {
					t.Fatal(err)
				}
			}
			heartbeat("u01")
			heartbeat("u02")
			stay()
			e.clk.Advance(5 * time.Second)
			if rep := e.run(); !rep.ReapHeldUntil.IsZero() {
				t.Fatalf("a 5s gap held reaping: %+v", rep)
			}

			// The outage: longer than the idle and the heartbeat timeouts (60s each).
			outage := testIdleTimeout + 30*time.Second
			e.clk.Advance(outage)
			back := e.clk.Now()
			rep := e.run()
			holdFor := 60 * time.Second // the longest of idle, heartbeat and ready timeouts
			if want := back.Add(holdFor); !rep.ReapHeldUntil.Equal(want) {
				t.Fatalf("held until %v, want %v (report %+v)", rep.ReapHeldUntil, want, rep)
			}
			if n := sum(rep.Reaped); n != 0 {
				t.Fatalf("the first run after the outage reaped %v", rep.Reaped)
			}
			st, err := e.q.Stats(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if st.ReapHeldUntil != back.Add(holdFor).UnixMilli() {
				t.Fatalf("Stats.ReapHeldUntil %d, want %d", st.ReapHeldUntil, back.Add(holdFor).UnixMilli())
			}
			// Users come back one poll interval or so later; runs go on every 10s.
			for step := 10 * time.Second; step < holdFor; step += 10 * time.Second {
				e.clk.Advance(10 * time.Second)
				stay()
				if rep := e.run(); sum(rep.Reaped) != 0 {
					t.Fatalf("%v after the outage, during the hold: reaped %v", step, rep.Reaped)
				}
			}
			// The hold is over: the users who left are dropped now, the others stay.
			e.clk.Advance(10 * time.Second)
			stay()
			rep = e.run()
			if !rep.ReapHeldUntil.IsZero() || rep.Reaped[queue.ReasonIdle] != 1 || rep.Reaped[queue.ReasonHeartbeatTimeout] != 1 {
				t.Fatalf("after the hold: %+v, want u05 idle and u02 heartbeat_timeout", rep)
			}
			wantGone(t, e, "u05", queue.ReasonIdle)
			wantGone(t, e, "u02", queue.ReasonHeartbeatTimeout)
			// u02's slot went to the head of the line, u03, who kept polling.
			e.run()
			if st := e.status("u01"); st.State != queue.StateActive {
				t.Fatalf("u01: %+v, want still Active", st)
			}
			// u03 and u04 kept their places (or u03 took u02's slot).
			if st := e.status("u03"); st.State == queue.StateNone {
				t.Fatalf("u03: %+v, want still in", st)
			}
			if st := e.status("u04"); st.State == queue.StateNone {
				t.Fatalf("u04: %+v, want still in", st)
			}
			if st, _ := e.q.Stats(ctx); st.ReapHeldUntil != 0 {
				t.Fatalf("Stats.ReapHeldUntil %d after the hold, want 0", st.ReapHeldUntil)
			}
		})
	}
}

// Ordinary gaps are no outage: runs that come every timer period, or a run that died and held
// the next one up for its lease, leave reaping alone, so a user who left is dropped on time.
func TestOrdinaryGapsDoNotHoldReaping(t *testing.T) {
	for _, b := range redistest.Backends(t) {
		t.Run(b.Name, func(t *testing.T) {
			e := newEnv(t, b, envOpts{capacity: 1, slots: 1})
			e.watchOutages(testOutageGrace)
			e.join("u01", "u02") // u01 is admitted, u02 waits; neither is heard of again
			idle := 0
			for i := range 8 { // 7 × 10s: past the idle timeout, every gap under the grace
				rep := e.run()
				if !rep.ReapHeldUntil.IsZero() {
					t.Fatalf("run %d held reaping: %+v", i, rep)
				}
				idle += rep.Reaped[queue.ReasonIdle]
				e.clk.Advance(10 * time.Second)
			}
			if idle != 1 {
				t.Fatalf("idle reaped %d, want u02 reaped on time without a hold", idle)
			}
		})
	}
}

// Without the watch (OutageGrace 0) the same outage drops everyone: what the watch is for.
func TestWithoutTheWatchAnOutageDropsEveryone(t *testing.T) {
	for _, b := range redistest.Backends(t) {
		t.Run(b.Name, func(t *testing.T) {
			e := newEnv(t, b, envOpts{capacity: 1, slots: 1})
			e.join("u01", "u02")
			e.run()
			e.clk.Advance(testIdleTimeout + 30*time.Second)
			rep := e.run()
			if rep.Reaped[queue.ReasonIdle] != 1 || rep.Reaped[queue.ReasonNeverStarted] != 1 {
				t.Fatalf("%+v, want both reaped", rep)
			}
		})
	}
}

func sum(m map[queue.Reason]int) int {
	n := 0
	for _, v := range m {
		n += v
	}
	return n
}
