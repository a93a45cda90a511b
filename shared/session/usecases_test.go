package session

import (
	"context"
	"errors"
	"math"
	"slices"
	"testing"
	"time"

	"github.com/carqueue/carqueue/shared/car"
	"github.com/carqueue/carqueue/shared/queue"
	"github.com/carqueue/carqueue/shared/redistest"
)

// The use cases on the real queue in front of the emulated CAR. testOptions' jitter of 0.5
// makes NextPoll exactly PollMin × √position.

// start is Start for u with IP 203.0.113.9 and ClientSession cs, failing the test on error.
func (e *realEnv) start(t *testing.T, u, cs string) View {
	t.Helper()
	v, err := e.s.Start(context.Background(), u, client("203.0.113.9", cs), queue.Trusted)
	if err != nil {
		t.Fatalf("start %s: %v", u, err)
	}
	return v
}

func (e *realEnv) admittedTotal(t *testing.T) int64 {
	t.Helper()
	st, err := e.s.Stats(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return st.AdmittedTotal
}

func wantReady(t *testing.T, e *realEnv, u string, v View) {
	t.Helper()
	if v.Status != StatusReady || v.ServerSession == "" || v.NextHeartbeat != 15*time.Second || v.ReconnectWindow != testHeartbeatTimeout {
		t.Fatalf("%s: %+v, want Ready with a ServerSession, NextHeartbeat and ReconnectWindow", u, v)
	}
	if st := e.state(t, u); st.State != queue.StateReady || st.ServerSession != v.ServerSession {
		t.Fatalf("%s in the queue: %+v, want Ready with %q", u, st, v.ServerSession)
	}
}

func wantQueued(t *testing.T, u string, v View, pos, length int64) {
	t.Helper()
	next := time.Duration(float64(time.Second.Milliseconds())*math.Sqrt(float64(pos))) * time.Millisecond
	if v.Status != StatusQueued || v.Position != pos || v.Length != length || v.NextPoll != next || v.ServerSession != "" {
		t.Fatalf("%s: %+v, want Queued %d of %d polling in %v", u, v, pos, length, next)
	}
}

func TestStartAdmitsAtOnceOnAFreeSlot(t *testing.T) {
	eachBackend(t, func(t *testing.T, b redistest.Backend) {
		e := newRealEnv(t, b, 2, 2)
		v := e.start(t, "u1", "cs-1")
		wantReady(t, e, "u1", v)
		if s := e.sessions(); !slices.Equal(s, []string{"u1"}) {
			t.Fatalf("emulator sessions %v", s)
		}
		if cr := e.rec.last(t, "u1", car.ActionCreateSession); cr.ClientSession != "cs-1" {
			t.Fatalf("CreateSession carried %+v", cr)
		}
		if n := e.admittedTotal(t); n != 1 {
			t.Fatalf("AdmittedTotal %d, want 1", n)
		}
	})
}

func TestStartQueuesBehindOthers(t *testing.T) {
	eachBackend(t, func(t *testing.T, b redistest.Backend) {
		e := newRealEnv(t, b, 1, 1)
		wantReady(t, e, "u1", e.start(t, "u1", "cs-1"))
		// No slot: the head waits without calling CAR, the next one behind it.
		wantQueued(t, "u2", e.start(t, "u2", "cs-2"), 1, 1)
		wantQueued(t, "u3", e.start(t, "u3", "cs-3"), 2, 2)
		wantQueued(t, "u4", e.start(t, "u4", "cs-4"), 3, 3)
		// Starting again keeps the place.
		wantQueued(t, "u3", e.start(t, "u3", "cs-3b"), 2, 3)
		for _, u := range []string{"u2", "u3", "u4"} {
			if got := e.rec.of(u); len(got) != 0 {
				t.Fatalf("CAR was called for %s: %+v", u, got)
			}
		}
		if st := e.state(t, "u3"); st.State != queue.StateQueued || st.Position != 2 {
			t.Fatalf("u3 %+v", st)
		}
	})
}

// A user who holds a slot and calls Start again (a page reload, with a new ClientSession)
// re-attaches to its slot with that session: no queueing, no new admission counted.
func TestStartAgainWhileHoldingReattaches(t *testing.T) {
	eachBackend(t, func(t *testing.T, b redistest.Backend) {
		ctx := context.Background()
		e := newRealEnv(t, b, 1, 1)
		first := e.start(t, "u1", "cs-1")
		wantReady(t, e, "u1", first)
		wantQueued(t, "u2", e.start(t, "u2", "cs-u2"), 1, 1)

		// Ready, never heartbeated.
		second := e.start(t, "u1", "cs-2")
		wantReady(t, e, "u1", second)
		if second.ServerSession == first.ServerSession {
			t.Fatalf("start again answered the old ServerSession %q", first.ServerSession)
		}
		if cr := e.rec.last(t, "u1", car.ActionCreateSession); cr.ClientSession != "cs-2" {
			t.Fatalf("the re-attach's CreateSession carried %+v, want cs-2", cr)
		}

		// Active.
		if v, err := e.s.Heartbeat(ctx, "u1", queue.Trusted); err != nil || v.Status != StatusActive {
			t.Fatalf("heartbeat %+v %v", v, err)
		}
		e.clk.Advance(testHeartbeatTimeout / 2)
		third := e.start(t, "u1", "cs-3")
		wantReady(t, e, "u1", third)
		if third.ServerSession == second.ServerSession {
			t.Fatalf("start again answered the old ServerSession %q", second.ServerSession)
		}
		if cr := e.rec.last(t, "u1", car.ActionCreateSession); cr.ClientSession != "cs-3" {
			t.Fatalf("the re-attach's CreateSession carried %+v, want cs-3", cr)
		}

		if s := e.sessions(); !slices.Equal(s, []string{"u1"}) {
			t.Fatalf("emulator sessions %v", s)
		}
		if n := e.admittedTotal(t); n != 1 {
			t.Fatalf("AdmittedTotal %d, want 1 (re-attaches are not admissions)", n)
		}
		if st := e.state(t, "u2"); st.State != queue.StateQueued || st.Position != 1 {
			t.Fatalf("u2 %+v, want still at the head", st)
		}
	})
}

// A holder past its reconnect window (not reaped yet) that calls Start again ends its old
// session and joins afresh, at the back.
func TestStartAgainPastTheWindowJoinsAfresh(t *testing.T) {
	eachBackend(t, func(t *testing.T, b redistest.Backend) {
		ctx := context.Background()
		e := newRealEnv(t, b, 1, 2)
		wantReady(t, e, "u1", e.start(t, "u1", "cs-1"))
		if _, err := e.s.Heartbeat(ctx, "u1", queue.Trusted); err != nil {
			t.Fatal(err)
		}
		wantQueued(t, "u2", e.start(t, "u2", "cs-u2"), 1, 1)
		e.clk.Advance(testHeartbeatTimeout + time.Second)
		if _, err := e.s.Poll(ctx, "u2", queue.Client{}, queue.Trusted); err != nil { // u2 keeps polling
			t.Fatal(err)
		}
		v := e.start(t, "u1", "cs-2")
		wantQueued(t, "u1", v, 2, 2)
		if v.Note != "expired holder restarted" {
			t.Errorf("note %q", v.Note)
		}
		if got := e.rec.actions("u1"); !slices.Equal(got, []string{car.ActionApplyConcurrent, car.ActionCreateSession, car.ActionDestroySession}) {
			t.Fatalf("CAR requests for u1 %v, want the old session destroyed", got)
		}
		// u2 got the freed slot (CAR has a second one while the first cleans up).
		v, err := e.s.Poll(ctx, "u2", queue.Client{}, queue.Trusted)
		if err != nil {
			t.Fatal(err)
		}
		wantReady(t, e, "u2", v)
	})
}

func TestPollAdmitsTheHeadWhenASlotFrees(t *testing.T) {
	eachBackend(t, func(t *testing.T, b redistest.Backend) {
		ctx := context.Background()
		e := newRealEnv(t, b, 1, 1)
		wantReady(t, e, "u1", e.start(t, "u1", "cs-1"))
		wantQueued(t, "u2", e.start(t, "u2", "cs-2"), 1, 1)
		wantQueued(t, "u3", e.start(t, "u3", "cs-3"), 2, 2)
		poll := func(u string) View {
			t.Helper()
			v, err := e.s.Poll(ctx, u, queue.Client{}, queue.Trusted)
			if err != nil {
				t.Fatalf("poll %s: %v", u, err)
			}
			return v
		}
		wantQueued(t, "u2", poll("u2"), 1, 2)
		if got := e.rec.of("u2"); len(got) != 0 {
			t.Fatalf("CAR called for u2 while no slot was free: %+v", got)
		}

		if s, err := e.s.Stop(ctx, "u1", queue.Trusted); err != nil || !s.Released {
			t.Fatalf("stop u1: %+v %v", s, err)
		}
		// The queue has a slot, but CAR's is still cleaning up: NoIdle keeps u2 at the head.
		v := poll("u2")
		wantQueued(t, "u2", v, 1, 2)
		if v.Note != "admission requeued" {
			t.Errorf("note %q, want the requeue noted", v.Note)
		}
		// Only the head is admitted.
		wantQueued(t, "u3", poll("u3"), 2, 2)
		if got := e.rec.of("u3"); len(got) != 0 {
			t.Fatalf("CAR called for u3, not at the head: %+v", got)
		}
		e.clk.Advance(testCleanupDelay + time.Second)
		wantReady(t, e, "u2", poll("u2"))
		wantQueued(t, "u3", poll("u3"), 1, 1)
		if cr := e.rec.last(t, "u2", car.ActionCreateSession); cr.ClientSession != "cs-2" || cr.UserIP != "203.0.113.9" {
			t.Fatalf("u2's CreateSession carried %+v", cr)
		}
	})
}

func TestReconnect(t *testing.T) {
	for _, b := range redistest.Backends(t) {
		t.Run(b.Name+"/inside the window re-attaches", func(t *testing.T) {
			ctx := context.Background()
			e := newRealEnv(t, b, 1, 1)
			first := e.start(t, "u1", "cs-1")
			if _, err := e.s.Heartbeat(ctx, "u1", queue.Trusted); err != nil {
				t.Fatal(err)
			}
			wantQueued(t, "u2", e.start(t, "u2", "cs-u2"), 1, 1)
			e.clk.Advance(testHeartbeatTimeout - time.Second)
			v, err := e.s.Reconnect(ctx, "u1", client("198.51.100.4", "cs-2"), queue.Trusted)
			if err != nil {
				t.Fatal(err)
			}
			wantReady(t, e, "u1", v)
			if v.ServerSession == first.ServerSession {
				t.Fatalf("reconnect answered the old ServerSession")
			}
			if cr := e.rec.last(t, "u1", car.ActionCreateSession); cr.ClientSession != "cs-2" || cr.UserIP != "198.51.100.4" {
				t.Fatalf("the reconnect's CreateSession carried %+v", cr)
			}
			if n := e.admittedTotal(t); n != 1 {
				t.Fatalf("AdmittedTotal %d, want 1", n)
			}
			if st := e.state(t, "u2"); st.State != queue.StateQueued || st.Position != 1 {
				t.Fatalf("u2 %+v", st)
			}

			// CAR fails the re-attach: the user keeps its slot, and is told to retry rather
			// than handed the ServerSession of its old ClientSession.
			e.emu.Script(car.ActionCreateSession, "InternalError")
			if v, err := e.s.Reconnect(ctx, "u1", client("198.51.100.4", "cs-3"), queue.Trusted); !errors.Is(err, ErrCARUnavailable) || car.KindOf(err) != car.KindTransient {
				t.Fatalf("reconnect with CAR failing: %+v %v, want ErrCARUnavailable", v, err)
			}
			if st := e.state(t, "u1"); st.State != queue.StateReady {
				t.Fatalf("u1 %+v, want still holding", st)
			}
			if s := e.sessions(); !slices.Equal(s, []string{"u1"}) {
				t.Fatalf("emulator sessions %v", s)
			}
		})
		t.Run(b.Name+"/outside the window behaves like Start", func(t *testing.T) {
			ctx := context.Background()
			e := newRealEnv(t, b, 1, 2)
			first := e.start(t, "u1", "cs-1")
			if _, err := e.s.Heartbeat(ctx, "u1", queue.Trusted); err != nil {
				t.Fatal(err)
			}
			e.clk.Advance(testHeartbeatTimeout + time.Second)
			v, err := e.s.Reconnect(ctx, "u1", client("198.51.100.4", "cs-2"), queue.Trusted)
			if err != nil {
				t.Fatal(err)
			}
			// Its old session ended, it joined afresh and, the line being empty, was admitted.
			wantReady(t, e, "u1", v)
			if v.ServerSession == first.ServerSession {
				t.Fatalf("reconnect answered the old ServerSession")
			}
			want := []string{car.ActionApplyConcurrent, car.ActionCreateSession, car.ActionDestroySession, car.ActionApplyConcurrent, car.ActionCreateSession}
			if got := e.rec.actions("u1"); !slices.Equal(got, want) {
				t.Fatalf("CAR requests for u1 %v, want %v", got, want)
			}
			if n := e.admittedTotal(t); n != 2 {
				t.Fatalf("AdmittedTotal %d, want 2 (a fresh admission)", n)
			}
		})
		t.Run(b.Name+"/unknown user behaves like Start", func(t *testing.T) {
			e := newRealEnv(t, b, 1, 1)
			v, err := e.s.Reconnect(context.Background(), "u1", client("198.51.100.4", "cs-1"), queue.Trusted)
			if err != nil {
				t.Fatal(err)
			}
			wantReady(t, e, "u1", v)
			v, err = e.s.Reconnect(context.Background(), "u2", client("198.51.100.5", "cs-2"), queue.Trusted)
			if err != nil {
				t.Fatal(err)
			}
			wantQueued(t, "u2", v, 1, 1)
		})
	}
}

func TestHeartbeat(t *testing.T) {
	eachBackend(t, func(t *testing.T, b redistest.Backend) {
		ctx := context.Background()
		e := newRealEnv(t, b, 1, 1)
		wantReady(t, e, "u1", e.start(t, "u1", "cs-1"))
		wantQueued(t, "u2", e.start(t, "u2", "cs-2"), 1, 1)
		wantQueued(t, "u3", e.start(t, "u3", "cs-3"), 2, 2)

		active := View{Status: StatusActive, NextHeartbeat: 15 * time.Second, ReconnectWindow: testHeartbeatTimeout}
		for range 2 { // Ready → Active, then Active stays
			if v, err := e.s.Heartbeat(ctx, "u1", queue.Trusted); err != nil || v != active {
				t.Fatalf("heartbeat of the holder: %+v %v, want %+v", v, err, active)
			}
			if st := e.state(t, "u1"); st.State != queue.StateActive {
				t.Fatalf("u1 %+v", st)
			}
		}
		// A queued user is told its place.
		v, err := e.s.Heartbeat(ctx, "u3", queue.Trusted)
		if err != nil {
			t.Fatal(err)
		}
		wantQueued(t, "u3", v, 2, 2)
		// Anyone else is Expired, with the reason when the queue remembers one.
		if v, err := e.s.Heartbeat(ctx, "nobody", queue.Trusted); err != nil || v != (View{Status: StatusExpired}) {
			t.Fatalf("heartbeat of an unknown user: %+v %v", v, err)
		}
		if _, err := e.s.Stop(ctx, "u2", queue.Trusted); err != nil {
			t.Fatal(err)
		}
		if v, err := e.s.Heartbeat(ctx, "u2", queue.Trusted); err != nil || v != (View{Status: StatusExpired, Reason: queue.ReasonStopped}) {
			t.Fatalf("heartbeat of a stopped user: %+v %v", v, err)
		}
	})
}

func TestStop(t *testing.T) {
	eachBackend(t, func(t *testing.T, b redistest.Backend) {
		ctx := context.Background()
		e := newRealEnv(t, b, 2, 4)
		wantReady(t, e, "u1", e.start(t, "u1", "cs-1"))
		wantReady(t, e, "u2", e.start(t, "u2", "cs-2"))
		wantQueued(t, "u3", e.start(t, "u3", "cs-3"), 1, 1)
		stop := func(u string, want Stopped) {
			t.Helper()
			if s, err := e.s.Stop(ctx, u, queue.Trusted); err != nil || s != want {
				t.Fatalf("stop %s: %+v %v, want %+v", u, s, err, want)
			}
		}

		// A queued user leaves the line; CAR is not called.
		stop("u3", Stopped{})
		if st := e.state(t, "u3"); st.State != queue.StateNone || st.Reason != queue.ReasonStopped {
			t.Fatalf("u3 %+v", st)
		}
		if got := e.rec.of("u3"); len(got) != 0 {
			t.Fatalf("CAR called for u3: %+v", got)
		}

		// A holder is released at once: session destroyed, slot free.
		stop("u1", Stopped{Released: true})
		if st := e.state(t, "u1"); st.State != queue.StateNone || st.Reason != queue.ReasonStopped {
			t.Fatalf("u1 %+v", st)
		}
		if s := e.sessions(); !slices.Equal(s, []string{"u2"}) {
			t.Fatalf("emulator sessions %v", s)
		}
		stop("u1", Stopped{}) // twice is fine

		// CAR down: the stop is deferred, the user stays Releasing, holding its slot.
		e.emu.Script(car.ActionDestroySession, "InternalError")
		stop("u2", Stopped{Deferred: true})
		if st := e.state(t, "u2"); st.State != queue.StateReleasing {
			t.Fatalf("u2 %+v, want Releasing", st)
		}
		if s := e.sessions(); !slices.Equal(s, []string{"u2"}) {
			t.Fatalf("emulator sessions %v, want u2's kept", s)
		}
		// Starting again must wait for the release: CAR still down.
		e.emu.Script(car.ActionDestroySession, "InternalError")
		if v, err := e.s.Start(ctx, "u2", client("203.0.113.9", "cs-2b"), queue.Trusted); !errors.Is(err, ErrCARUnavailable) {
			t.Fatalf("start while still releasing: %+v %v, want ErrCARUnavailable", v, err)
		}
		if st := e.state(t, "u2"); st.State != queue.StateReleasing {
			t.Fatalf("u2 %+v, want Releasing", st)
		}
		// Stopping again retries the release, now that CAR answers.
		stop("u2", Stopped{Released: true})
		if st := e.state(t, "u2"); st.State != queue.StateNone || st.Reason != queue.ReasonStopped {
			t.Fatalf("u2 %+v", st)
		}
		if s := e.sessions(); len(s) != 0 {
			t.Fatalf("emulator sessions %v", s)
		}
	})
}

// Start of a user still Releasing finishes the release first, then joins afresh.
func TestStartFinishesAPendingRelease(t *testing.T) {
	eachBackend(t, func(t *testing.T, b redistest.Backend) {
		ctx := context.Background()
		e := newRealEnv(t, b, 1, 2)
		first := e.start(t, "u1", "cs-1")
		e.emu.Script(car.ActionDestroySession, "InternalError")
		if s, err := e.s.Stop(ctx, "u1", queue.Trusted); err != nil || !s.Deferred {
			t.Fatalf("stop: %+v %v", s, err)
		}
		v := e.start(t, "u1", "cs-2")
		wantReady(t, e, "u1", v)
		if v.ServerSession == first.ServerSession {
			t.Fatal("start answered the destroyed session")
		}
		want := []string{car.ActionApplyConcurrent, car.ActionCreateSession, car.ActionDestroySession, car.ActionDestroySession, car.ActionApplyConcurrent, car.ActionCreateSession}
		if got := e.rec.actions("u1"); !slices.Equal(got, want) {
			t.Fatalf("CAR requests %v, want %v", got, want)
		}
	})
}

func TestRefusedIsErrRefused(t *testing.T) {
	eachBackend(t, func(t *testing.T, b redistest.Backend) {
		ctx := context.Background()
		e := newRealEnv(t, b, 2, 2)
		e.emu.Script(car.ActionApplyConcurrent, "InvalidParameterValue")
		v, err := e.s.Start(ctx, "u1", client("203.0.113.9", "cs-1"), queue.Trusted)
		if !errors.Is(err, ErrRefused) || car.KindOf(err) != car.KindOurFault {
			t.Fatalf("start: %+v %v, want ErrRefused carrying CAR's error", v, err)
		}
		if st := e.state(t, "u1"); st.State != queue.StateNone || st.Reason != queue.ReasonCARRefused {
			t.Fatalf("u1 %+v", st)
		}
		// Refused on a reconnect: CAR may still hold the old session, so the user releases.
		wantReady(t, e, "u2", e.start(t, "u2", "cs-2"))
		e.emu.Script(car.ActionApplyConcurrent, "AuthFailure.SignatureFailure")
		if v, err := e.s.Reconnect(ctx, "u2", client("203.0.113.9", "cs-2b"), queue.Trusted); !errors.Is(err, ErrRefused) || car.KindOf(err) != car.KindAuth {
			t.Fatalf("reconnect: %+v %v, want ErrRefused", v, err)
		}
		if st := e.state(t, "u2"); st.State != queue.StateReleasing {
			t.Fatalf("u2 %+v, want Releasing", st)
		}
		// Polling a refused user answers Expired with the reason.
		if v, err := e.s.Poll(ctx, "u1", queue.Client{}, queue.Trusted); err != nil || v.Status != StatusExpired || v.Reason != queue.ReasonCARRefused {
			t.Fatalf("poll u1: %+v %v", v, err)
		}
	})
}

// The client's IP reaches CAR as UserIp, also when the user is admitted long after the
// request that brought it (a later poll without it); without one, DefaultUserIP.
func TestClientIPReachesCARAsUserIP(t *testing.T) {
	eachBackend(t, func(t *testing.T, b redistest.Backend) {
		ctx := context.Background()
		e := newRealEnv(t, b, 1, 3) // a destroyed session's CAR slot cleans up a while
		if _, err := e.s.Start(ctx, "u1", client("2001:db8::7", "cs-1"), queue.Trusted); err != nil {
			t.Fatal(err)
		}
		v, err := e.s.Start(ctx, "u2", client("198.51.100.23", "cs-2"), queue.Trusted)
		if err != nil || v.Status != StatusQueued {
			t.Fatalf("start u2: %+v %v", v, err)
		}
		if _, err := e.s.Stop(ctx, "u1", queue.Trusted); err != nil {
			t.Fatal(err)
		}
		if v, err = e.s.Poll(ctx, "u2", queue.Client{}, queue.Trusted); err != nil || v.Status != StatusReady {
			t.Fatalf("poll u2: %+v %v", v, err)
		}
		if _, err := e.s.Stop(ctx, "u2", queue.Trusted); err != nil {
			t.Fatal(err)
		}
		if v, err = e.s.Start(ctx, "u3", client("", "cs-3"), queue.Trusted); err != nil || v.Status != StatusReady {
			t.Fatalf("start u3: %+v %v", v, err)
		}
		for u, ip := range map[string]string{"u1": "2001:db8::7", "u2": "198.51.100.23", "u3": DefaultUserIP} {
			for _, a := range []string{car.ActionApplyConcurrent, car.ActionCreateSession} {
				if cr := e.rec.last(t, u, a); cr.UserIP != ip {
					t.Errorf("%s of %s carried UserIp %q, want %q", a, u, cr.UserIP, ip)
				}
			}
		}
	})
}

// racingQueue is the real queue with a hook run before each Reattach: it stages a concurrent
// call of the same user in the gap between Start's Join and its Reattach.
type racingQueue struct {
	*queue.Queue
	beforeReattach func()
}

func (r *racingQueue) Reattach(ctx context.Context, userID string, c queue.Client, p queue.Proof) (queue.Claim, bool, error) {
	if h := r.beforeReattach; h != nil {
		r.beforeReattach = nil
		h()
	}
	return r.Queue.Reattach(ctx, userID, c, p)
}

// A Start again while a concurrent call of the same user is re-attaching never ends the
// user's session: it is told where it stands, and the other call's admission completes.
func TestStartDuringAConcurrentReattachKeepsTheSlot(t *testing.T) {
	eachBackend(t, func(t *testing.T, b redistest.Backend) {
		ctx := context.Background()
		e := newRealEnv(t, b, 1, 1)
		wantReady(t, e, "u1", e.start(t, "u1", "cs-1"))
		if _, err := e.s.Heartbeat(ctx, "u1", queue.Trusted); err != nil {
			t.Fatal(err)
		}
		rq := &racingQueue{Queue: e.q}
		s := newService(t, rq, e.s.car, e.s.opts)
		var other queue.Claim
		rq.beforeReattach = func() {
			c, ok, err := e.q.Reattach(ctx, "u1", client("203.0.113.9", "cs-other"), queue.Trusted)
			if err != nil || !ok {
				t.Fatalf("concurrent reattach: %v %v", ok, err)
			}
			other = c
		}
		v, err := s.Start(ctx, "u1", client("203.0.113.9", "cs-2"), queue.Trusted)
		if err != nil || v.Status != StatusAdmitting {
			t.Fatalf("start during a concurrent reattach: %+v %v, want Admitting", v, err)
		}
		if got := e.rec.actions("u1"); slices.Contains(got, car.ActionDestroySession) {
			t.Fatalf("the session was destroyed: %v", got)
		}
		if st := e.state(t, "u1"); st.State != queue.StateAdmitting {
			t.Fatalf("u1 %+v, want still Admitting", st)
		}
		res, err := s.Admit(ctx, other)
		if err != nil || res.Outcome != Admitted {
			t.Fatalf("the concurrent admission: %+v %v", res, err)
		}
		if st := e.state(t, "u1"); st.State != queue.StateReady || st.ServerSession != res.ServerSession {
			t.Fatalf("u1 %+v", st)
		}
	})
}

// deadlineDestroy is a CAR whose DestroySession only notes the deadline it was given and
// answers as a CAR that did not answer in time.
type deadlineDestroy struct {
	CAR
	deadline time.Time
}

func (d *deadlineDestroy) DestroySession(ctx context.Context, userID string) error {
	d.deadline, _ = ctx.Deadline()
	return context.DeadlineExceeded
}

// Stop waits at most StopWait for CAR: a hanging CAR defers the release to the reaper, and
// the user is stopped all the same.
func TestStopWaitsAtMostStopWait(t *testing.T) {
	eachBackend(t, func(t *testing.T, b redistest.Backend) {
		ctx := context.Background()
		e := newRealEnv(t, b, 1, 1)
		wantReady(t, e, "u1", e.start(t, "u1", "cs-1"))
		o := e.s.opts
		o.StopWait = 3 * time.Second // well under CARBudget
		dd := &deadlineDestroy{CAR: e.s.car}
		s := newService(t, e.q, dd, o)
		if st, err := s.Stop(ctx, "u1", queue.Trusted); err != nil || st != (Stopped{Deferred: true}) {
			t.Fatalf("stop with CAR hanging: %+v %v, want Deferred", st, err)
		}
		if limit := time.Now().Add(o.StopWait); dd.deadline.IsZero() || dd.deadline.After(limit) {
			t.Fatalf("DestroySession deadline %v, want set and not after %v (StopWait)", dd.deadline, limit)
		}
		if st := e.state(t, "u1"); st.State != queue.StateReleasing {
			t.Fatalf("u1 %+v, want Releasing", st)
		}
		if v, err := s.Poll(ctx, "u1", queue.Client{}, queue.Trusted); err != nil || v.Status != StatusExpired {
			t.Fatalf("poll after stop: %+v %v, want Expired", v, err)
		}
	})
}
