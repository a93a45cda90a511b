package reaper

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/carqueue/carqueue/shared/admission"
	"github.com/carqueue/carqueue/shared/car"
	"github.com/carqueue/carqueue/shared/queue"
	"github.com/carqueue/carqueue/shared/redistest"
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

// blockingCAR holds the first ApplyConcurrent until released, so a test can start a second
// run while the first one is inside CAR.
type blockingCAR struct {
	admission.CAR
	entered, release chan struct{}
	first            bool
}

func (c *blockingCAR) ApplyConcurrent(ctx context.Context, in car.ApplyConcurrentInput) error {
	if !c.first {
		c.first = true
		close(c.entered)
		<-c.release
	}
	return c.CAR.ApplyConcurrent(ctx, in)
}

func TestOverlappingRunsDoNotDoubleWork(t *testing.T) {
	for _, b := range redistest.Backends(t) {
		t.Run(b.Name, func(t *testing.T) {
			e := newEnv(t, b, envOpts{capacity: 2, slots: 2})
			counting := &countingCAR{CAR: e.car}
			e.a.CAR = counting
			blocking := &blockingCAR{CAR: counting, entered: make(chan struct{}), release: make(chan struct{})}
			first := e.reaperWith(b.Client, blocking, Options{Parallel: 1})
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
	admission.CAR
	die func()
}

func (c *dyingCAR) ApplyConcurrent(ctx context.Context, in car.ApplyConcurrentInput) error {
	err := c.CAR.ApplyConcurrent(ctx, in)
	c.die()
	return err
}

func (c *dyingCAR) CreateSession(ctx context.Context, in car.CreateSessionInput) (string, error) {
	return "", context.Canceled
}

func TestRunKilledAfterApplyConcurrentIsFinishedByTheNextRun(t *testing.T) {
	for _, b := range redistest.Backends(t) {
		t.Run(b.Name, func(t *testing.T) {
			e := newEnv(t, b, envOpts{capacity: 1, slots: 1})
			o := b.Client.Options()
			doomed := redis.NewClient(&redis.Options{Addr: o.Addr, Password: o.Password, DB: o.DB, Protocol: 2})
			dying := e.reaperWith(doomed, &dyingCAR{CAR: e.car, die: func() { _ = doomed.Close() }}, Options{})
			e.join("u01")

			// What the dead run reports is lost with it; only what it left behind matters.
			_, _ = dying.Run(context.Background())
			wantState(t, e, "u01", queue.StateAdmitting, 0)
			if st := e.emu.State(); !slices.Equal(st.Locked, []string{"u01"}) {
				t.Fatalf("emulator after the dying run: %+v, want u01 locked", st)
			}
			// Its lease is still held: overlapping runs are skipped until it ends.
			if rep := e.run(); !rep.Skipped {
				t.Fatalf("run right after the dead one: %+v, want skipped", rep)
			}
			e.clk.Advance(31 * time.Second)
			if rep := e.run(); !rep.Skipped {
				t.Fatalf("run inside the dead run's lease: %+v, want skipped", rep)
			}
			e.clk.Advance(20 * time.Second) // past the 50s reaper lease and the 30s claim lease
			e.expireUserLock("u01")
			rep := e.run()
			if rep.Skipped || rep.ExpiredClaims != 1 || rep.Admitted != 1 {
				t.Fatalf("run after the lease: %+v, want the expired claim re-admitted", rep)
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
	admission.CAR
	cancel context.CancelFunc
}

func (c *cancellingCAR) ApplyConcurrent(ctx context.Context, in car.ApplyConcurrentInput) error {
	err := c.CAR.ApplyConcurrent(ctx, in)
	c.cancel()
	return err
}

func TestRunCancelledAfterApplyConcurrentRequeues(t *testing.T) {
	for _, b := range redistest.Backends(t) {
		t.Run(b.Name, func(t *testing.T) {
			e := newEnv(t, b, envOpts{capacity: 1, slots: 1})
			ctx, cancel := context.WithCancel(context.Background())
			r := e.reaperWith(b.Client, &cancellingCAR{CAR: e.car, cancel: cancel}, Options{})
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

func TestSlotFreedOnlyAfterCARConfirmedDestroy(t *testing.T) {
	for _, b := range redistest.Backends(t) {
		t.Run(b.Name, func(t *testing.T) {
			ctx := context.Background()
			e := newEnv(t, b, envOpts{capacity: 1, slots: 1})
			e.join("u01")
			if rep := e.run(); rep.Admitted != 1 {
				t.Fatalf("admit u01: %+v", rep)
			}
			e.join("u02")
			if _, err := e.q.Stop(ctx, "u01"); err != nil {
				t.Fatal(err)
			}
			e.emu.SetErrorRate(car.ActionDestroySession, "InternalError", 1)
			for i := range 4 {
				rep := e.run()
				if rep.Released != 0 || rep.CARErrors["InternalError"] != 1 || rep.Admitted != 0 {
					t.Fatalf("run %d while DestroySession fails: %+v", i, rep)
				}
				wantState(t, e, "u01", queue.StateReleasing, 0)
				wantState(t, e, "u02", queue.StateQueued, 1)
				if st := e.emu.State(); !slices.Equal(st.Sessions, []string{"u01"}) {
					t.Fatalf("emulator %+v, want u01's session kept", st)
				}
				e.clk.Advance(5 * time.Second)
				e.join("u02") // keeps polling
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
			if st := e.status("u01"); st.State != queue.StateNone || st.Reason != queue.ReasonStopped {
				t.Fatalf("u01 after release: %+v, want gone (stopped)", st)
			}
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
				counting := &countingCAR{CAR: e.car}
				r := e.reaperWith(b.Client, counting, Options{Parallel: parallel})
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
			counting := &countingCAR{CAR: e.car}
			r := e.reaperWith(b.Client, counting, Options{Parallel: 1})
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
			if st := e.status("u01"); st.State != queue.StateNone || st.Reason != queue.ReasonCARRefused {
				t.Fatalf("u01: %+v, want gone with car_refused", st)
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
	if _, err := e.reaperWith(rdb, e.car, Options{}).Run(context.Background()); err == nil {
		t.Fatalf("run without Redis: no error")
	}
}

func TestReapIsBoundedPerRun(t *testing.T) {
	for _, b := range redistest.Backends(t) {
		t.Run(b.Name, func(t *testing.T) {
			e := newEnv(t, b, envOpts{capacity: 1, slots: 1})
			r := e.reaperWith(b.Client, e.car, Options{Batch: 1, MaxReapBatches: 2})
			e.join(users(3)...)
			e.clk.Advance(61 * time.Second) // all three stopped polling past QUEUE_IDLE_TIMEOUT
			rep, err := r.Run(context.Background())
			if err != nil || rep.Reaped[queue.ReasonIdle] != 2 || rep.Admitted != 1 {
				t.Fatalf("first run: %+v %v, want 2 reaped (the bound) and the third admitted", rep, err)
			}
			for _, u := range []string{"u01", "u02"} {
				if st := e.status(u); st.State != queue.StateNone || st.Reason != queue.ReasonIdle {
					t.Fatalf("%s: %+v, want gone (idle)", u, st)
				}
			}
		})
	}
}

func TestRunLogsOneLine(t *testing.T) {
	b := redistest.Embedded(t)
	e := newEnv(t, b, envOpts{capacity: 1, slots: 1})
	var buf bytes.Buffer
	r := New(b.Client, e.id, e.q, e.a, Options{Now: e.clk.Now, Logger: slog.New(slog.NewJSONHandler(&buf, nil))})
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
	for _, k := range []string{"reaped", "released", "refused", "duration_ms"} {
		if _, ok := l[k]; !ok {
			t.Errorf("log line lacks %s: %v", k, l)
		}
	}
}
