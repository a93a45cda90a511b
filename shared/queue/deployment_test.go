package queue

import (
	"testing"
	"time"

	"github.com/carqueue/carqueue/shared/redistest"
	"github.com/carqueue/carqueue/shared/testkit"
)

// twoQueues builds two queues of one lock space on each backend.
func twoQueues(t *testing.T, capA, capB int, f func(t *testing.T, a, b *Queue, space string, clk *testkit.Clock, rdb Pipeliner)) {
	t.Helper()
	for _, be := range redistest.Backends(t) {
		t.Run(be.Name, func(t *testing.T) {
			clk := testkit.NewClock()
			space := redistest.Prefix(t, be.Client)
			mk := func(id string, capacity int) *Queue {
				o := testOptions(capacity)
				o.QueueID, o.LockSpace, o.Now = space+id, space, clk.Now
				return must[*Queue](t)(New(be.Client, o))
			}
			a, b := mk("a", capA), mk("b", capB)
			f(t, a, b, space, clk, be.Client)
			mustInvariants(t, a)
			mustInvariants(t, b)
		})
	}
}

func TestLockSpaceIsOneLockPerUserAcrossQueues(t *testing.T) {
	twoQueues(t, 1, 1, func(t *testing.T, a, b *Queue, _ string, _ *testkit.Clock, _ Pipeliner) {
		unlock, ok, err := a.LockUser(bg, "alice", time.Minute)
		noErr(t, err)
		if !ok {
			t.Fatal("queue a could not lock alice")
		}
		if _, ok, err := b.LockUser(bg, "alice", time.Minute); err != nil || ok {
			t.Fatalf("queue b locked alice while a holds her lock (ok=%v err=%v)", ok, err)
		}
		if _, ok, err := b.LockUser(bg, "bob", time.Minute); err != nil || !ok {
			t.Fatalf("queue b could not lock bob (ok=%v err=%v)", ok, err)
		}
		unlock()
		if _, ok, err := b.LockUser(bg, "alice", time.Minute); err != nil || !ok {
			t.Fatalf("queue b could not lock alice after a let go (ok=%v err=%v)", ok, err)
		}
	})
}

func TestStateOfChangesNothing(t *testing.T) {
	forBackends(t, testOptions(1), func(t *testing.T, q *Queue, clk *testkit.Clock) {
		for _, u := range []string{"h", "w"} {
			must[Status](t)(q.Join(bg, u, Client{Session: "cs"}, Trusted))
		}
		must[Claim](t)(func() (Claim, error) { c, _, err := q.ClaimUser(bg, "h"); return c, err }())
		for u, want := range map[string]State{"h": StateAdmitting, "w": StateQueued, "x": StateNone} {
			if got := must[State](t)(q.StateOf(bg, u)); got != want {
				t.Fatalf("StateOf(%s) = %q, want %q", u, got, want)
			}
		}
		if _, err := q.StateOf(bg, "bad user"); err == nil {
			t.Fatal("StateOf accepted a bad UserId")
		}
		clk.Advance(59 * time.Second) // StateOf is no poll: w stays as last seen
		if got := must[Status](t)(q.Poll(bg, "w", Client{}, Trusted)); got.Position != 1 {
			t.Fatalf("w at %d, want 1", got.Position)
		}
	})
}

func TestHomesHintOneQueueAtATime(t *testing.T) {
	for _, be := range redistest.Backends(t) {
		t.Run(be.Name, func(t *testing.T) {
			space := redistest.Prefix(t, be.Client)
			h := must[*Homes](t)(NewHomes(be.Client, space, time.Hour))
			step := func(user, q, from, want string) {
				t.Helper()
				if got := must[string](t)(h.Enter(bg, user, q, from)); got != want {
					t.Fatalf("Enter(%s, %s, from %q) = %q, want %q", user, q, from, got, want)
				}
			}
			step("alice", "a", "", "")   // first home
			step("alice", "a", "", "")   // again: the same
			step("alice", "b", "", "a")  // elsewhere: refused, names a
			step("bob", "b", "", "")     // another user is independent
			step("alice", "b", "c", "a") // a move from a queue the hint does not name: refused
			step("alice", "b", "a", "")  // a move from a, which she left: done
			step("alice", "a", "", "b")
			if _, err := h.Enter(bg, "bad user", "a", ""); err == nil {
				t.Fatal("Enter accepted a bad UserId")
			}
			if _, err := NewHomes(be.Client, "a{b", time.Hour); err == nil {
				t.Fatal("NewHomes accepted a space with a brace")
			}
		})
	}
}

func TestDueFindsOnlyQueuesWithWork(t *testing.T) {
	twoQueues(t, 1, 0, func(t *testing.T, a, b *Queue, _ string, clk *testkit.Clock, rdb Pipeliner) {
		every := time.Minute
		due := func() []Work { return must[[]Work](t)(Due(bg, rdb, []*Queue{a, b}, every)) }
		// Empty a has nothing to do; Capacity-0 b must read CAR's Total first.
		if got := due(); got[0] != (Work{}) || got[1] != (Work{CARTotal: true}) {
			t.Fatalf("empty queues: %+v", got)
		}
		must[Status](t)(a.Join(bg, "u1", Client{Session: "cs"}, Trusted))
		noErr(t, b.SetCARTotal(bg, 3))
		if got := due(); got[0] != (Work{Users: true}) || got[1] != (Work{}) {
			t.Fatalf("a queued user, b's Total fresh: %+v", got)
		}
		must[State](t)(a.Stop(bg, "u1", Trusted))
		if got := due(); got[0] != (Work{}) {
			t.Fatalf("a after its only user stopped (gone, not yet to forget): %+v", got[0])
		}
		clk.Advance(10*time.Minute + time.Millisecond) // GoneRetention: the departure is to be forgotten
		if got := due(); got[0] != (Work{Users: true}) || got[1] != (Work{CARTotal: true}) {
			t.Fatalf("after GoneRetention and a minute: %+v", got)
		}
		must[ReapResult](t)(a.Reap(bg, 50))
		if got := due(); got[0] != (Work{}) {
			t.Fatalf("a after the reap forgot the departure: %+v", got[0])
		}
		if got := must[[]Work](t)(Due(bg, rdb, nil, every)); len(got) != 0 {
			t.Fatalf("no queues: %+v", got)
		}
	})
}

func TestCapacityZeroFollowsCARTotal(t *testing.T) {
	twoQueues(t, 1, 0, func(t *testing.T, _, b *Queue, _ string, clk *testkit.Clock, _ Pipeliner) {
		for i := range 4 {
			must[Status](t)(b.Join(bg, user(i), Client{Session: "cs"}, Trusted))
		}
		if got := must[[]Claim](t)(b.Claim(bg, 10)); len(got) != 0 {
			t.Fatalf("claimed %d before CAR's Total was known, want 0", len(got))
		}
		if st := must[Stats](t)(b.Stats(bg)); st.Capacity != 0 || st.CARTotalAt != 0 {
			t.Fatalf("stats before the Total: capacity %d at %d", st.Capacity, st.CARTotalAt)
		}
		// One of several instances refreshes; the others wait for it or for every/2.
		if !must[bool](t)(b.CARTotalDue(bg, time.Minute)) {
			t.Fatal("first CARTotalDue = false, want true")
		}
		if must[bool](t)(b.CARTotalDue(bg, time.Minute)) {
			t.Fatal("second CARTotalDue within the claim = true, want false")
		}
		noErr(t, b.SetCARTotal(bg, 2))
		if got := must[[]Claim](t)(b.Claim(bg, 10)); len(got) != 2 {
			t.Fatalf("claimed %d with CAR's Total 2, want 2", len(got))
		}
		if st := must[Stats](t)(b.Stats(bg)); st.Capacity != 2 || st.CARTotalAt != clk.Now().UnixMilli() {
			t.Fatalf("stats: capacity %d at %d", st.Capacity, st.CARTotalAt)
		}
		if must[bool](t)(b.CARTotalDue(bg, time.Minute)) {
			t.Fatal("CARTotalDue right after SetCARTotal = true")
		}
		clk.Advance(time.Minute)
		if !must[bool](t)(b.CARTotalDue(bg, time.Minute)) {
			t.Fatal("CARTotalDue a minute later = false")
		}
		noErr(t, b.SetCARTotal(bg, 3)) // CAR grew: one more is admitted
		if got := must[[]Claim](t)(b.Claim(bg, 10)); len(got) != 1 {
			t.Fatalf("claimed %d after the Total grew to 3, want 1", len(got))
		}
		if err := b.SetCARTotal(bg, -1); err == nil {
			t.Fatal("SetCARTotal(-1) accepted")
		}
	})
}
