package reaper

import (
	"context"
	"testing"
	"time"

	"github.com/carqueue/carqueue/shared/car"
	"github.com/carqueue/carqueue/shared/queue"
	"github.com/carqueue/carqueue/shared/redistest"
	"github.com/carqueue/carqueue/shared/session"
)

// The production shape of a run in these tests: it works for testRunTime, pausing testPause
// between rounds with nothing to do; the pauses pass on the fake clock (clocked).
const (
	testRunTime = 90 * time.Second
	testPause   = time.Second
)

func looping(o *Options) { o.RunTime, o.Pause = testRunTime, testPause }

// One run keeps the line moving for its whole run time: a holder who stops mid-run has its
// session destroyed and its slot handed on (after CAR's clean-up, which answers NoIdle and so
// pauses admission), and a holder who goes quiet is reaped the round its deadline passes,
// within one pause, and its slot handed on too. Nothing waits for the next run.
func TestRunHandsSlotsOnAsTheyFree(t *testing.T) {
	for _, b := range redistest.Backends(t) {
		t.Run(b.Name, func(t *testing.T) {
			ctx := context.Background()
			e := newEnv(t, b, envOpts{capacity: 2, slots: 2})
			r := e.newReaper(e.q, e.s, looping)
			e.join(users(5)...)
			start := e.clk.Now()
			var stoppedAt, quietGoneAt time.Time
			r.sleep = clocked(e.clk, func() {
				now := e.clk.Now()
				for _, u := range users(5) {
					if st := e.status(u); st.State == queue.StateReady || st.State == queue.StateActive {
						if u != "u02" { // u02 never heartbeats: it went quiet right after Ready
							if _, err := e.q.Heartbeat(ctx, u, queue.Trusted); err != nil {
								t.Error(err)
							}
						}
					}
				}
				if stoppedAt.IsZero() && now.Sub(start) >= 10*time.Second {
					if _, err := e.q.Stop(ctx, "u01", queue.Trusted); err != nil {
						t.Error(err)
					}
					stoppedAt = now
				}
				if quietGoneAt.IsZero() && e.status("u02").State == queue.StateNone {
					quietGoneAt = now
				}
			})
			rep, err := r.Run(ctx)
			if err != nil {
				t.Fatal(err)
			}
			e.checkInvariants()
			if rep.Ended != EndedRunTime || rep.Admitted != 4 || rep.Released != 2 || rep.Reaped[queue.ReasonNeverStarted] != 1 || rep.Pauses < 2 {
				t.Fatalf("report %+v, want a whole run time with 4 admitted, u01 and u02 released, u02 reaped, and pauses for the clean-ups", rep)
			}
			wantGone(t, e, "u01", queue.ReasonStopped)
			wantGone(t, e, "u02", queue.ReasonNeverStarted)
			for _, u := range []string{"u03", "u04"} {
				if st := e.status(u); !st.State.Holds() {
					t.Fatalf("%s: %+v, want it holding a slot", u, st)
				}
			}
			wantState(t, e, "u05", queue.StateQueued, 1)
			// u02 was Ready at the start; READY_TIMEOUT (60s) later it is reaped and released
			// within one pause (the check runs after each pause).
			if lag := quietGoneAt.Sub(start); quietGoneAt.IsZero() || lag > 60*time.Second+2*testPause {
				t.Fatalf("u02 freed %v after Ready, want within READY_TIMEOUT + a pause", lag)
			}
		})
	}
}

// While CAR answers NoIdle, a run stops admitting for a pause, then tries one user at a time;
// everyone keeps their place. Once CAR has slots again, the same run admits, widening back to
// Parallel.
func TestNoIdlePausesAdmissionForAPause(t *testing.T) {
	for _, b := range redistest.Backends(t) {
		t.Run(b.Name, func(t *testing.T) {
			ctx := context.Background()
			e := newEnv(t, b, envOpts{capacity: 3, slots: 3})
			counting := &countingCAR{next: e.car}
			// Shorter than READY_TIMEOUT: the admitted stay Ready to the end.
			r := e.reaperWith(b.Client, counting, func(o *Options) { looping(o); o.RunTime = 40 * time.Second })
			all := users(10)
			e.join(all...)
			e.emu.SetErrorRate(car.ActionApplyConcurrent, "ResourceNotFound.NoIdle", 1)
			const storm = 20 * time.Second
			start := e.clk.Now()
			callsInStorm := -1
			r.sleep = clocked(e.clk, func() {
				e.join(all...) // everyone keeps polling
				if callsInStorm < 0 && e.clk.Now().Sub(start) >= storm {
					callsInStorm = counting.count("ApplyConcurrent")
					for i, u := range all {
						wantState(t, e, u, queue.StateQueued, int64(i+1))
					}
					e.emu.SetErrorRate(car.ActionApplyConcurrent, "ResourceNotFound.NoIdle", 0)
				}
			})
			rep, err := r.Run(ctx)
			if err != nil {
				t.Fatal(err)
			}
			e.checkInvariants()
			// The first round may have 3 calls in flight (the capacity) before the first
			// NoIdle is seen; after that, one per pause.
			if most := 3 + int(storm/testPause); callsInStorm > most || callsInStorm < int(storm/testPause)/2 {
				t.Fatalf("%d ApplyConcurrent in %v of NoIdle, want about one per %v pause (at most %d)", callsInStorm, storm, testPause, most)
			}
			if rep.Admitted != 3 || rep.Ended != EndedRunTime {
				t.Fatalf("report %+v, want the 3 slots filled once CAR had them, in the same run", rep)
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

// A refusal of our credentials halts admission for the rest of the run, pause or not: every
// other call would fail the same way. Releases and reaping go on.
func TestAuthRefusalStopsAdmittingForTheRun(t *testing.T) {
	auth := &car.Error{Action: car.ActionCreateSession, Code: "AuthFailure.SignatureFailure", Kind: car.KindAuth}
	for _, b := range redistest.Backends(t) {
		t.Run(b.Name, func(t *testing.T) {
			e := newEnv(t, b, envOpts{capacity: 3, slots: 3})
			s := &scriptedSessions{q: e.q, decide: func(c queue.Claim) (session.Admission, error) {
				return session.Admission{Outcome: session.Refused, Cause: auth, Halt: true}, nil
			}}
			r := e.newReaper(e.q, s, func(o *Options) { looping(o); o.Parallel = 1 })
			r.sleep = clocked(e.clk, func() { e.join(users(4)...) })
			e.join(users(4)...)
			rep, err := r.Run(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			if admits, _ := s.calls(); len(admits) != 1 || rep.Refused != 1 || rep.Rounds < int(testRunTime/testPause)/2 {
				t.Fatalf("Admit called for %v over %d rounds (%+v), want u01 only", admits, rep.Rounds, rep)
			}
		})
	}
}

// Each round claims at most Parallel users, so reaping and releases get their turn between
// waves of admissions, and the run still fills every free slot.
func TestRoundsClaimParallelAtATime(t *testing.T) {
	for _, b := range redistest.Backends(t) {
		t.Run(b.Name, func(t *testing.T) {
			e := newEnv(t, b, envOpts{capacity: 7, slots: 7})
			s := &scriptedSessions{q: e.q, decide: func(queue.Claim) (session.Admission, error) {
				return session.Admission{Outcome: session.Admitted}, nil
			}}
			r := e.newReaper(e.q, s, parallelism(3))
			e.join(users(9)...)
			rep, err := r.Run(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			if rep.Admitted != 7 || rep.Rounds != 4 { // 3 + 3 + 1, then a round with nothing to do
				t.Fatalf("report %+v, want 7 admitted in rounds of at most 3", rep)
			}
			e.checkInvariants()
		})
	}
}

// The run time bounds a run by the run's clock while someone waits; a run ends at the first
// round with nothing to do when nobody waits, or, without a Pause, whoever waits.
func TestRunEnds(t *testing.T) {
	ctx := context.Background()
	b := redistest.Embedded(t)
	e := newEnv(t, b, envOpts{capacity: 1, slots: 1})
	e.join("u01", "u02")
	if rep := e.run(); rep.Ended != EndedIdle || rep.Rounds != 2 || rep.Admitted != 1 {
		t.Fatalf("one pass: %+v, want 2 rounds (admit, then nothing) ended %s", rep, EndedIdle)
	}
	r := e.newReaper(e.q, e.s, looping)
	pauses := 0
	r.sleep = clocked(e.clk, func() {
		pauses++
		e.join("u02") // waits, polling
		if _, err := e.q.Heartbeat(ctx, "u01", queue.Trusted); err != nil {
			t.Error(err)
		}
	})
	rep, err := r.Run(ctx)
	if err != nil || rep.Ended != EndedRunTime || rep.Duration != testRunTime || pauses != int(testRunTime/testPause) {
		t.Fatalf("looping run while u02 waits: %+v %v after %d pauses, want %v of pauses of %v", rep, err, pauses, testRunTime, testPause)
	}
	c, cancel := context.WithCancel(ctx)
	r.sleep = clocked(e.clk, cancel)
	if rep, err := r.Run(c); err != nil || rep.Ended != EndedCancelled {
		t.Fatalf("cancelled run: %+v %v, want ended %s", rep, err, EndedCancelled)
	}
	if _, err := e.q.Stop(ctx, "u02", queue.Trusted); err != nil {
		t.Fatal(err)
	}
	pauses = 0
	if rep, err := r.Run(ctx); err != nil || rep.Ended != EndedIdle || rep.Rounds != 1 || pauses != 0 {
		t.Fatalf("looping run with nobody waiting: %+v %v after %d pauses, want it ended %s at once", rep, err, pauses, EndedIdle)
	}
}
