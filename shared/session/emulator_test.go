package session

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/carqueue/carqueue/local/caremu"
	"github.com/carqueue/carqueue/local/caremu/caremutest"
	"github.com/carqueue/carqueue/shared/car"
	"github.com/carqueue/carqueue/shared/queue"
	"github.com/carqueue/carqueue/shared/redistest"
	"github.com/carqueue/carqueue/shared/testkit"
)

// Durations of the real queue in these tests; the Service's (testOptions) match them.
const (
	testHeartbeatTimeout = 60 * time.Second
	testCleanupDelay     = 2 * time.Second // the emulator's: a destroyed session's slot is busy this long
)

// realEnv is the real queue on a redistest backend and the real CAR client talking to the
// emulator over HTTP, sharing one fake clock. rec sees every request that reaches CAR.
type realEnv struct {
	clk *testkit.Clock
	emu *caremu.Emulator
	rec *carRecorder
	q   *queue.Queue
	s   *Service
}

// newRealEnv builds a queue of capacity slots in front of an emulated CAR of carSlots slots.
func newRealEnv(t *testing.T, b redistest.Backend, capacity, carSlots int) *realEnv {
	t.Helper()
	clk := testkit.NewClock()
	emu, err := caremu.New(caremu.Options{Slots: carSlots, Now: clk.Now, CleanupDelay: testCleanupDelay, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	rec := &carRecorder{next: emu}
	srv := httptest.NewServer(rec)
	t.Cleanup(srv.Close)
	cc := caremutest.Client(t, srv, car.Config{})
	q, err := queue.New(b.Client, queue.Options{
		QueueID: redistest.Prefix(t, b.Client), Capacity: capacity,
		QueueIdleTimeout: time.Minute, HeartbeatTimeout: testHeartbeatTimeout, ReadyTimeout: time.Minute,
		ClaimLease: 30 * time.Second, GoneRetention: 10 * time.Minute, RateWindow: 5 * time.Minute,
		Now: clk.Now,
	})
	if err != nil {
		t.Fatal(err)
	}
	o := testOptions(clk.Now)
	o.HeartbeatTimeout = testHeartbeatTimeout
	return &realEnv{clk: clk, emu: emu, rec: rec, q: q, s: newService(t, q, cc, o)}
}

// carRequest is what one request to CAR carried.
type carRequest struct {
	Action, UserID, UserIP, ClientSession string
}

// carRecorder notes each request on its way to the emulator.
type carRecorder struct {
	next http.Handler
	mu   sync.Mutex
	reqs []carRequest
}

func (r *carRecorder) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	body, err := io.ReadAll(req.Body)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	var p struct{ UserId, UserIp, ClientSession string }
	_ = json.Unmarshal(body, &p)
	r.mu.Lock()
	r.reqs = append(r.reqs, carRequest{Action: req.Header.Get("X-TC-Action"), UserID: p.UserId, UserIP: p.UserIp, ClientSession: p.ClientSession})
	r.mu.Unlock()
	req.Body = io.NopCloser(bytes.NewReader(body))
	r.next.ServeHTTP(w, req)
}

// of returns the requests made for user, in order.
func (r *carRecorder) of(user string) []carRequest {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []carRequest
	for _, q := range r.reqs {
		if q.UserID == user {
			out = append(out, q)
		}
	}
	return out
}

// last returns the last request of action made for user.
func (r *carRecorder) last(t *testing.T, user, action string) carRequest {
	t.Helper()
	reqs := r.of(user)
	for i := len(reqs) - 1; i >= 0; i-- {
		if reqs[i].Action == action {
			return reqs[i]
		}
	}
	t.Fatalf("no %s for %s reached CAR (requests %+v)", action, user, reqs)
	return carRequest{}
}

// actions lists the actions requested for user.
func (r *carRecorder) actions(user string) []string {
	var out []string
	for _, q := range r.of(user) {
		out = append(out, q.Action)
	}
	return out
}

func client(ip, session string) queue.Client { return queue.Client{IP: ip, Session: session} }

// admit is the admission path by hand: join, claim at the head, Admit.
func (e *realEnv) admit(t *testing.T, u string) (Admission, error) {
	t.Helper()
	ctx := context.Background()
	if _, err := e.q.Join(ctx, u, client("203.0.113.9", "cs-"+u), queue.Trusted); err != nil {
		t.Fatalf("join %s: %v", u, err)
	}
	c, ok, err := e.q.ClaimUser(ctx, u)
	if err != nil || !ok {
		t.Fatalf("claim %s: ok=%v err=%v", u, ok, err)
	}
	return e.s.Admit(ctx, c)
}

// state is the user's status in the queue, after checking the queue's invariants.
func (e *realEnv) state(t *testing.T, u string) queue.Status {
	t.Helper()
	st, err := e.q.Poll(context.Background(), u, queue.Client{}, queue.Trusted)
	if err != nil {
		t.Fatal(err)
	}
	if err := e.q.CheckInvariants(context.Background()); err != nil {
		t.Fatal(err)
	}
	return st
}

func (e *realEnv) sessions() []string { return e.emu.State().Sessions }

func TestAdmitAndReleaseAgainstEmulator(t *testing.T) {
	eachBackend(t, func(t *testing.T, b redistest.Backend) {
		ctx := context.Background()
		e := newRealEnv(t, b, 2, 1)
		res, err := e.admit(t, "u1")
		if err != nil || res.Outcome != Admitted || res.ServerSession == "" || res.Halt || res.Cause != nil {
			t.Fatalf("admit u1: %+v %v", res, err)
		}
		if st := e.state(t, "u1"); st.State != queue.StateReady || st.ServerSession != res.ServerSession {
			t.Fatalf("u1 status %+v", st)
		}
		if s := e.sessions(); !slices.Equal(s, []string{"u1"}) {
			t.Fatalf("emulator sessions %v", s)
		}

		// The queue has room for two, CAR for one: NoIdle keeps u2 at the front, and halts.
		res, err = e.admit(t, "u2")
		if err != nil || res.Outcome != Requeued || !res.Halt || car.KindOf(res.Cause) != car.KindNoIdle {
			t.Fatalf("admit u2: %+v %v, want Requeued with NoIdle and Halt", res, err)
		}
		if st := e.state(t, "u2"); st.State != queue.StateQueued || st.Position != 1 {
			t.Fatalf("u2 status %+v", st)
		}

		// Release: DestroySession first, then the slot.
		if _, err := e.q.Stop(ctx, "u1", queue.Trusted); err != nil {
			t.Fatal(err)
		}
		e.emu.Script(car.ActionDestroySession, "InternalError")
		if err := e.s.Release(ctx, "u1"); car.KindOf(err) != car.KindTransient {
			t.Fatalf("release while CAR fails: %v, want a transient CAR error", err)
		}
		if st := e.state(t, "u1"); st.State != queue.StateReleasing {
			t.Fatalf("u1 after a failed release: %+v, want Releasing", st)
		}
		// The failure put off the next attempt by ReleaseRetryMin.
		due := func() []string {
			t.Helper()
			us, err := e.q.Releasing(ctx, 10)
			if err != nil {
				t.Fatal(err)
			}
			return us
		}
		if us := due(); len(us) != 0 {
			t.Fatalf("due for release right after a failure: %v", us)
		}
		e.clk.Advance(e.s.opts.ReleaseRetryMin)
		if us := due(); !slices.Equal(us, []string{"u1"}) {
			t.Fatalf("due for release after ReleaseRetryMin: %v, want [u1]", us)
		}
		if err := e.s.Release(ctx, "u1"); err != nil {
			t.Fatalf("release: %v", err)
		}
		if st := e.state(t, "u1"); st.State != queue.StateNone || st.Reason != queue.ReasonStopped {
			t.Fatalf("u1 after release: %+v", st)
		}
		if s := e.sessions(); len(s) != 0 {
			t.Fatalf("emulator sessions after release %v", s)
		}
		// Releasing again is a no-op: the user is gone, CAR is not called.
		n := len(e.rec.of("u1"))
		if err := e.s.Release(ctx, "u1"); err != nil {
			t.Fatalf("second release: %v", err)
		}
		if got := len(e.rec.of("u1")); got != n {
			t.Fatalf("second release called CAR: %v", e.rec.actions("u1"))
		}
	})
}

func TestAdmitRetriesLockTimeoutOnceAgainstEmulator(t *testing.T) {
	eachBackend(t, func(t *testing.T, b redistest.Backend) {
		e := newRealEnv(t, b, 2, 2)
		e.emu.Script(car.ActionCreateSession, "FailedOperation.LockTimeout")
		if res, err := e.admit(t, "u1"); err != nil || res.Outcome != Admitted || res.ServerSession == "" {
			t.Fatalf("admit after one LockTimeout: %+v %v", res, err)
		}
		want := []string{car.ActionApplyConcurrent, car.ActionCreateSession, car.ActionApplyConcurrent, car.ActionCreateSession}
		if got := e.rec.actions("u1"); !slices.Equal(got, want) {
			t.Fatalf("CAR requests for u1 %v, want %v", got, want)
		}
		e.emu.Script(car.ActionCreateSession, "FailedOperation.LockTimeout", "FailedOperation.LockTimeout")
		res, err := e.admit(t, "u2")
		if err != nil || res.Outcome != Requeued || !res.Halt || car.KindOf(res.Cause) != car.KindLockExpired {
			t.Fatalf("admit after two LockTimeouts: %+v %v, want Requeued", res, err)
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

func TestAdmitRefusedForGoodAgainstEmulator(t *testing.T) {
	eachBackend(t, func(t *testing.T, b redistest.Backend) {
		e := newRealEnv(t, b, 2, 2)
		e.emu.Script(car.ActionApplyConcurrent, "InvalidParameterValue")
		res, err := e.admit(t, "u1")
		if err != nil || res.Outcome != Refused || res.Halt || car.KindOf(res.Cause) != car.KindOurFault {
			t.Fatalf("admit: %+v %v, want Refused (our fault, no halt)", res, err)
		}
		// Nothing was locked, so the user is gone at once.
		if st := e.state(t, "u1"); st.State != queue.StateNone || st.Reason != queue.ReasonCARRefused {
			t.Fatalf("u1 %+v", st)
		}
		// Bad credentials halt the admissions, and the user is gone too.
		e.emu.Script(car.ActionApplyConcurrent, "AuthFailure.SignatureFailure")
		res, err = e.admit(t, "u2")
		if err != nil || res.Outcome != Refused || !res.Halt || car.KindOf(res.Cause) != car.KindAuth {
			t.Fatalf("admit u2: %+v %v, want Refused (auth, halt)", res, err)
		}
		if st := e.state(t, "u2"); st.State != queue.StateNone || st.Reason != queue.ReasonCARRefused {
			t.Fatalf("u2 %+v", st)
		}
		// Refused after ApplyConcurrent locked a slot: the user releases it first.
		e.emu.Script(car.ActionCreateSession, "InvalidParameterValue")
		if res, err = e.admit(t, "u3"); err != nil || res.Outcome != Refused {
			t.Fatalf("admit u3: %+v %v", res, err)
		}
		if st := e.state(t, "u3"); st.State != queue.StateReleasing {
			t.Fatalf("u3 %+v, want Releasing (CAR holds a lock for it)", st)
		}
		if err := e.s.Release(context.Background(), "u3"); err != nil {
			t.Fatal(err)
		}
		if st := e.state(t, "u3"); st.State != queue.StateNone || st.Reason != queue.ReasonCARRefused {
			t.Fatalf("u3 after release %+v", st)
		}
		if st := e.emu.State(); len(st.Locked)+len(st.Sessions) != 0 {
			t.Fatalf("emulator %+v", st)
		}
	})
}

func TestConcurrentAdmissionOfOneUserIsSingleFile(t *testing.T) {
	eachBackend(t, func(t *testing.T, b redistest.Backend) {
		ctx := context.Background()
		e := newRealEnv(t, b, 2, 2)
		if _, err := e.q.Join(ctx, "u1", client("203.0.113.9", "cs"), queue.Trusted); err != nil {
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
		res, err := e.s.Admit(ctx, c)
		if err != nil || res.Outcome != Requeued || !errors.Is(res.Cause, ErrUserBusy) {
			t.Fatalf("admit while locked: %+v %v", res, err)
		}
		if got := e.rec.of("u1"); len(got) != 0 {
			t.Fatalf("CAR was called: %+v", got)
		}
		if st := e.state(t, "u1"); st.State != queue.StateQueued || st.Position != 1 {
			t.Fatalf("u1 %+v, want back at the front", st)
		}
		// The same for a release.
		if err := e.s.Release(ctx, "u1"); !errors.Is(err, ErrUserBusy) {
			t.Fatalf("release while locked: %v", err)
		}
		// Once the lock is free, the admission goes through.
		unlock()
		if res, err := e.admit(t, "u1"); err != nil || res.Outcome != Admitted {
			t.Fatalf("admit after unlock: %+v %v", res, err)
		}
	})
}

// A re-attach: a holder goes back to its own slot with a new ClientSession, without queueing;
// a transient failure leaves it holding as before.
func TestReattachAgainstEmulator(t *testing.T) {
	eachBackend(t, func(t *testing.T, b redistest.Backend) {
		ctx := context.Background()
		e := newRealEnv(t, b, 1, 1)
		first, err := e.admit(t, "u1")
		if err != nil || first.Outcome != Admitted {
			t.Fatal(first, err)
		}
		if _, err := e.q.Heartbeat(ctx, "u1", queue.Trusted); err != nil {
			t.Fatal(err)
		}
		// A transient failure: the user keeps its slot and state.
		c, ok, err := e.q.Reattach(ctx, "u1", client("203.0.113.10", "cs-new"), queue.Trusted)
		if err != nil || !ok || !c.Reattach || c.Client != client("203.0.113.10", "cs-new") {
			t.Fatalf("reattach: %+v %v %v", c, ok, err)
		}
		e.emu.Script(car.ActionCreateSession, "InternalError")
		if res, err := e.s.Admit(ctx, c); err != nil || res.Outcome != Requeued || car.KindOf(res.Cause) != car.KindTransient {
			t.Fatalf("reattach admission with CAR failing: %+v %v", res, err)
		}
		if st := e.state(t, "u1"); st.State != queue.StateActive {
			t.Fatalf("u1 after a failed reattach: %+v, want Active", st)
		}
		// Then it works: a new ServerSession on the same slot (capacity 1, no NoIdle).
		c, ok, err = e.q.Reattach(ctx, "u1", client("203.0.113.10", "cs-newer"), queue.Trusted)
		if err != nil || !ok {
			t.Fatalf("reattach: %v %v", ok, err)
		}
		res, err := e.s.Admit(ctx, c)
		if err != nil || res.Outcome != Admitted || res.ServerSession == "" || res.ServerSession == first.ServerSession {
			t.Fatalf("reattach admission: %+v (first %q) %v", res, first.ServerSession, err)
		}
		if st := e.state(t, "u1"); st.State != queue.StateReady || st.ServerSession != res.ServerSession {
			t.Fatalf("u1 after reattach: %+v", st)
		}
		if st := e.emu.State(); !slices.Equal(st.Sessions, []string{"u1"}) || st.Idle != 0 {
			t.Fatalf("emulator %+v", st)
		}
		if cr := e.rec.last(t, "u1", car.ActionCreateSession); cr.ClientSession != "cs-newer" || cr.UserIP != "203.0.113.10" {
			t.Fatalf("the re-attach's CreateSession carried %+v", cr)
		}
	})
}
