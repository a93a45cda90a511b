package reaper

import (
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/carqueue/carqueue/shared/car"
	"github.com/carqueue/carqueue/shared/queue"
	"github.com/carqueue/carqueue/shared/redistest"
)

// chaosUser is the test's model of one client.
type chaosUser struct {
	id      string
	joined  bool
	alive   bool // joined and still polling / heartbeating: must never be dropped
	stopped bool // called /stop
	silent  bool // went away without /stop: must be reaped
}

// TestChaos runs many timer runs with every CAR action failing 10% of the time while clients
// join, poll, heartbeat, stop and vanish concurrently with the reaper (and /start admits
// inline). Throughout: the queue's invariants hold, capacity is never exceeded at the queue or
// at CAR, and no live client is ever dropped. After the faults stop and time passes: every
// leaver is gone, every slot CAR holds belongs to a holder of the queue and vice versa, and
// no slot stays idle while someone waits.
func TestChaos(t *testing.T) {
	for _, b := range redistest.Backends(t) {
		t.Run(b.Name, func(t *testing.T) {
			ctx := context.Background()
			const capacity = 4
			e := newEnv(t, b, envOpts{capacity: capacity, slots: capacity})
			for _, code := range []string{"InternalError", "RequestLimitExceeded", "ResourceUnavailable.Initialization", "FailedOperation.SlowDown"} {
				e.emu.SetErrorRate("*", code, 0.025) // 10% in all, on every action
			}
			e.emu.SetErrorRate(car.ActionCreateSession, "FailedOperation.LockTimeout", 0.05)
			rng := rand.New(rand.NewPCG(7, 11))
			all := make([]*chaosUser, 30)
			for i := range all {
				all[i] = &chaosUser{id: fmt.Sprintf("c%02d", i)}
			}

			// client does what one client would do in one 5-second step.
			client := func(u *chaosUser, roll int) {
				switch {
				case !u.alive:
					if roll%4 != 0 {
						return
					}
					if u.joined { // a leaver comes back once the queue has forgotten its slot
						if st, err := e.q.Poll(ctx, u.id, queue.Client{}, queue.Trusted); err != nil || st.State != queue.StateNone {
							return
						}
					}
					u.joined, u.alive, u.stopped, u.silent = true, true, false, false
					st, err := e.q.Join(ctx, u.id, queue.Client{IP: "198.51.100.7", Session: "cs-" + u.id}, queue.Trusted)
					if err != nil {
						t.Errorf("join %s: %v", u.id, err)
						return
					}
					if st.Position == 1 { // /start admits at once when it can
						if c, ok, err := e.q.ClaimUser(ctx, u.id); err == nil && ok {
							_, _ = e.s.Admit(ctx, c)
						}
					}
				default:
					st, err := e.q.Poll(ctx, u.id, queue.Client{}, queue.Trusted)
					if err != nil {
						t.Errorf("poll %s: %v", u.id, err)
						return
					}
					if st.State == queue.StateNone {
						t.Errorf("live client %s was dropped (reason %q)", u.id, st.Reason)
						return
					}
					// Players leave more often than waiters, so slots keep changing hands.
					holding := st.State.Holds()
					switch {
					case roll%120 == 1 || (holding && roll%12 == 5): // /stop
						u.alive, u.stopped = false, true
						before, err := e.q.Stop(ctx, u.id, queue.Trusted)
						if err != nil {
							t.Errorf("stop %s: %v", u.id, err)
						}
						if before.Holds() {
							_ = e.s.Release(ctx, u.id) // may fail: the reaper retries
						}
					case roll%200 == 2 || (holding && roll%40 == 7): // the tab closes
						u.alive, u.silent = false, true
						e.emu.Disconnect(u.id)
					case st.State == queue.StateReady || st.State == queue.StateActive:
						if _, err := e.q.Heartbeat(ctx, u.id, queue.Trusted); err != nil {
							t.Errorf("heartbeat %s: %v", u.id, err)
						}
					}
				}
			}

			var admitted int
			for step := 0; step < 80; step++ {
				var wg sync.WaitGroup
				wg.Go(func() {
					rep, err := e.r.Run(ctx)
					if err != nil {
						t.Errorf("step %d: reaper: %v", step, err)
					}
					admitted += rep.Admitted
				})
				for _, i := range rng.Perm(len(all)) {
					client(all[i], rng.IntN(240))
				}
				wg.Wait()
				e.checkInvariants()
				if t.Failed() {
					t.FailNow()
				}
				e.clk.Advance(5 * time.Second)
			}
			if admitted == 0 {
				t.Fatalf("no admission in 80 runs")
			}

			// Faults off; live clients keep polling and heartbeating while time passes beyond
			// every timeout (idle, heartbeat, claim lease, CAR lock, clean-up).
			e.emu.ResetFaults()
			for range 12 {
				for _, u := range all {
					if u.alive {
						client(u, 0) // poll or heartbeat
					}
				}
				e.run()
				e.clk.Advance(10 * time.Second)
			}
			for _, u := range all {
				if u.alive {
					client(u, 0)
				}
			}
			e.run()

			stats, err := e.q.Stats(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if stats.Admitting != 0 || stats.Releasing != 0 {
				t.Fatalf("after settling: %+v, want nobody admitting or releasing", stats)
			}
			var holders []string
			var waiting int
			for _, u := range all {
				st := e.status(u.id)
				switch {
				case u.alive && st.State == queue.StateNone:
					t.Errorf("live client %s lost (reason %q)", u.id, st.Reason)
				case !u.alive && u.joined && st.State != queue.StateNone:
					t.Errorf("leaver %s (stopped=%v silent=%v) still %s", u.id, u.stopped, u.silent, st.State)
				}
				switch st.State {
				case queue.StateReady, queue.StateActive:
					holders = append(holders, u.id)
				case queue.StateQueued:
					waiting++
				}
			}
			emu := e.emu.State()
			if len(emu.Locked) != 0 || !slices.Equal(emu.Sessions, holders) {
				t.Fatalf("CAR and queue disagree: CAR locked %v sessions %v, queue holders %v", emu.Locked, emu.Sessions, holders)
			}
			if waiting > 0 && len(holders) != capacity {
				t.Fatalf("%d waiting while only %d of %d slots are held", waiting, len(holders), capacity)
			}
			t.Logf("admitted %d over the run; at the end %d holding, %d waiting", admitted, len(holders), waiting)
		})
	}
}
