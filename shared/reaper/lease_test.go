package reaper

import (
	"context"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/carqueue/carqueue/shared/car"
	"github.com/carqueue/carqueue/shared/queue"
	"github.com/carqueue/carqueue/shared/redistest"
	"github.com/carqueue/carqueue/shared/session"
)

// stuckCAR holds the first ApplyConcurrent: until its context ends (untilCancelled), or until
// the test closes release. Every ApplyConcurrent is counted per user.
type stuckCAR struct {
	next           session.CAR
	untilCancelled bool
	once           sync.Once
	entered        chan struct{}
	release        chan struct{}

	mu    sync.Mutex
	calls []string
}

func newStuckCAR(next session.CAR, untilCancelled bool) *stuckCAR {
	return &stuckCAR{next: next, untilCancelled: untilCancelled, entered: make(chan struct{}), release: make(chan struct{})}
}

func (c *stuckCAR) ApplyConcurrent(ctx context.Context, in car.ApplyConcurrentInput) error {
	c.mu.Lock()
	c.calls = append(c.calls, in.UserID)
	c.mu.Unlock()
	var err error
	c.once.Do(func() {
		close(c.entered)
		if c.untilCancelled {
			<-ctx.Done()
			err = ctx.Err()
			return
		}
		<-c.release
	})
	if err != nil {
		return err
	}
	return c.next.ApplyConcurrent(ctx, in)
}

func (c *stuckCAR) CreateSession(ctx context.Context, in car.CreateSessionInput) (string, error) {
	return c.next.CreateSession(ctx, in)
}

func (c *stuckCAR) DestroySession(ctx context.Context, u string) error {
	return c.next.DestroySession(ctx, u)
}

func (c *stuckCAR) DescribeConcurrentCount(ctx context.Context, p string) (car.ConcurrentCount, error) {
	return c.next.DescribeConcurrentCount(ctx, p)
}

func (c *stuckCAR) applied() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.Clone(c.calls)
}

// waitEntered waits until the run is inside its first ApplyConcurrent.
func (c *stuckCAR) waitEntered(t *testing.T) {
	t.Helper()
	select {
	case <-c.entered:
	case <-time.After(gaugeGuard):
		t.Fatal("the run never called ApplyConcurrent")
	}
}

// runAsync starts r.Run and returns its result channel.
func runAsync(t *testing.T, r *Reaper) <-chan Report {
	t.Helper()
	done := make(chan Report, 1)
	go func() {
		rep, err := r.Run(context.Background())
		if err != nil {
			t.Errorf("run: %v", err)
		}
		done <- rep
	}()
	return done
}

func waitRun(t *testing.T, done <-chan Report, what string) Report {
	t.Helper()
	select {
	case rep := <-done:
		return rep
	case <-time.After(gaugeGuard):
		t.Fatalf("%s: the run did not stop", what)
		return Report{}
	}
}

// A run that loses its lease while it works (a Redis restart lost the key and another run
// took the lease, or its renewals came too late and another run took over) learns it at its
// next renewal, which cancels it at once: its CAR call in flight is cut off, the user goes
// back to the front, and the run makes no further change, no claim, no CAR call.
func TestRunThatLosesItsLeaseStops(t *testing.T) {
	for _, b := range redistest.Backends(t) {
		for _, tc := range []struct {
			name string
			lose func(e *env)
		}{
			{"taken over after a Redis restart", func(e *env) {
				if err := e.b.Client.Del(context.Background(), e.leaseKey()).Err(); err != nil {
					e.t.Fatal(err)
				}
			}},
			{"ran out before its renewal", func(e *env) { e.clk.Advance(testReaperLease) }},
		} {
			t.Run(b.Name+"/"+tc.name, func(t *testing.T) {
				ctx := context.Background()
				e := newEnv(t, b, envOpts{capacity: 2, slots: 2})
				stuck := newStuckCAR(e.car, true)
				r := e.reaperWith(b.Client, stuck, parallelism(1))
				ts := newTimers()
				r.after = ts.after
				e.join(users(3)...)

				done := runAsync(t, r)
				stuck.waitEntered(t)
				tick := ts.next(t)
				tc.lose(e)
				other, ok, err := e.q.TakeLease(ctx, testReaperLease)
				if err != nil || !ok {
					t.Fatalf("another run takes the lease: ok=%v err=%v", ok, err)
				}
				tick <- e.clk.Now() // the renewal is due
				rep := waitRun(t, done, "lease lost")

				if rep.Ended != EndedLeaseLost || rep.Admitted != 0 || rep.Requeued != 1 {
					t.Fatalf("report %+v, want ended %s with u01 requeued", rep, EndedLeaseLost)
				}
				if got := stuck.applied(); !slices.Equal(got, []string{"u01"}) {
					t.Fatalf("ApplyConcurrent for %v, want u01 only: no change after the lease was lost", got)
				}
				for i, u := range users(3) {
					wantState(t, e, u, queue.StateQueued, int64(i+1))
				}
				e.checkInvariants()
				// Its release at the end did not free the new holder's lease.
				if _, ok, _ := e.q.TakeLease(ctx, testReaperLease); ok {
					t.Fatal("the stopped run released the lease another run holds")
				}
				if err := other.Release(ctx); err != nil {
					t.Fatal(err)
				}
			})
		}
	}
}

// A run that works longer than its lease keeps it: the keepalive extends it every third of
// it, so no other run takes over while it is, say, inside a slow CAR call; when it ends it
// gives the lease back.
func TestRenewalKeepsALongRunsLease(t *testing.T) {
	for _, b := range redistest.Backends(t) {
		t.Run(b.Name, func(t *testing.T) {
			ctx := context.Background()
			e := newEnv(t, b, envOpts{capacity: 2, slots: 2})
			stuck := newStuckCAR(e.car, false)
			r := e.reaperWith(b.Client, stuck, parallelism(1))
			ts := newTimers()
			r.after = ts.after
			e.join(users(3)...)

			done := runAsync(t, r)
			stuck.waitEntered(t)
			tick := ts.next(t)
			const renewals = 9 // three leases' worth
			for i := range renewals {
				e.clk.Advance(testReaperLease / 3)
				tick <- e.clk.Now()
				tick = ts.next(t) // renewed, and waiting for the next one
				if _, ok, err := e.q.TakeLease(ctx, testReaperLease); err != nil || ok {
					t.Fatalf("after %v of work (renewal %d): another run took the lease (err %v)", time.Duration(i+1)*testReaperLease/3, i+1, err)
				}
			}
			close(stuck.release)
			rep := waitRun(t, done, "long run")
			if rep.Ended != EndedIdle || rep.Admitted != 2 || rep.Renewals < renewals {
				t.Fatalf("report %+v, want a run that admitted 2 after %d renewals and ended idle", rep, renewals)
			}
			wantState(t, e, "u01", queue.StateReady, 0)
			wantState(t, e, "u02", queue.StateReady, 0)
			wantState(t, e, "u03", queue.StateQueued, 1)
			if _, ok, err := e.q.TakeLease(ctx, testReaperLease); err != nil || !ok {
				t.Fatalf("lease after the run ended: ok=%v err=%v, want it given back", ok, err)
			}
		})
	}
}

// A run whose holder died without giving its lease back (it was taken and never renewed) is
// taken over by the next timer run as soon as that short lease runs out: a death stalls the
// reaper for REAPER_LEASE at most, whatever REAPER_RUN_TIME is.
func TestDeadHolderIsTakenOverWithinTheLease(t *testing.T) {
	for _, b := range redistest.Backends(t) {
		t.Run(b.Name, func(t *testing.T) {
			ctx := context.Background()
			e := newEnv(t, b, envOpts{capacity: 1, slots: 1})
			// Runs of the production shape: long run time, pauses between rounds.
			r := e.newReaper(e.q, e.s, func(o *Options) { o.RunTime, o.Pause = 45*time.Second, time.Second })
			r.sleep = clocked(e.clk, nil)
			e.join("u01")
			if _, ok, err := e.q.TakeLease(ctx, testReaperLease); err != nil || !ok { // then it dies
				t.Fatalf("take the lease: ok=%v err=%v", ok, err)
			}
			death := e.clk.Now()
			tick := time.Second // the local harness's -tick
			var took time.Duration
			for e.clk.Now().Sub(death) < time.Minute {
				rep, err := r.Run(ctx)
				if err != nil {
					t.Fatal(err)
				}
				if !rep.Skipped {
					took = e.clk.Now().Sub(death) - rep.Duration
					if rep.Admitted != 1 {
						t.Fatalf("the run that took over: %+v, want u01 admitted", rep)
					}
					break
				}
				e.clk.Advance(tick)
				e.join("u01") // keeps polling
			}
			if took == 0 || took > testReaperLease+tick {
				t.Fatalf("took over %v after the death, want within the lease %v + one tick", took, testReaperLease)
			}
			t.Logf("taken over %v after the holder died (lease %v, tick %v)", took, testReaperLease, tick)
			wantState(t, e, "u01", queue.StateReady, 0)
		})
	}
}
