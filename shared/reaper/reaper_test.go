package reaper

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/carqueue/carqueue/shared/car"
	"github.com/carqueue/carqueue/shared/queue"
	"github.com/carqueue/carqueue/shared/redistest"
	"github.com/carqueue/carqueue/shared/session"
	"github.com/redis/go-redis/v9"
)

func users(n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("u%02d", i+1)
	}
	return out
}

func wantState(t *testing.T, e *env, u string, want queue.State, pos int64) {
	t.Helper()
	st := e.status(u)
	if st.State != want || (want == queue.StateQueued && st.Position != pos) {
		t.Fatalf("%s: state %q position %d, want %q position %d", u, st.State, st.Position, want, pos)
	}
}

func wantGone(t *testing.T, e *env, u string, reason queue.Reason) {
	t.Helper()
	if st := e.status(u); st.State != queue.StateNone || st.Reason != reason {
		t.Fatalf("%s: %+v, want gone (%s)", u, st, reason)
	}
}

// New takes no defaults: every required setting left zero (or out of range) is an error that
// names the Options field, so a reaper built outside shared/config says what it runs with.
func TestNewRequiresEveryOption(t *testing.T) {
	e := newEnv(t, redistest.Embedded(t), envOpts{capacity: 1, slots: 1})
	for _, tc := range []struct {
		name  string
		tune  func(*Options)
		field string
	}{
		{"zero Batch", func(o *Options) { o.Batch = 0 }, "Options.Batch"},
		{"negative Batch", func(o *Options) { o.Batch = -1 }, "Options.Batch"},
		{"Batch over the queue's bound", func(o *Options) { o.Batch = queue.MaxBatch + 1 }, "Options.Batch"},
		{"zero Lease", func(o *Options) { o.Lease = 0 }, "Options.Lease"},
		{"negative Lease", func(o *Options) { o.Lease = -time.Second }, "Options.Lease"},
		{"Lease too short to renew", func(o *Options) { o.Lease = time.Millisecond }, "Options.Lease"},
		{"negative RunTime", func(o *Options) { o.RunTime = -time.Second }, "Options.RunTime"},
		{"negative Pause", func(o *Options) { o.Pause = -time.Second }, "Options.Pause"},
		{"Pause without RunTime", func(o *Options) { o.Pause = time.Second }, "Options.RunTime"},
		{"Parallel beyond a claim", func(o *Options) { o.Parallel = queue.MaxClaim + 1 }, "Options.Parallel"},
		{"zero Parallel", func(o *Options) { o.Parallel = 0 }, "Options.Parallel"},
		{"zero MaxReapBatches", func(o *Options) { o.MaxReapBatches = 0 }, "Options.MaxReapBatches"},
		{"negative MaxAdmit", func(o *Options) { o.MaxAdmit = -1 }, "Options.MaxAdmit"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			o := testOptions()
			tc.tune(&o)
			r, err := New(e.q, e.s, o)
			if err == nil || r != nil {
				t.Fatalf("New(%+v) = %v, %v; want an error", o, r, err)
			}
			if !strings.Contains(err.Error(), tc.field) {
				t.Fatalf("error %q does not name %s", err, tc.field)
			}
		})
	}
	t.Run("nil queue or sessions", func(t *testing.T) {
		if _, err := New(nil, e.s, testOptions()); err == nil {
			t.Errorf("New without a queue: no error")
		}
		if _, err := New(e.q, nil, testOptions()); err == nil {
			t.Errorf("New without sessions: no error")
		}
	})
	t.Run("the rest is optional", func(t *testing.T) {
		o := testOptions() // MaxAdmit 0 (unlimited), no Logger, no Now
		if _, err := New(e.q, e.s, o); err != nil {
			t.Fatalf("New(%+v): %v", o, err)
		}
		o.Batch = queue.MaxBatch
		if _, err := New(e.q, e.s, o); err != nil {
			t.Fatalf("New with Batch = queue.MaxBatch: %v", err)
		}
	})
}

func TestRunAdmitsFromTheHead(t *testing.T) {
	for _, b := range redistest.Backends(t) {
		t.Run(b.Name, func(t *testing.T) {
			e := newEnv(t, b, envOpts{capacity: 2, slots: 2})
			e.join(users(3)...)
			rep := e.run()
			if rep.Skipped || rep.Admitted != 2 || rep.Requeued != 0 {
				t.Fatalf("report %+v, want 2 admitted", rep)
			}
			wantState(t, e, "u01", queue.StateReady, 0)
			wantState(t, e, "u02", queue.StateReady, 0)
			wantState(t, e, "u03", queue.StateQueued, 1)
			if st := e.emu.State(); !slices.Equal(st.Sessions, []string{"u01", "u02"}) || len(st.Locked) != 0 {
				t.Fatalf("emulator state %+v", st)
			}
			// Nothing free: the next run claims nobody and calls CAR for nobody.
			if rep := e.run(); rep.Admitted+rep.Requeued != 0 {
				t.Fatalf("second run %+v, want no admission", rep)
			}
		})
	}
}

// A run that finds the lease taken does nothing at all until the holder gives it back or, by
// the queue's clock, the lease ends; and a run gives its own lease back when it ends.
func TestRunSkippedWhileAnotherHoldsTheLease(t *testing.T) {
	for _, b := range redistest.Backends(t) {
		t.Run(b.Name, func(t *testing.T) {
			ctx := context.Background()
			e := newEnv(t, b, envOpts{capacity: 1, slots: 1})
			e.join("u01")
			other, ok, err := e.q.TakeLease(ctx, testReaperLease)
			if err != nil || !ok {
				t.Fatalf("take the lease: ok=%v err=%v", ok, err)
			}
			for _, d := range []time.Duration{0, testReaperLease - time.Second} {
				e.clk.Advance(d)
				e.join("u01") // keeps polling
				rep := e.run()
				if !rep.Skipped || rep.Admitted+rep.Requeued+rep.Released != 0 {
					t.Fatalf("run %v into another's lease: %+v, want skipped", d, rep)
				}
				wantState(t, e, "u01", queue.StateQueued, 1)
				if st := e.emu.State(); len(st.Locked)+len(st.Sessions) != 0 {
					t.Fatalf("a skipped run called CAR: %+v", st)
				}
			}
			if err := other.Release(ctx); err != nil {
				t.Fatal(err)
			}
			if rep := e.run(); rep.Skipped || rep.Admitted != 1 {
				t.Fatalf("run after the lease was given back: %+v, want u01 admitted", rep)
			}
			// The run gave its own lease back.
			mine, ok, err := e.q.TakeLease(ctx, testReaperLease)
			if err != nil || !ok {
				t.Fatalf("lease after a run ended: ok=%v err=%v, want free", ok, err)
			}
			// A holder that never gives it back (it died) blocks runs only until its lease ends
			// by the queue's clock, although Redis' own TTL (real time) has not run out.
			if rep := e.run(); !rep.Skipped {
				t.Fatalf("run inside a dead holder's lease: %+v, want skipped", rep)
			}
			e.clk.Advance(testReaperLease + time.Millisecond)
			if rep := e.run(); rep.Skipped {
				t.Fatalf("run after the dead holder's lease ended was skipped")
			}
			// Its late release must not free the lease of whoever holds it now.
			now, ok, err := e.q.TakeLease(ctx, testReaperLease)
			if err != nil || !ok {
				t.Fatalf("take the lease again: ok=%v err=%v", ok, err)
			}
			if err := mine.Release(ctx); err != nil {
				t.Fatal(err)
			}
			if rep := e.run(); !rep.Skipped {
				t.Fatalf("a stale release freed the current holder's lease: %+v", rep)
			}
			if err := now.Release(ctx); err != nil {
				t.Fatal(err)
			}
		})
	}
}

// blockingCAR holds the first ApplyConcurrent until released, so a test can start a second
// run while the first one is inside CAR.
type blockingCAR struct {
	next             session.CAR
	once             sync.Once
	entered, release chan struct{}
}

func (c *blockingCAR) ApplyConcurrent(ctx context.Context, in car.ApplyConcurrentInput) error {
	c.once.Do(func() {
		close(c.entered)
		<-c.release
	})
	return c.next.ApplyConcurrent(ctx, in)
}

func (c *blockingCAR) CreateSession(ctx context.Context, in car.CreateSessionInput) (string, error) {
	return c.next.CreateSession(ctx, in)
}

func (c *blockingCAR) DestroySession(ctx context.Context, u string) error {
	return c.next.DestroySession(ctx, u)
}

func TestOverlappingRunsDoNotDoubleWork(t *testing.T) {
	for _, b := range redistest.Backends(t) {
		t.Run(b.Name, func(t *testing.T) {
			e := newEnv(t, b, envOpts{capacity: 2, slots: 2})
			counting := &countingCAR{next: e.car}
			e.useCAR(counting)
			blocking := &blockingCAR{next: counting, entered: make(chan struct{}), release: make(chan struct{})}
			first := e.reaperWith(b.Client, blocking, parallelism(1))
			e.join(users(3)...)

			done := make(chan Report)
			go func() {
				rep, err := first.Run(context.Background())
				if err != nil {
					t.Errorf("first run: %v", err)
				}
				done <- rep
			}()
			<-blocking.entered
			second := e.run()
			if !second.Skipped {
				t.Fatalf("second run while the first holds the lease: %+v, want skipped", second)
			}
			close(blocking.release)
			rep := <-done
			if rep.Skipped || rep.Admitted != 2 {
				t.Fatalf("first run %+v, want 2 admitted", rep)
			}
			for _, u := range []string{"u01", "u02"} {
				if n := counting.count("ApplyConcurrent/" + u); n != 1 {
					t.Errorf("ApplyConcurrent for %s called %d times, want 1", u, n)
				}
			}
			if n := counting.count("ApplyConcurrent/u03"); n != 0 {
				t.Errorf("ApplyConcurrent for u03 called %d times, want 0", n)
			}
			// The lease was given back: the next run runs.
			if rep := e.run(); rep.Skipped {
				t.Fatalf("run after the first ended was skipped")
			}
		})
	}
}

// dyingCAR simulates the function instance dying right after ApplyConcurrent succeeded:
// its Redis connection goes away (so the queue is never told and the leases are not given
// back) and CreateSession never reaches CAR.
type dyingCAR struct {
	next session.CAR
	die  func()
}

func (c *dyingCAR) ApplyConcurrent(ctx context.Context, in car.ApplyConcurrentInput) error {
	err := c.next.ApplyConcurrent(ctx, in)
	c.die()
	return err
}

func (c *dyingCAR) CreateSession(context.Context, car.CreateSessionInput) (string, error) {
	return "", context.Canceled
}

func (c *dyingCAR) DestroySession(ctx context.Context, u string) error {
	return c.next.DestroySession(ctx, u)
}

func TestRunKilledAfterApplyConcurrentIsFinishedByTheNextRun(t *testing.T) {
	for _, b := range redistest.Backends(t) {
		t.Run(b.Name, func(t *testing.T) {
			e := newEnv(t, b, envOpts{capacity: 1, slots: 1})
			doomed := b.NewClient()
			dying := e.reaperWith(doomed, &dyingCAR{next: e.car, die: func() { _ = doomed.Close() }}, nil)
			e.join("u01")

			// What the dead run reports is lost with it; only what it left behind matters.
			_, _ = dying.Run(context.Background())
			wantState(t, e, "u01", queue.StateAdmitting, 0)
			if st := e.emu.State(); !slices.Equal(st.Locked, []string{"u01"}) {
				t.Fatalf("emulator after the dying run: %+v, want u01 locked", st)
			}
			// Its lease is still held, but only for the short REAPER_LEASE, not for a whole run:
			// within a few seconds of the death the next run takes over.
			if rep := e.run(); !rep.Skipped {
				t.Fatalf("run right after the dead one: %+v, want skipped", rep)
			}
			e.clk.Advance(testReaperLease - time.Millisecond)
			if rep := e.run(); !rep.Skipped {
				t.Fatalf("run inside the dead run's lease: %+v, want skipped", rep)
			}
			e.clk.Advance(time.Millisecond)
			if rep := e.run(); rep.Skipped {
				t.Fatalf("run %v after the death skipped, want it to take over", testReaperLease)
			}
			// u01 keeps its slot under its claim lease until that ends too.
			wantState(t, e, "u01", queue.StateAdmitting, 0)
			e.clk.Advance(testClaimLease - testReaperLease + time.Second) // past the claim lease
			e.expireUserLock("u01")
			rep := e.run()
			if rep.Skipped || rep.ExpiredClaims != 1 || rep.Admitted != 1 {
				t.Fatalf("run after the claim lease: %+v, want the expired claim re-admitted", rep)
			}
			wantState(t, e, "u01", queue.StateReady, 0)
			if st := e.emu.State(); !slices.Equal(st.Sessions, []string{"u01"}) || len(st.Locked) != 0 {
				t.Fatalf("emulator at the end: %+v, want u01's session only", st)
			}
		})
	}
}

// cancellingCAR cancels the run's context right after ApplyConcurrent: a run that times out.
type cancellingCAR struct {
	next   session.CAR
	cancel context.CancelFunc
}

func (c *cancellingCAR) ApplyConcurrent(ctx context.Context, in car.ApplyConcurrentInput) error {
	err := c.next.ApplyConcurrent(ctx, in)
	c.cancel()
	return err
}

func (c *cancellingCAR) CreateSession(ctx context.Context, in car.CreateSessionInput) (string, error) {
	return c.next.CreateSession(ctx, in)
}

func (c *cancellingCAR) DestroySession(ctx context.Context, u string) error {
	return c.next.DestroySession(ctx, u)
}

func TestRunCancelledAfterApplyConcurrentRequeues(t *testing.T) {
	for _, b := range redistest.Backends(t) {
		t.Run(b.Name, func(t *testing.T) {
			e := newEnv(t, b, envOpts{capacity: 1, slots: 1})
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			r := e.reaperWith(b.Client, &cancellingCAR{next: e.car, cancel: cancel}, nil)
			e.join("u01", "u02")
			rep, err := r.Run(ctx)
			if err != nil {
				t.Fatalf("cancelled run: %v", err)
			}
			if rep.Requeued != 1 || rep.Admitted != 0 {
				t.Fatalf("cancelled run %+v, want u01 requeued", rep)
			}
			// Told at once, not after the claim lease: u01 is back at the front.
			wantState(t, e, "u01", queue.StateQueued, 1)
			wantState(t, e, "u02", queue.StateQueued, 2)
			if rep := e.run(); rep.Admitted != 1 {
				t.Fatalf("next run %+v, want u01 admitted (re-attaching to its lock)", rep)
			}
			wantState(t, e, "u01", queue.StateReady, 0)
			if st := e.emu.State(); !slices.Equal(st.Sessions, []string{"u01"}) || len(st.Locked) != 0 {
				t.Fatalf("emulator %+v", st)
			}
		})
	}
}

// Every kind of stale user is dropped under its own reason, and the holders among them have
// their CAR sessions destroyed in the same run.
func TestRunReapsByReason(t *testing.T) {
	for _, b := range redistest.Backends(t) {
		t.Run(b.Name, func(t *testing.T) {
			ctx := context.Background()
			e := newEnv(t, b, envOpts{capacity: 2, slots: 2})
			e.join("u01", "u02")
			if rep := e.run(); rep.Admitted != 2 {
				t.Fatalf("admit: %+v", rep)
			}
			if _, err := e.q.Heartbeat(ctx, "u02", queue.Trusted); err != nil { // u01 never heartbeats
				t.Fatal(err)
			}
			e.join("u03") // then never polls
			e.clk.Advance(testIdleTimeout + time.Second)
			rep := e.run()
			want := map[queue.Reason]int{queue.ReasonNeverStarted: 1, queue.ReasonHeartbeatTimeout: 1, queue.ReasonIdle: 1}
			got := maps.Clone(rep.Reaped)
			maps.DeleteFunc(got, func(_ queue.Reason, n int) bool { return n == 0 })
			if !maps.Equal(got, want) || rep.Released != 2 || rep.Admitted != 0 {
				t.Fatalf("report %+v, want reaped %v and 2 released", rep, want)
			}
			wantGone(t, e, "u01", queue.ReasonNeverStarted)
			wantGone(t, e, "u02", queue.ReasonHeartbeatTimeout)
			wantGone(t, e, "u03", queue.ReasonIdle)
			if st := e.emu.State(); len(st.Sessions)+len(st.Locked) != 0 {
				t.Fatalf("emulator %+v, want every session destroyed", st)
			}
		})
	}
}

// While DestroySession fails the user stays Releasing and keeps its slot; each run retries it
// once its backoff is due (1s, doubling, at most 1m) and leaves it alone before; once CAR
// confirms, the slot is freed and the next user admitted.
func TestSlotFreedOnlyAfterCARConfirmedDestroy(t *testing.T) {
	for _, b := range redistest.Backends(t) {
		t.Run(b.Name, func(t *testing.T) {
			ctx := context.Background()
			e := newEnv(t, b, envOpts{capacity: 1, slots: 1})
			counting := &countingCAR{next: e.car}
			e.useCAR(counting)
			e.join("u01")
			if rep := e.run(); rep.Admitted != 1 {
				t.Fatalf("admit u01: %+v", rep)
			}
			e.join("u02")
			if _, err := e.q.Stop(ctx, "u01", queue.Trusted); err != nil {
				t.Fatal(err)
			}
			held := func(when string) {
				t.Helper()
				wantState(t, e, "u01", queue.StateReleasing, 0)
				wantState(t, e, "u02", queue.StateQueued, 1)
				if st := e.emu.State(); !slices.Equal(st.Sessions, []string{"u01"}) {
					t.Fatalf("%s: emulator %+v, want u01's session kept", when, st)
				}
			}
			e.emu.SetErrorRate(car.ActionDestroySession, "InternalError", 1)
			for i := range 8 {
				rep := e.run()
				if rep.Released != 0 || rep.CARErrors["InternalError"] != 1 || rep.Admitted != 0 {
					t.Fatalf("attempt %d while DestroySession fails: %+v", i+1, rep)
				}
				if n := counting.count("DestroySession/u01"); n != i+1 {
					t.Fatalf("after attempt %d DestroySession was called %d times", i+1, n)
				}
				held(fmt.Sprintf("attempt %d", i+1))
				wait := min(testReleaseRetryMin<<i, testReleaseRetryMax)
				e.clk.Advance(wait - time.Millisecond)
				e.join("u02") // keeps polling
				if rep := e.run(); rep.Released+rep.Admitted+len(rep.CARErrors) != 0 || counting.count("DestroySession/u01") != i+1 {
					t.Fatalf("run %v after attempt %d, before its retry is due: %+v, want nothing tried", wait-time.Millisecond, i+1, rep)
				}
				held(fmt.Sprintf("before retry %d", i+1))
				e.clk.Advance(time.Millisecond)
			}
			e.emu.SetErrorRate(car.ActionDestroySession, "InternalError", 0)
			rep := e.run()
			if rep.Released != 1 {
				t.Fatalf("run once DestroySession works: %+v, want 1 released", rep)
			}
			// The CAR slot is still cleaning up: NoIdle, u02 keeps its place.
			if rep.Admitted != 0 || rep.Requeued != 1 || rep.CARErrors["ResourceNotFound.NoIdle"] != 1 {
				t.Fatalf("admission during clean-up: %+v, want one NoIdle requeue", rep)
			}
			wantGone(t, e, "u01", queue.ReasonStopped)
			wantState(t, e, "u02", queue.StateQueued, 1)
			e.clk.Advance(3 * time.Second)
			if rep := e.run(); rep.Admitted != 1 {
				t.Fatalf("run after clean-up: %+v, want u02 admitted", rep)
			}
			wantState(t, e, "u02", queue.StateReady, 0)
		})
	}
}

// A storm of NoIdle, or a CAR outage, costs one attempt per run (Parallel at most), keeps
// everyone in place, and ends with the line admitted in order.
func TestFailureStormKeepsTheLineAndStopsAdmitting(t *testing.T) {
	for _, b := range redistest.Backends(t) {
		for _, tc := range []struct {
			code     string
			parallel int
		}{{"ResourceNotFound.NoIdle", 1}, {"ResourceNotFound.NoIdle", 8}, {"InternalError", 1}, {"ResourceUnavailable.Initialization", 8}} {
			parallel := tc.parallel
			t.Run(fmt.Sprintf("%s/%s/parallel=%d", b.Name, tc.code, parallel), func(t *testing.T) {
				e := newEnv(t, b, envOpts{capacity: 3, slots: 3})
				counting := &countingCAR{next: e.car}
				r := e.reaperWith(b.Client, counting, parallelism(parallel))
				all := users(10)
				e.join(all...)
				e.emu.SetErrorRate(car.ActionApplyConcurrent, tc.code, 1)
				for run := 1; run <= 5; run++ {
					rep, err := r.Run(context.Background())
					if err != nil {
						t.Fatal(err)
					}
					e.checkInvariants()
					if rep.Admitted != 0 || rep.Requeued == 0 || rep.Requeued > 3 {
						t.Fatalf("run %d: %+v", run, rep)
					}
					calls := counting.count("ApplyConcurrent")
					if parallel == 1 && calls != run {
						t.Fatalf("after %d runs ApplyConcurrent was called %d times, want one per run", run, calls)
					}
					if calls > 3*run {
						t.Fatalf("after %d runs ApplyConcurrent was called %d times, want at most 3 per run", run, calls)
					}
					for i, u := range all {
						wantState(t, e, u, queue.StateQueued, int64(i+1))
					}
					e.clk.Advance(5 * time.Second)
					e.join(all...)
				}
				e.emu.SetErrorRate(car.ActionApplyConcurrent, tc.code, 0)
				rep, err := r.Run(context.Background())
				if err != nil || rep.Admitted != 3 {
					t.Fatalf("run after the storm: %+v %v, want 3 admitted", rep, err)
				}
				for i, u := range all {
					if i < 3 {
						wantState(t, e, u, queue.StateReady, 0)
					} else {
						wantState(t, e, u, queue.StateQueued, int64(i-2))
					}
				}
			})
		}
	}
}

func TestRefusalForGoodStopsTheRunAndReleases(t *testing.T) {
	for _, b := range redistest.Backends(t) {
		t.Run(b.Name, func(t *testing.T) {
			e := newEnv(t, b, envOpts{capacity: 3, slots: 3})
			counting := &countingCAR{next: e.car}
			r := e.reaperWith(b.Client, counting, parallelism(1))
			e.join(users(3)...)
			// CreateSession refused with an auth failure after the slot was locked.
			e.emu.Script(car.ActionCreateSession, "AuthFailure.SignatureFailure")
			rep, err := r.Run(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			e.checkInvariants()
			if rep.Refused != 1 || rep.Admitted != 0 || rep.CARErrors["AuthFailure.SignatureFailure"] != 1 {
				t.Fatalf("report %+v, want one refusal and no admission", rep)
			}
			if n := counting.count("ApplyConcurrent"); n != 1 {
				t.Fatalf("ApplyConcurrent called %d times after an auth failure, want 1", n)
			}
			// u01 held a lock, so it leaves through Releasing; the others keep their places.
			wantState(t, e, "u01", queue.StateReleasing, 0)
			wantState(t, e, "u02", queue.StateQueued, 1)
			wantState(t, e, "u03", queue.StateQueued, 2)
			rep, err = r.Run(context.Background())
			if err != nil || rep.Released != 1 {
				t.Fatalf("next run %+v %v, want u01 released", rep, err)
			}
			wantGone(t, e, "u01", queue.ReasonCARRefused)
		})
	}
}

// scriptedSessions stands for the session service: decide says how each admission ends, and
// the fake records that outcome in the queue as the service would (so the queue stays
// consistent). Release frees the slot, or fails with failRelease.
type scriptedSessions struct {
	q           *queue.Queue
	decide      func(c queue.Claim) (session.Admission, error)
	failRelease error
	// enter, when set, runs on entering Admit and Release, before anything else.
	enter func()

	mu       sync.Mutex
	admits   []string // users, in the order Admit was called
	releases []string
}

func (s *scriptedSessions) Admit(ctx context.Context, c queue.Claim) (session.Admission, error) {
	if s.enter != nil {
		s.enter()
	}
	s.mu.Lock()
	s.admits = append(s.admits, c.UserID)
	s.mu.Unlock()
	res, err := s.decide(c)
	var rec error
	switch res.Outcome {
	case session.Admitted:
		rec = s.q.MarkReady(ctx, c, "ss-"+c.UserID)
	case session.Requeued:
		rec = s.q.Requeue(ctx, c)
	case session.Refused:
		rec = s.q.Refuse(ctx, c, false)
	case session.LeaseLost:
	}
	if rec != nil {
		return res, fmt.Errorf("fake sessions: record %v for %s: %w", res.Outcome, c.UserID, rec)
	}
	return res, err
}

func (s *scriptedSessions) Release(ctx context.Context, user string) error {
	if s.enter != nil {
		s.enter()
	}
	s.mu.Lock()
	s.releases = append(s.releases, user)
	s.mu.Unlock()
	if s.failRelease != nil {
		return s.failRelease
	}
	return s.q.Released(ctx, user)
}

func (s *scriptedSessions) calls() (admits, releases []string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.admits), slices.Clone(s.releases)
}

// The reaper stops admitting at the first Admission that says Halt, whatever its outcome,
// and not at one that does not: Halt, not the outcome, is what stops it.
func TestRunStopsAdmittingAtHalt(t *testing.T) {
	noIdle := &car.Error{Action: car.ActionApplyConcurrent, Code: "ResourceNotFound.NoIdle", Kind: car.KindNoIdle}
	badParam := &car.Error{Action: car.ActionCreateSession, Code: "InvalidParameter", Kind: car.KindOurFault}
	auth := &car.Error{Action: car.ActionCreateSession, Code: "AuthFailure.SignatureFailure", Kind: car.KindAuth}
	admit := session.Admission{Outcome: session.Admitted}
	for _, b := range redistest.Backends(t) {
		for _, tc := range []struct {
			name     string
			maxAdmit int                          // 0: 10
			decide   map[string]session.Admission // by user; others admitted
			err      error                        // returned with every admission not admitted
			calls    []string
			want     Report // the counters compared
			queued   []string
		}{{
			name:   "requeue with halt",
			decide: map[string]session.Admission{"u01": {Outcome: session.Requeued, Cause: noIdle, Halt: true}},
			calls:  []string{"u01"},
			want:   Report{Requeued: 1, CARErrors: map[string]int{"ResourceNotFound.NoIdle": 1}},
			queued: []string{"u01", "u02", "u03", "u04"},
		}, {
			name:   "refusal with halt",
			decide: map[string]session.Admission{"u01": {Outcome: session.Refused, Cause: auth, Halt: true}},
			calls:  []string{"u01"},
			want:   Report{Refused: 1, CARErrors: map[string]int{"AuthFailure.SignatureFailure": 1}},
			queued: []string{"u02", "u03", "u04"},
		}, {
			name:   "refusal without halt",
			decide: map[string]session.Admission{"u01": {Outcome: session.Refused, Cause: badParam}},
			calls:  []string{"u01", "u02", "u03", "u04"},
			want:   Report{Admitted: 3, Refused: 1, CARErrors: map[string]int{"InvalidParameter": 1}},
		}, {
			name:   "halt after an admission",
			decide: map[string]session.Admission{"u02": {Outcome: session.Requeued, Cause: noIdle, Halt: true}},
			calls:  []string{"u01", "u02"},
			want:   Report{Admitted: 1, Requeued: 1, CARErrors: map[string]int{"ResourceNotFound.NoIdle": 1}},
			queued: []string{"u02", "u03", "u04"},
		}, {
			// Without Halt a requeued head is claimed again at once: only MaxAdmit bounds it.
			name:     "requeue without halt",
			maxAdmit: 3,
			decide:   map[string]session.Admission{"u01": {Outcome: session.Requeued, Cause: noIdle}},
			calls:    []string{"u01", "u01", "u01"},
			want:     Report{Requeued: 3, CARErrors: map[string]int{"ResourceNotFound.NoIdle": 3}},
			queued:   []string{"u01", "u02", "u03", "u04"},
		}, {
			// A result the service could not record is counted besides its cause.
			name:   "unrecorded result",
			decide: map[string]session.Admission{"u01": {Outcome: session.LeaseLost, Cause: noIdle, Halt: true}},
			err:    errors.New("redis: connection refused"),
			calls:  []string{"u01"},
			want:   Report{LeaseLost: 1, OtherErrors: 1, CARErrors: map[string]int{"ResourceNotFound.NoIdle": 1}},
		}} {
			t.Run(b.Name+"/"+tc.name, func(t *testing.T) {
				e := newEnv(t, b, envOpts{capacity: 3, slots: 3})
				s := &scriptedSessions{q: e.q, decide: func(c queue.Claim) (session.Admission, error) {
					if res, ok := tc.decide[c.UserID]; ok {
						return res, tc.err
					}
					return admit, nil
				}}
				maxAdmit := tc.maxAdmit
				if maxAdmit == 0 {
					maxAdmit = 10 // bounds a reaper that does not halt, so it fails at once
				}
				r := e.newReaper(e.q, s, func(o *Options) { o.Parallel, o.MaxAdmit = 1, maxAdmit })
				e.join(users(4)...)
				rep, err := r.Run(context.Background())
				if err != nil {
					t.Fatal(err)
				}
				if got, _ := s.calls(); !slices.Equal(got, tc.calls) {
					t.Fatalf("Admit called for %v, want %v", got, tc.calls)
				}
				got := Report{Admitted: rep.Admitted, Requeued: rep.Requeued, Refused: rep.Refused,
					LeaseLost: rep.LeaseLost, OtherErrors: rep.OtherErrors, CARErrors: rep.CARErrors}
				if fmt.Sprint(got) != fmt.Sprint(tc.want) {
					t.Fatalf("report %+v, want %+v", got, tc.want)
				}
				if err := e.q.CheckInvariants(context.Background()); err != nil {
					t.Fatal(err)
				}
				for i, u := range tc.queued {
					wantState(t, e, u, queue.StateQueued, int64(i+1))
				}
			})
		}
	}
}

// A failed release is counted and retried by every run until it succeeds; the slot stays held
// meanwhile, so nobody is admitted to it.
func TestReleaseRetriedUntilItSucceeds(t *testing.T) {
	for _, b := range redistest.Backends(t) {
		t.Run(b.Name, func(t *testing.T) {
			ctx := context.Background()
			e := newEnv(t, b, envOpts{capacity: 1, slots: 1})
			s := &scriptedSessions{q: e.q, decide: func(queue.Claim) (session.Admission, error) {
				return session.Admission{Outcome: session.Admitted}, nil
			}}
			r := e.newReaper(e.q, s, nil)
			e.join("u01", "u02")
			if rep, err := r.Run(ctx); err != nil || rep.Admitted != 1 {
				t.Fatalf("admit u01: %+v %v", rep, err)
			}
			if _, err := e.q.Stop(ctx, "u01", queue.Trusted); err != nil {
				t.Fatal(err)
			}
			s.failRelease = &car.Error{Action: car.ActionDestroySession, Code: "InternalError", Kind: car.KindTransient}
			for run := 1; run <= 3; run++ {
				rep, err := r.Run(ctx)
				if err != nil || rep.Released != 0 || rep.CARErrors["InternalError"] != 1 || rep.Admitted != 0 {
					t.Fatalf("run %d while release fails: %+v %v", run, rep, err)
				}
				if _, rel := s.calls(); len(rel) != run {
					t.Fatalf("after %d runs Release was called %d times, want once per run", run, len(rel))
				}
				wantState(t, e, "u01", queue.StateReleasing, 0)
				wantState(t, e, "u02", queue.StateQueued, 1)
			}
			s.failRelease = nil
			rep, err := r.Run(ctx)
			if err != nil || rep.Released != 1 || rep.Admitted != 1 {
				t.Fatalf("run once release works: %+v %v, want u01 released and u02 admitted", rep, err)
			}
			wantGone(t, e, "u01", queue.ReasonStopped)
			wantState(t, e, "u02", queue.StateReady, 0)
		})
	}
}

// gauge counts calls in flight and the most seen at once. The first n to enter wait at the
// gate until n are inside together, which only a reaper running n at a time achieves; a
// reaper that never does fails the test at the guard instead of hanging it.
type gauge struct {
	mu            sync.Mutex
	inFlight, max int
	n             int
	opened        bool
	gate          chan struct{}
	stuck         bool // the guard ran out before n were inside at once
}

// gaugeGuard only bounds a failing test; a passing one never waits for it.
const gaugeGuard = 10 * time.Second

func newGauge(n int) *gauge { return &gauge{n: n, gate: make(chan struct{})} }

func (g *gauge) enter() (leave func()) {
	g.mu.Lock()
	g.inFlight++
	g.max = max(g.max, g.inFlight)
	if g.inFlight == g.n && !g.opened {
		g.opened = true
		close(g.gate)
	}
	g.mu.Unlock()
	select {
	case <-g.gate:
	case <-time.After(gaugeGuard):
		g.mu.Lock()
		g.stuck = true
		if !g.opened { // let the others through at once
			g.opened = true
			close(g.gate)
		}
		g.mu.Unlock()
	}
	return func() {
		g.mu.Lock()
		g.inFlight--
		g.mu.Unlock()
	}
}

// peak is the most calls seen in flight at once; 0 if they never were n at once.
func (g *gauge) peak() int {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.stuck {
		return 0
	}
	return g.max
}

// gaugedSessions passes every call to next, counting it in g.
type gaugedSessions struct {
	next Sessions
	g    *gauge
}

func (s *gaugedSessions) Admit(ctx context.Context, c queue.Claim) (session.Admission, error) {
	defer s.g.enter()()
	return s.next.Admit(ctx, c)
}

func (s *gaugedSessions) Release(ctx context.Context, user string) error {
	defer s.g.enter()()
	return s.next.Release(ctx, user)
}

// Admissions and releases run Parallel at a time: exactly that many at once, never more.
func TestRunWorksParallelAtATime(t *testing.T) {
	const parallel, n = 3, 7
	for _, b := range redistest.Backends(t) {
		t.Run(b.Name, func(t *testing.T) {
			ctx := context.Background()
			e := newEnv(t, b, envOpts{capacity: n, slots: n})
			g := newGauge(parallel)
			r := e.newReaper(e.q, &gaugedSessions{next: e.s, g: g}, parallelism(parallel))
			e.join(users(n)...)
			rep, err := r.Run(ctx)
			if err != nil || rep.Admitted != n {
				t.Fatalf("admissions: %+v %v, want %d admitted", rep, err, n)
			}
			if p := g.peak(); p != parallel {
				t.Fatalf("%d admissions at once, want %d", p, parallel)
			}

			for _, u := range users(n) {
				if _, err := e.q.Stop(ctx, u, queue.Trusted); err != nil {
					t.Fatal(err)
				}
			}
			g = newGauge(parallel)
			r = e.newReaper(e.q, &gaugedSessions{next: e.s, g: g}, parallelism(parallel))
			rep, err = r.Run(ctx)
			if err != nil || rep.Released != n {
				t.Fatalf("releases: %+v %v, want %d released", rep, err, n)
			}
			if p := g.peak(); p != parallel {
				t.Fatalf("%d releases at once, want %d", p, parallel)
			}
			e.checkInvariants()
			if st := e.emu.State(); len(st.Sessions)+len(st.Locked) != 0 {
				t.Fatalf("emulator %+v, want every session destroyed", st)
			}
		})
	}
}

func TestRunReportsRedisFailure(t *testing.T) {
	b := redistest.Embedded(t)
	e := newEnv(t, b, envOpts{capacity: 1, slots: 1})
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := l.Addr().String()
	_ = l.Close() // nothing listens there any more: every Redis call fails
	rdb := redis.NewClient(&redis.Options{Addr: dead, Protocol: 2, MaxRetries: -1, DialerRetries: 1})
	t.Cleanup(func() { _ = rdb.Close() })
	if _, err := e.reaperWith(rdb, e.car, nil).Run(context.Background()); err == nil {
		t.Fatalf("run without Redis: no error")
	}
}

func TestReapIsBoundedPerRun(t *testing.T) {
	for _, b := range redistest.Backends(t) {
		t.Run(b.Name, func(t *testing.T) {
			e := newEnv(t, b, envOpts{capacity: 1, slots: 1})
			r := e.reaperWith(b.Client, e.car, func(o *Options) { o.Batch, o.MaxReapBatches = 1, 2 })
			e.join(users(3)...)
			e.clk.Advance(testIdleTimeout + time.Second) // all three stopped polling
			rep, err := r.Run(context.Background())
			if err != nil || rep.Reaped[queue.ReasonIdle] != 2 || rep.Admitted != 1 {
				t.Fatalf("first run: %+v %v, want 2 reaped (the bound) and the third admitted", rep, err)
			}
			for _, u := range []string{"u01", "u02"} {
				wantGone(t, e, u, queue.ReasonIdle)
			}
			wantState(t, e, "u03", queue.StateReady, 0)
		})
	}
}

func TestRunLogsOneLine(t *testing.T) {
	b := redistest.Embedded(t)
	e := newEnv(t, b, envOpts{capacity: 1, slots: 1})
	var buf bytes.Buffer
	o := testOptions()
	o.Now, o.Logger = e.clk.Now, slog.New(slog.NewJSONHandler(&buf, nil))
	r, err := New(e.q, e.s, o)
	if err != nil {
		t.Fatal(err)
	}
	e.join("u01", "u02")
	e.emu.Script(car.ActionApplyConcurrent, "InternalError")
	if _, err := r.Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	if len(lines) != 1 {
		t.Fatalf("%d log lines, want 1:\n%s", len(lines), buf.String())
	}
	var l map[string]any
	if err := json.Unmarshal([]byte(lines[0]), &l); err != nil {
		t.Fatal(err)
	}
	if l["msg"] != "reaper run" || l["requeued"] != 1.0 || l["admitted"] != 0.0 {
		t.Fatalf("log line %v", l)
	}
	if ce, _ := l["car_errors"].(map[string]any); ce["InternalError"] != 1.0 {
		t.Fatalf("car_errors %v", l["car_errors"])
	}
	for _, k := range []string{"reaped", "released", "refused", "duration_ms", "rounds", "ended", "renewals", "pauses"} {
		if _, ok := l[k]; !ok {
			t.Errorf("log line lacks %s: %v", k, l)
		}
	}
}

func (c *blockingCAR) DescribeConcurrentCount(ctx context.Context, p string) (car.ConcurrentCount, error) {
	return c.next.DescribeConcurrentCount(ctx, p)
}

func (c *dyingCAR) DescribeConcurrentCount(ctx context.Context, p string) (car.ConcurrentCount, error) {
	return c.next.DescribeConcurrentCount(ctx, p)
}

func (c *cancellingCAR) DescribeConcurrentCount(ctx context.Context, p string) (car.ConcurrentCount, error) {
	return c.next.DescribeConcurrentCount(ctx, p)
}
