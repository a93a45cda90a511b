package admission

import (
	"context"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/carqueue/carqueue/local/caremu"
	"github.com/carqueue/carqueue/local/caremu/caremutest"
	"github.com/carqueue/carqueue/shared/car"
	"github.com/carqueue/carqueue/shared/queue"
	"github.com/carqueue/carqueue/shared/redistest"
	"github.com/carqueue/carqueue/shared/testkit"
)

// realEnv is the real queue on a redistest backend and the real CAR client talking to the
// emulator over HTTP, sharing one fake clock.
type realEnv struct {
	clk *testkit.Clock
	emu *caremu.Emulator
	q   *queue.Queue
	a   *Admitter
}

func newRealEnv(t *testing.T, b redistest.Backend, capacity, slots int) *realEnv {
	t.Helper()
	clk := testkit.NewClock()
	emu, srv := caremutest.Server(t, caremu.Options{Slots: slots, Now: clk.Now})
	cc := caremutest.Client(t, srv, car.Config{})
	q, err := queue.New(b.Client, queue.Options{QueueID: redistest.Prefix(t, b.Client), Capacity: capacity, Now: clk.Now})
	if err != nil {
		t.Fatal(err)
	}
	return &realEnv{clk: clk, emu: emu, q: q, a: &Admitter{Queue: q, CAR: cc, Logger: quietLogger()}}
}

// start is what /start does: join, and admit at once when at the head with a free slot.
func (e *realEnv) start(t *testing.T, u string) (Outcome, string, error) {
	t.Helper()
	ctx := context.Background()
	if _, err := e.q.Join(ctx, u, Pack("203.0.113.9", "cs-"+u)); err != nil {
		t.Fatalf("join %s: %v", u, err)
	}
	c, ok, err := e.q.ClaimUser(ctx, u)
	if err != nil || !ok {
		t.Fatalf("claim %s: ok=%v err=%v", u, ok, err)
	}
	return e.a.Admit(ctx, c)
}

func (e *realEnv) state(t *testing.T, u string) queue.Status {
	t.Helper()
	st, err := e.q.Poll(context.Background(), u, "")
	if err != nil {
		t.Fatal(err)
	}
	if err := e.q.CheckInvariants(context.Background()); err != nil {
		t.Fatal(err)
	}
	return st
}

func TestAdmitAndReleaseAgainstEmulator(t *testing.T) {
	for _, b := range redistest.Backends(t) {
		t.Run(b.Name, func(t *testing.T) {
			ctx := context.Background()
			e := newRealEnv(t, b, 2, 1)
			o, ss, err := e.start(t, "u1")
			if o != Admitted || err != nil || ss == "" {
				t.Fatalf("admit u1: %v %q %v", o, ss, err)
			}
			if st := e.state(t, "u1"); st.State != queue.StateReady || st.ServerSession != ss {
				t.Fatalf("u1 status %+v", st)
			}
			if st := e.emu.State(); !slices.Equal(st.Sessions, []string{"u1"}) {
				t.Fatalf("emulator %+v", st)
			}

			// The queue has room for two, CAR for one: NoIdle keeps u2 at the front.
			o, _, err = e.start(t, "u2")
			if o != Requeued || car.KindOf(err) != car.KindNoIdle {
				t.Fatalf("admit u2: %v %v, want Requeued with NoIdle", o, err)
			}
			if st := e.state(t, "u2"); st.State != queue.StateQueued || st.Position != 1 {
				t.Fatalf("u2 status %+v", st)
			}

			// Release: DestroySession first, then the slot.
			if _, err := e.q.Stop(ctx, "u1"); err != nil {
				t.Fatal(err)
			}
			e.emu.Script(car.ActionDestroySession, "InternalError")
			if err := e.a.Release(ctx, "u1"); car.KindOf(err) != car.KindTransient {
				t.Fatalf("release while CAR fails: %v, want a transient CAR error", err)
			}
			if st := e.state(t, "u1"); st.State != queue.StateReleasing {
				t.Fatalf("u1 after a failed release: %+v, want Releasing", st)
			}
			if err := e.a.Release(ctx, "u1"); err != nil {
				t.Fatalf("release: %v", err)
			}
			if st := e.state(t, "u1"); st.State != queue.StateNone || st.Reason != queue.ReasonStopped {
				t.Fatalf("u1 after release: %+v", st)
			}
			if st := e.emu.State(); len(st.Sessions) != 0 {
				t.Fatalf("emulator after release %+v", st)
			}
			// Releasing again is a no-op: the user is gone.
			if err := e.a.Release(ctx, "u1"); err != nil {
				t.Fatalf("second release: %v", err)
			}
		})
	}
}

func TestAdmitRetriesLockTimeoutOnceAgainstEmulator(t *testing.T) {
	for _, b := range redistest.Backends(t) {
		t.Run(b.Name, func(t *testing.T) {
			e := newRealEnv(t, b, 2, 2)
			e.emu.Script(car.ActionCreateSession, "FailedOperation.LockTimeout")
			if o, ss, err := e.start(t, "u1"); o != Admitted || ss == "" || err != nil {
				t.Fatalf("admit after one LockTimeout: %v %q %v", o, ss, err)
			}
			e.emu.Script(car.ActionCreateSession, "FailedOperation.LockTimeout", "FailedOperation.LockTimeout")
			o, _, err := e.start(t, "u2")
			if o != Requeued || car.KindOf(err) != car.KindLockExpired {
				t.Fatalf("admit after two LockTimeouts: %v %v, want Requeued", o, err)
			}
			// The lock taken for u2 lapses by itself at CAR (LockTTL) and u2 kept its place.
			if st := e.state(t, "u2"); st.State != queue.StateQueued || st.Position != 1 {
				t.Fatalf("u2 %+v", st)
			}
			e.clk.Advance(31 * time.Second)
			if st := e.emu.State(); !slices.Equal(st.Sessions, []string{"u1"}) || len(st.Locked) != 0 {
				t.Fatalf("emulator %+v", st)
			}
		})
	}
}

func TestAdmitRefusedForGoodAgainstEmulator(t *testing.T) {
	for _, b := range redistest.Backends(t) {
		t.Run(b.Name, func(t *testing.T) {
			e := newRealEnv(t, b, 2, 2)
			e.emu.Script(car.ActionApplyConcurrent, "InvalidParameterValue")
			o, _, err := e.start(t, "u1")
			if o != Refused || car.KindOf(err) != car.KindOurFault {
				t.Fatalf("admit: %v %v, want Refused", o, err)
			}
			// Nothing was locked, so the user is gone at once.
			if st := e.state(t, "u1"); st.State != queue.StateNone || st.Reason != queue.ReasonCARRefused {
				t.Fatalf("u1 %+v", st)
			}
		})
	}
}

func TestConcurrentAdmissionOfOneUserIsSingleFile(t *testing.T) {
	for _, b := range redistest.Backends(t) {
		t.Run(b.Name, func(t *testing.T) {
			ctx := context.Background()
			e := newRealEnv(t, b, 2, 2)
			if _, err := e.q.Join(ctx, "u1", Pack("203.0.113.9", "cs")); err != nil {
				t.Fatal(err)
			}
			c, ok, err := e.q.ClaimUser(ctx, "u1")
			if err != nil || !ok {
				t.Fatal(ok, err)
			}
			// Someone else holds u1's CAR lock: this admission must not call CAR.
			unlock, ok, err := e.q.LockUser(ctx, "u1", time.Minute)
			if err != nil || !ok {
				t.Fatal(ok, err)
			}
			defer unlock()
			o, _, err := e.a.Admit(ctx, c)
			if o != Requeued || !errors.Is(err, ErrUserBusy) {
				t.Fatalf("admit while locked: %v %v", o, err)
			}
			if st := e.emu.State(); len(st.Locked)+len(st.Sessions) != 0 {
				t.Fatalf("CAR was called: %+v", st)
			}
		})
	}
}

// /reconnect: a holder re-attaches to its own slot with a new ClientSession, without queueing;
// a transient failure leaves it holding as before.
func TestReattachAgainstEmulator(t *testing.T) {
	for _, b := range redistest.Backends(t) {
		t.Run(b.Name, func(t *testing.T) {
			ctx := context.Background()
			e := newRealEnv(t, b, 1, 1)
			_, first, err := e.start(t, "u1")
			if err != nil {
				t.Fatal(err)
			}
			if _, err := e.q.Heartbeat(ctx, "u1"); err != nil {
				t.Fatal(err)
			}
			// A transient failure: the user keeps its slot and state.
			c, ok, err := e.q.Reattach(ctx, "u1", Pack("203.0.113.10", "cs-new"))
			if err != nil || !ok || !c.Reattach {
				t.Fatalf("reattach: %+v %v %v", c, ok, err)
			}
			e.emu.Script(car.ActionCreateSession, "InternalError")
			if o, _, err := e.a.Admit(ctx, c); o != Requeued || car.KindOf(err) != car.KindTransient {
				t.Fatalf("reattach admission with CAR failing: %v %v", o, err)
			}
			if st := e.state(t, "u1"); st.State != queue.StateActive {
				t.Fatalf("u1 after a failed reattach: %+v, want Active", st)
			}
			// Then it works: a new ServerSession on the same slot (capacity 1, no NoIdle).
			c, ok, err = e.q.Reattach(ctx, "u1", Pack("203.0.113.10", "cs-newer"))
			if err != nil || !ok {
				t.Fatalf("reattach: %v %v", ok, err)
			}
			o, second, err := e.a.Admit(ctx, c)
			if o != Admitted || second == "" || second == first {
				t.Fatalf("reattach admission: %v %q (first %q) %v", o, second, first, err)
			}
			if st := e.state(t, "u1"); st.State != queue.StateReady || st.ServerSession != second {
				t.Fatalf("u1 after reattach: %+v", st)
			}
			if st := e.emu.State(); !slices.Equal(st.Sessions, []string{"u1"}) || st.Idle != 0 {
				t.Fatalf("emulator %+v", st)
			}
		})
	}
}
