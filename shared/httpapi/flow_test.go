package httpapi

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/carqueue/carqueue/shared/queue"
	"github.com/carqueue/carqueue/shared/reaper"
	"github.com/carqueue/carqueue/shared/redistest"
	"github.com/carqueue/carqueue/shared/session"
)

// TestFIFOAndCapacity: users are admitted in the order of their first /start, /start again
// keeps the place, and no more than capacity users hold a slot on either side.
func TestFIFOAndCapacity(t *testing.T) {
	eachBackend(t, func(t *testing.T, b redistest.Backend) {
		const capacity = 2
		e := newEnv(t, b, envOpts{capacity: capacity})
		users := []string{"u0", "u1", "u2", "u3", "u4"}
		for i, u := range users {
			a := e.start(u, "cs-"+u)
			if i < capacity {
				want(t, a, 200, 0, StatusReady)
				continue
			}
			want(t, a, 200, 0, StatusQueued)
			if a.Data.Position != int64(i-capacity+1) || a.Data.QueueLength != int64(i-capacity+1) || a.Data.NextPollMs <= 0 {
				t.Fatalf("%s: %+v", u, a.Data)
			}
			e.checkCapacity(capacity)
		}
		// /start again keeps the place.
		a := e.start("u3", "cs-u3-newer")
		want(t, a, 200, 0, StatusQueued)
		if a.Data.Position != 2 || a.Data.QueueLength != 3 {
			t.Fatalf("restart lost its place: %+v", a.Data)
		}
		// Admit the queued users one by one as the holders leave; the order is FIFO even when
		// a later user polls first.
		for _, next := range []string{"u2", "u3", "u4"} {
			holders := e.holders(users)
			if len(holders) != capacity {
				t.Fatalf("holders %v", holders)
			}
			want(t, e.stop(holders[0]), 200, 0, StatusStopped)
			e.clock.Advance(cleanupDelay + time.Second) // CAR cleans the slot up
			for _, u := range users {
				if u == next {
					continue
				}
				if a := e.poll(u); a.Data.Status == StatusReady && !contains(holders, u) {
					t.Fatalf("%s jumped the line ahead of %s", u, next)
				}
			}
			want(t, e.poll(next), 200, 0, StatusReady)
			e.checkCapacity(capacity)
		}
	})
}

// holders returns the users currently Ready (in users order).
func (e *env) holders(users []string) []string {
	var out []string
	for _, u := range users {
		if e.poll(u).Data.Status == StatusReady {
			out = append(out, u)
		}
	}
	return out
}

// TestNoIdleKeepsPlace: CAR still cleaning the freed slot (NoIdle) leaves the head at its place.
func TestNoIdleKeepsPlace(t *testing.T) {
	eachBackend(t, func(t *testing.T, b redistest.Backend) {
		e := newEnv(t, b, envOpts{capacity: 1})
		e.fillOneSlot(t, false)
		want(t, e.stop("a"), 200, 0, StatusStopped)
		a := e.poll("b") // slot free in the queue, CAR still cleaning: NoIdle → requeued at the front
		want(t, a, 200, 0, StatusQueued)
		if a.Data.Position != 1 {
			t.Fatalf("b lost its place: %+v", a.Data)
		}
		if a := e.poll("c"); a.Data.Position != 2 {
			t.Fatalf("c: %+v", a.Data)
		}
		e.clock.Advance(cleanupDelay + time.Second)
		want(t, e.poll("b"), 200, 0, StatusReady)
		e.checkCapacity(1)
	})
}

// TestCARTransientKeepsPlace: a transient CAR error answers the user's place, not an error.
func TestCARTransientKeepsPlace(t *testing.T) {
	e := newEnv(t, redistest.Embedded(t), envOpts{capacity: 1})
	e.emu.Script("ApplyConcurrent", "InternalError")
	a := e.start("a", "cs")
	want(t, a, 200, 0, StatusQueued)
	if a.Data.Position != 1 {
		t.Fatalf("%+v", a.Data)
	}
	want(t, e.poll("a"), 200, 0, StatusReady)
}

func TestHeartbeatExpiry(t *testing.T) {
	eachBackend(t, func(t *testing.T, b redistest.Backend) {
		e := newEnv(t, b, envOpts{capacity: 1})
		want(t, e.start("a", "cs"), 200, 0, StatusReady)
		want(t, e.start("b", "cs"), 200, 0, StatusQueued)
		want(t, e.heartbeat("a"), 200, 0, StatusActive)
		for i := 0; i < 4; i++ { // heartbeats keep a (and polls keep b) alive past the timeout
			e.clock.Advance(hbTimeout / 2)
			want(t, e.heartbeat("a"), 200, 0, StatusActive)
			want(t, e.poll("b"), 200, 0, StatusQueued)
			e.reap()
		}
		e.clock.Advance(hbTimeout + time.Second)
		want(t, e.poll("b"), 200, 0, StatusQueued)
		rep := e.reap()
		if rep.Reaped[queue.ReasonHeartbeatTimeout] != 1 {
			t.Fatalf("report %+v", rep)
		}
		if s := e.emu.State(); len(s.Sessions) != 0 && !(len(s.Sessions) == 1 && s.Sessions[0] == "b") {
			t.Fatalf("a's session not destroyed: %+v", s)
		}
		a := e.heartbeat("a")
		want(t, a, 200, 0, StatusExpired)
		if a.Data.Reason != string(queue.ReasonHeartbeatTimeout) {
			t.Fatalf("reason %q", a.Data.Reason)
		}
		want(t, e.poll("a"), 200, 0, StatusExpired)
		e.clock.Advance(cleanupDelay + time.Second)
		want(t, e.poll("b"), 200, 0, StatusReady)
		e.checkCapacity(1)
	})
}

func TestIdleExpiry(t *testing.T) {
	eachBackend(t, func(t *testing.T, b redistest.Backend) {
		e := newEnv(t, b, envOpts{capacity: 1})
		e.fillOneSlot(t, true)
		e.clock.Advance(idleTimeout / 2)
		want(t, e.poll("c"), 200, 0, StatusQueued)
		e.clock.Advance(idleTimeout/2 + time.Second) // b silent for longer than the idle timeout, c not
		want(t, e.heartbeat("a"), 200, 0, StatusActive)
		rep := e.reap()
		if rep.Reaped[queue.ReasonIdle] != 1 {
			t.Fatalf("report %+v", rep)
		}
		a := e.poll("b")
		want(t, a, 200, 0, StatusExpired)
		if a.Data.Reason != string(queue.ReasonIdle) {
			t.Fatalf("reason %q", a.Data.Reason)
		}
		a = e.poll("c")
		want(t, a, 200, 0, StatusQueued)
		if a.Data.Position != 1 || a.Data.QueueLength != 1 {
			t.Fatalf("c: %+v", a.Data)
		}
		// b calls /start again: back in line, behind c.
		a = e.start("b", "cs")
		want(t, a, 200, 0, StatusQueued)
		if a.Data.Position != 2 {
			t.Fatalf("b: %+v", a.Data)
		}
	})
}

func TestNeverStartedExpiry(t *testing.T) {
	eachBackend(t, func(t *testing.T, b redistest.Backend) {
		e := newEnv(t, b, envOpts{capacity: 1})
		want(t, e.start("a", "cs"), 200, 0, StatusReady)
		e.clock.Advance(readyTimeout + time.Second)
		rep := e.reap()
		if rep.Reaped[queue.ReasonNeverStarted] != 1 {
			t.Fatalf("report %+v", rep)
		}
		if s := e.emu.State(); len(s.Sessions) != 0 {
			t.Fatalf("session not destroyed: %+v", s)
		}
		a := e.heartbeat("a")
		want(t, a, 200, 0, StatusExpired)
		if a.Data.Reason != string(queue.ReasonNeverStarted) {
			t.Fatalf("reason %q", a.Data.Reason)
		}
	})
}

func TestReconnect(t *testing.T) {
	eachBackend(t, func(t *testing.T, b redistest.Backend) {
		t.Run("inside the window", func(t *testing.T) {
			e := newEnv(t, b, envOpts{capacity: 1})
			first := e.start("a", "cs-1")
			want(t, first, 200, 0, StatusReady)
			want(t, e.heartbeat("a"), 200, 0, StatusActive)
			want(t, e.start("b", "cs"), 200, 0, StatusQueued)
			e.clock.Advance(hbTimeout - 5*time.Second) // dropped, comes back just in time
			want(t, e.poll("b"), 200, 0, StatusQueued)
			a := e.reconnect("a", "cs-2")
			want(t, a, 200, 0, StatusReady)
			if a.Data.ServerSession == "" || a.Data.ServerSession == first.Data.ServerSession || a.Data.Ticket == "" {
				t.Fatalf("reconnect: %+v", a.Data)
			}
			want(t, e.heartbeat("a"), 200, 0, StatusActive)
			if s := e.emu.State(); len(s.Sessions) != 1 || s.Sessions[0] != "a" {
				t.Fatalf("emulator %+v", s)
			}
			if a := e.poll("b"); a.Data.Position != 1 {
				t.Fatalf("b: %+v", a.Data)
			}
			e.checkCapacity(1)
		})
		t.Run("outside the window it is /start", func(t *testing.T) {
			e := newEnv(t, b, envOpts{capacity: 1})
			want(t, e.start("a", "cs-1"), 200, 0, StatusReady)
			want(t, e.heartbeat("a"), 200, 0, StatusActive)
			want(t, e.start("b", "cs"), 200, 0, StatusQueued)
			e.clock.Advance(hbTimeout + time.Second)
			want(t, e.poll("b"), 200, 0, StatusQueued)
			e.reap() // a reaped
			e.clock.Advance(cleanupDelay + time.Second)
			want(t, e.poll("b"), 200, 0, StatusReady) // b took the slot
			a := e.reconnect("a", "cs-2")
			want(t, a, 200, 0, StatusQueued)
			if a.Data.Position != 1 || a.Data.Ticket == "" {
				t.Fatalf("a: %+v", a.Data)
			}
			e.checkCapacity(1)
		})
		t.Run("a queued user keeps its place", func(t *testing.T) {
			e := newEnv(t, b, envOpts{capacity: 1})
			e.fillOneSlot(t, false)
			a := e.reconnect("c", "cs-new")
			want(t, a, 200, 0, StatusQueued)
			if a.Data.Position != 2 {
				t.Fatalf("c: %+v", a.Data)
			}
		})
	})
}

// TestStartAgainWhileHolding: a page reload calls /start with a new ClientSession; a user who
// holds a slot, Active or still Ready (no heartbeat yet), gets a new session on its own slot
// without queueing, even with others waiting.
func TestStartAgainWhileHolding(t *testing.T) {
	for _, tc := range []struct {
		name   string
		before func(t *testing.T, e *env)
	}{
		{"active", func(t *testing.T, e *env) { want(t, e.heartbeat("a"), 200, 0, StatusActive) }},
		{"ready, others waiting", func(t *testing.T, e *env) { want(t, e.start("b", "cs"), 200, 0, StatusQueued) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, redistest.Embedded(t), envOpts{capacity: 1})
			first := e.start("a", "cs-1")
			want(t, first, 200, 0, StatusReady)
			tc.before(t, e)
			again := e.start("a", "cs-2")
			want(t, again, 200, 0, StatusReady)
			if again.Data.ServerSession == first.Data.ServerSession {
				t.Fatal("no new session for the new ClientSession")
			}
			e.checkCapacity(1)
		})
	}
}

func TestStop(t *testing.T) {
	eachBackend(t, func(t *testing.T, b redistest.Backend) {
		e := newEnv(t, b, envOpts{capacity: 1})
		e.fillOneSlot(t, true)

		// While queued: leaves the line, the others move up.
		want(t, e.stop("b"), 200, 0, StatusStopped)
		a := e.poll("b")
		want(t, a, 200, 0, StatusExpired)
		if a.Data.Reason != string(queue.ReasonStopped) {
			t.Fatalf("reason %q", a.Data.Reason)
		}
		if a := e.poll("c"); a.Data.Position != 1 || a.Data.QueueLength != 1 {
			t.Fatalf("c: %+v", a.Data)
		}

		// While holding: the session is destroyed and the slot freed at once.
		want(t, e.stop("a"), 200, 0, StatusStopped)
		if s := e.emu.State(); len(s.Sessions)+len(s.Locked) != 0 {
			t.Fatalf("CAR still holds %+v", s)
		}
		st := e.stats()
		if st.Map["Releasing"] != 0.0 || st.Map["Active"] != 0.0 || st.Map["Free"] != 1.0 {
			t.Fatalf("slot not freed: %v", st.Map)
		}
		want(t, e.heartbeat("a"), 200, 0, StatusExpired)

		// Idempotent, also for a user never seen.
		want(t, e.stop("a"), 200, 0, StatusStopped)
		want(t, e.stop("b"), 200, 0, StatusStopped)
		want(t, e.stop("never-seen"), 200, 0, StatusStopped)

		e.clock.Advance(cleanupDelay + time.Second)
		want(t, e.poll("c"), 200, 0, StatusReady)
		e.checkCapacity(1)
	})
}

// TestStopWhenCARDown: the client is stopped; the user stays Releasing (holding its slot)
// until the reaper gets DestroySession through; /start meanwhile finishes the release first.
func TestStopWhenCARDown(t *testing.T) {
	e := newEnv(t, redistest.Embedded(t), envOpts{capacity: 1})
	want(t, e.start("a", "cs"), 200, 0, StatusReady)
	e.emu.Script("DestroySession", "InternalError", "InternalError")
	want(t, e.stop("a"), 200, 0, StatusStopped)
	if st := e.stats(); st.Map["Releasing"] != 1.0 {
		t.Fatalf("want a Releasing: %v", st.Map)
	}
	want(t, e.start("b", "cs"), 200, 0, StatusQueued) // a still holds the slot
	a := e.start("a", "cs")                           // DestroySession fails once more: 503
	if a.Status != 503 || a.Env.Code != 5030 {
		t.Fatalf("got %d/%d %q", a.Status, a.Env.Code, a.Env.Msg)
	}
	a = e.start("a", "cs") // now it goes through: a joins the line again, behind b
	want(t, a, 200, 0, StatusQueued)
	if a.Data.Position != 2 {
		t.Fatalf("a: %+v", a.Data)
	}
	e.checkCapacity(1)
}

// TestETA: EtaSeconds appears once enough admissions have been measured (session.MinETAAdmissions),
// and NextPollMs grows with the position.
func TestETA(t *testing.T) {
	e := newEnv(t, redistest.Embedded(t), envOpts{capacity: 1, slots: 4})
	// Admissions one after another; until MinETAAdmissions of them, a queued user is told none.
	prev := "p0"
	want(t, e.start(prev, "cs"), 200, 0, StatusReady)
	for i := 1; i < session.MinETAAdmissions; i++ {
		next := fmt.Sprintf("p%d", i)
		want(t, e.start(next, "cs"), 200, 0, StatusQueued)
		e.clock.Advance(10 * time.Second) // let the cached rate expire
		if a := e.poll(next); a.Data.Status != StatusQueued || a.Data.EtaSeconds != nil {
			t.Fatalf("after %d admissions: %s", i, a.Env.Data)
		}
		want(t, e.stop(prev), 200, 0, StatusStopped)
		want(t, e.poll(next), 200, 0, StatusReady)
		prev = next
	}
	var last int64
	for i := 1; i <= 9; i++ {
		a := e.start(fmt.Sprintf("u%d", i), "cs")
		want(t, a, 200, 0, StatusQueued)
		if a.Data.NextPollMs < last {
			t.Fatalf("NextPollMs shrank at position %d", a.Data.Position)
		}
		last = a.Data.NextPollMs
	}
	e.clock.Advance(10 * time.Second) // let the cached rate expire
	a := e.poll("u9")
	if a.Data.EtaSeconds == nil || *a.Data.EtaSeconds <= 0 {
		t.Fatalf("no ETA with a known rate: %s", a.Env.Data)
	}
	if a.Data.NextPollMs != 3000 { // √9 s, jitter pinned to 0
		t.Fatalf("NextPollMs %d", a.Data.NextPollMs)
	}
}

// TestReconnectCARTrouble: a reattach that CAR fails transiently answers 503 (retry), never
// the old ServerSession, and the user keeps its slot.
func TestReconnectCARTrouble(t *testing.T) {
	e := newEnv(t, redistest.Embedded(t), envOpts{capacity: 1})
	want(t, e.start("a", "cs-1"), 200, 0, StatusReady)
	want(t, e.heartbeat("a"), 200, 0, StatusActive)
	e.emu.Script("ApplyConcurrent", "InternalError")
	a := e.reconnect("a", "cs-2")
	if a.Status != 503 || a.Env.Code != 5030 || a.Header["Retry-After"] == "" {
		t.Fatalf("got %d/%d %q", a.Status, a.Env.Code, a.Env.Msg)
	}
	want(t, e.heartbeat("a"), 200, 0, StatusActive)
	want(t, e.reconnect("a", "cs-2"), 200, 0, StatusReady)
	e.checkCapacity(1)
}

// TestConcurrentRequests: many users at once never exceed capacity and get distinct places.
func TestConcurrentRequests(t *testing.T) {
	eachBackend(t, func(t *testing.T, b redistest.Backend) {
		const capacity, users = 3, 30
		e := newEnv(t, b, envOpts{capacity: capacity})
		answers := make([]answer, users)
		var wg sync.WaitGroup
		for i := 0; i < users; i++ {
			wg.Add(1)
			go func(i int) {
				defer wg.Done()
				answers[i] = e.start(fmt.Sprintf("c%02d", i), "cs")
			}(i)
		}
		wg.Wait()
		ready := 0
		for _, a := range answers {
			switch a.Data.Status {
			case StatusReady:
				ready++
			case StatusQueued:
			default:
				t.Fatalf("unexpected %d %+v %q", a.Status, a.Data, a.Env.Msg)
			}
		}
		if ready == 0 || ready > capacity {
			t.Fatalf("%d ready, capacity %d", ready, capacity)
		}
		e.checkCapacity(capacity)
		for i := 0; i < users; i++ {
			wg.Add(1)
			go func(i int) {
				defer wg.Done()
				u := fmt.Sprintf("c%02d", i)
				e.poll(u)
				e.heartbeat(u)
			}(i)
		}
		wg.Wait()
		e.checkCapacity(capacity)
		// Once quiet, the queued users hold the distinct places 1..n.
		positions := map[int64]bool{}
		queued := 0
		for i := 0; i < users; i++ {
			st, err := e.q.Poll(context.Background(), fmt.Sprintf("c%02d", i), queue.Client{}, queue.Trusted) // reads; never admits
			if err != nil {
				t.Fatal(err)
			}
			if st.State != queue.StateQueued {
				continue
			}
			queued++
			if positions[st.Position] || st.Position < 1 || st.Position > users {
				t.Fatalf("position %d twice or out of range", st.Position)
			}
			positions[st.Position] = true
		}
		if !positions[1] && queued > 0 || !positions[int64(queued)] && queued > 0 {
			t.Fatalf("positions %v not 1..%d", positions, queued)
		}
	})
}

// TestStartAfterWindowBeforeReap: back after HEARTBEAT_TIMEOUT but before the reaper ran, the
// old session is ended and the user queues afresh, behind those already waiting.
func TestStartAfterWindowBeforeReap(t *testing.T) {
	eachBackend(t, func(t *testing.T, b redistest.Backend) {
		e := newEnv(t, b, envOpts{capacity: 1})
		want(t, e.start("a", "cs-1"), 200, 0, StatusReady)
		want(t, e.heartbeat("a"), 200, 0, StatusActive)
		want(t, e.start("b", "cs"), 200, 0, StatusQueued)
		e.clock.Advance(hbTimeout + time.Second)
		want(t, e.poll("b"), 200, 0, StatusQueued)
		a := e.reconnect("a", "cs-2")
		want(t, a, 200, 0, StatusQueued)
		if a.Data.Position != 2 {
			t.Fatalf("a: %+v", a.Data)
		}
		if s := e.emu.State(); len(s.Sessions) != 0 {
			t.Fatalf("old session not destroyed: %+v", s)
		}
		e.clock.Advance(cleanupDelay + time.Second)
		want(t, e.poll("b"), 200, 0, StatusReady)
		e.checkCapacity(1)
	})
}

// TestHeartbeatWhileQueued: a queued user who heartbeats (a client that thinks it holds a
// slot) is told the truth, its place in line, and keeps that place.
func TestHeartbeatWhileQueued(t *testing.T) {
	eachBackend(t, func(t *testing.T, b redistest.Backend) {
		e := newEnv(t, b, envOpts{capacity: 1})
		e.fillOneSlot(t, true)
		a := e.heartbeat("c")
		want(t, a, 200, 0, StatusQueued)
		if a.Data.Position != 2 || a.Data.QueueLength != 2 || a.Data.NextPollMs <= 0 {
			t.Fatalf("heartbeat while queued: %+v", a.Data)
		}
		if a := e.poll("c"); a.Data.Status != StatusQueued || a.Data.Position != 2 {
			t.Fatalf("c lost its place: %+v", a.Data)
		}
	})
}

// TestConcurrentCallsOfOneUserKeepItsSlot: any mix of concurrent /start, /reconnect, /poll and
// /heartbeat of one holder leaves it holding its own slot: nobody answers Expired, CAR keeps
// exactly its one session, and the user waiting behind it is still waiting. (A /start whose
// Reattach lost the race to a concurrent re-attach used to take the holder for a late
// returner and stop it: the session was destroyed and the user queued behind the one who
// had waited behind it.)
func TestConcurrentCallsOfOneUserKeepItsSlot(t *testing.T) {
	eachBackend(t, func(t *testing.T, b redistest.Backend) {
		for round := 0; round < 3; round++ {
			e := newEnv(t, b, envOpts{capacity: 1})
			want(t, e.start("a", "cs-0"), 200, 0, StatusReady)
			want(t, e.heartbeat("a"), 200, 0, StatusActive)
			want(t, e.start("b", "cs"), 200, 0, StatusQueued)

			const callers = 24
			answers := make([]answer, callers)
			var wg sync.WaitGroup
			for i := range callers {
				wg.Go(func() {
					cs := fmt.Sprintf("cs-%d-%d", round, i)
					switch i % 4 {
					case 0:
						answers[i] = e.start("a", cs)
					case 1:
						answers[i] = e.reconnect("a", cs)
					case 2:
						answers[i] = e.poll("a")
					default:
						answers[i] = e.heartbeat("a")
					}
				})
			}
			wg.Wait()
			for i, a := range answers {
				if a.Data.Status == StatusExpired || a.Data.Status == StatusQueued {
					t.Fatalf("round %d call %d: a holder was told %q (%+v)", round, i, a.Data.Status, a.Data)
				}
				if a.Status != 200 && a.Status != 503 {
					t.Fatalf("round %d call %d: HTTP %d %q", round, i, a.Status, a.Env.Msg)
				}
			}
			// Once quiet, a still holds its slot (Ready after the last re-attach, or Active),
			// CAR has its one session, and b waits at the head.
			st, err := e.q.Poll(context.Background(), "a", queue.Client{}, queue.Trusted)
			if err != nil {
				t.Fatal(err)
			}
			if !st.State.Holds() || st.State == queue.StateReleasing {
				t.Fatalf("round %d: a is %s after concurrent calls", round, st.State)
			}
			if s := e.emu.State(); !slices.Equal(s.Sessions, []string{"a"}) && !slices.Equal(s.Locked, []string{"a"}) {
				t.Fatalf("round %d: CAR holds %+v, want a's one slot", round, s)
			}
			if a := e.poll("b"); a.Data.Status != StatusQueued || a.Data.Position != 1 {
				t.Fatalf("round %d: b lost its place: %+v", round, a.Data)
			}
			e.checkCapacity(1)
		}
	})
}

// TestStopWhileCARHangs: /stop does not wait for a CAR that hangs: the departure is recorded
// first, the release attempt is cut off at STOP_RELEASE_WAIT and left to the reaper, with a
// backoff, and /stats says one release is pending a retry.
func TestStopWhileCARHangs(t *testing.T) {
	e := newEnv(t, redistest.Embedded(t), envOpts{capacity: 1, stopWait: 100 * time.Millisecond})
	want(t, e.start("a", "cs"), 200, 0, StatusReady)
	if err := e.emu.SetFaults("DestroySession:latency=1s"); err != nil {
		t.Fatal(err)
	}
	want(t, e.stop("a"), 200, 0, StatusStopped)
	st := e.stats()
	if st.Map["Releasing"] != 1.0 || st.Map["ReleasesRetrying"] != 1.0 {
		t.Fatalf("want a release pending a retry: %v", st.Map)
	}
	want(t, e.poll("a"), 200, 0, StatusExpired) // the user has left, whatever CAR does
}

// TestReleaseBackoff: a DestroySession that keeps failing is retried per user after 1s, 2s,
// 4s (RELEASE_RETRY_MIN doubling), not at every reaper run; the slot is freed once CAR
// confirms.
func TestReleaseBackoff(t *testing.T) {
	eachBackend(t, func(t *testing.T, b redistest.Backend) {
		e := newEnv(t, b, envOpts{capacity: 1})
		want(t, e.start("a", "cs"), 200, 0, StatusReady)
		e.emu.Script("DestroySession", "InternalError", "InternalError", "InternalError")
		want(t, e.stop("a"), 200, 0, StatusStopped) // attempt 1 fails: next in 1s
		attempts := func(rep reaper.Report) int { return rep.CARErrors["InternalError"] + rep.Released }
		for _, step := range []struct {
			advance  time.Duration
			attempts int // DestroySession calls the run makes
			released int
		}{
			{0, 0, 0},
			{time.Second, 1, 0}, // attempt 2 fails: next in 2s
			{time.Second, 0, 0},
			{time.Second, 1, 0}, // attempt 3 fails: next in 4s
			{3 * time.Second, 0, 0},
			{time.Second, 1, 1}, // attempt 4 succeeds
		} {
			e.clock.Advance(step.advance)
			rep := e.reap()
			if attempts(rep) != step.attempts || rep.Released != step.released {
				t.Fatalf("after +%v: %d attempts, %d released (%+v); want %d, %d", step.advance,
					attempts(rep), rep.Released, rep.CARErrors, step.attempts, step.released)
			}
		}
		st := e.stats()
		if st.Map["Releasing"] != 0.0 || st.Map["ReleasesRetrying"] != 0.0 || st.Map["Free"] != 1.0 {
			t.Fatalf("slot not freed: %v", st.Map)
		}
	})
}

// TestLateReturnGetsATicketOfItsNewJoin: a holder past its ready deadline whom the reaper has
// not reached yet comes back with /start: its old session ends, it joins afresh, and the
// answer's ticket names the new join, so its next requests are accepted (found by the chaos
// suite: a Redis outage holds the reaper, and such late returns then answered a ticket of the
// ended join, and the next /poll got 401).
func TestLateReturnGetsATicketOfItsNewJoin(t *testing.T) {
	eachBackend(t, func(t *testing.T, b redistest.Backend) {
		e := newEnv(t, b, envOpts{capacity: 1, slots: 2})
		want(t, e.start("a", "cs-1"), 200, 0, StatusReady)
		old := e.ticket("a")
		e.clock.Advance(readyTimeout + time.Second) // never heartbeated; no reaper ran
		a := e.start("a", "cs-2")
		if a.Data.Ticket == "" || a.Data.Ticket == old {
			t.Fatalf("late /start: %+v", a.Data)
		}
		if a.Data.Status == StatusReady {
			want(t, e.heartbeat("a"), 200, 0, StatusActive)
		} else {
			want(t, e.poll("a"), 200, 0, a.Data.Status)
		}
		e.checkCapacity(1)
	})
}
