package queue

import (
	"slices"
	"testing"
	"time"

	"github.com/carqueue/carqueue/shared/testkit"
)

// admitAll claims up to k users, one call each, and returns their ids in admission order.
func admitOrder(t *testing.T, q *Queue, k int) []string {
	t.Helper()
	var out []string
	for range k {
		cs := must[[]Claim](t)(q.Claim(bg, 1))
		if len(cs) == 0 {
			break
		}
		out = append(out, cs[0].UserID)
		noErr(t, q.MarkReady(bg, cs[0], "ss"))
	}
	return out
}

func TestLanesInterleaveByWeightWithExactPositions(t *testing.T) {
	o := testOptions(100)
	o.Lanes = []Lane{{"vip", 3}, {DefaultLane, 1}}
	forBackends(t, o, func(t *testing.T, q *Queue, clk *testkit.Clock) {
		// Six default users first, then five vip users: vip overtakes, 3 of every 4.
		for i := range 6 {
			must[Status](t)(q.Join(bg, "d"+user(i), Client{}, Trusted))
		}
		for i := range 5 {
			st := must[Status](t)(q.Join(bg, "v"+user(i), Client{}, GrantedIn("vip")))
			if st.Lane != "vip" {
				t.Fatalf("vip join answered lane %q", st.Lane)
			}
		}
		// Every user's position is exactly where the admissions below put it.
		want := map[string]int64{}
		for _, u := range []string{"d", "v"} {
			for i := range 6 {
				id := u + user(i)
				if st, err := q.Poll(bg, id, Client{}, Trusted); err == nil && st.State == StateQueued {
					want[id] = st.Position
					if st.Length != 11 {
						t.Fatalf("%s: length %d, want 11", id, st.Length)
					}
				}
			}
		}
		order := admitOrder(t, q, 11)
		wantOrder := []string{"vu000", "vu001", "du000", "vu002", "vu003", "vu004", "du001", "du002", "du003", "du004", "du005"}
		if !slices.Equal(order, wantOrder) {
			t.Fatalf("admission order %v, want %v", order, wantOrder)
		}
		for i, u := range order {
			if want[u] != int64(i+1) {
				t.Errorf("%s was told position %d, admitted %d-th", u, want[u], i+1)
			}
		}
		s := must[Stats](t)(q.Stats(bg))
		if s.LaneQueued["vip"] != 0 || s.LaneQueued[DefaultLane] != 0 {
			t.Fatalf("lanes after admitting everyone: %v", s.LaneQueued)
		}
	})
}

func TestScheduledOpeningShufflesTheEarlyCohort(t *testing.T) {
	o := testOptions(100)
	clk0 := testkit.NewClock()
	o.OpensAt, o.ShuffleSeed = clk0.Now().Add(time.Minute), "published-later"
	forBackends(t, o, func(t *testing.T, q *Queue, clk *testkit.Clock) {
		var early []string
		for i := range 20 {
			early = append(early, user(i))
			must[Status](t)(q.Join(bg, user(i), Client{}, Trusted))
			clk.Advance(time.Second)
		}
		if cs := must[[]Claim](t)(q.Claim(bg, 10)); len(cs) != 0 {
			t.Fatalf("admitted %d before the opening", len(cs))
		}
		if _, ok, _ := q.ClaimUser(bg, early[0]); ok {
			t.Fatal("ClaimUser admitted before the opening")
		}
		clk.Advance(time.Minute)
		late := []string{"late1", "late2"}
		for _, u := range late {
			must[Status](t)(q.Join(bg, u, Client{}, Trusted))
		}
		// The early cohort in the order of its published keys, then the late ones in order.
		want := slices.Clone(early)
		slices.SortStableFunc(want, func(a, b string) int {
			return int(CohortKey(o.ShuffleSeed, a) - CohortKey(o.ShuffleSeed, b))
		})
		want = append(want, late...)
		if slices.Equal(want[:20], early) {
			t.Fatal("the shuffle kept join order")
		}
		for i, u := range want {
			st := must[Status](t)(q.Poll(bg, u, Client{}, Trusted))
			if st.Position != int64(i+1) {
				t.Fatalf("%s at position %d, want %d", u, st.Position, i+1)
			}
		}
		if got := admitOrder(t, q, 22); !slices.Equal(got, want) {
			t.Fatalf("admitted %v, want %v", got, want)
		}
	})
}

func TestPauseCapacityNoticeAndKick(t *testing.T) {
	forBackends(t, testOptions(1), func(t *testing.T, q *Queue, clk *testkit.Clock) {
		for i := range 4 {
			must[Status](t)(q.Join(bg, user(i), Client{}, Trusted))
		}
		noErr(t, q.SetPaused(bg, true))
		noErr(t, q.SetNotice(bg, "maintenance until 10:00"))
		if cs := must[[]Claim](t)(q.Claim(bg, 3)); len(cs) != 0 {
			t.Fatalf("admitted %d while paused", len(cs))
		}
		c := must[Controls](t)(q.Controls(bg))
		if !c.Paused || c.Notice != "maintenance until 10:00" || c.CapacitySet {
			t.Fatalf("controls %+v", c)
		}
		noErr(t, q.SetPaused(bg, false))
		noErr(t, q.SetCapacity(bg, 3))
		if got := admitOrder(t, q, 4); !slices.Equal(got, []string{user(0), user(1), user(2)}) {
			t.Fatalf("admitted %v with capacity 3", got)
		}
		// Lowering ends nobody; it only stops admitting.
		noErr(t, q.SetCapacity(bg, 1))
		s := must[Stats](t)(q.Stats(bg))
		if s.Ready != 3 || s.Capacity != 1 || !s.Controls.CapacitySet {
			t.Fatalf("after lowering: %+v", s)
		}
		if cs := must[[]Claim](t)(q.Claim(bg, 1)); len(cs) != 0 {
			t.Fatal("admitted above the lowered capacity")
		}
		// Kick a queued user and a holder.
		if st := must[State](t)(q.Kick(bg, user(3))); st != StateQueued {
			t.Fatalf("kick queued: %q", st)
		}
		if st := must[State](t)(q.Kick(bg, user(0))); st != StateReady {
			t.Fatalf("kick holder: %q", st)
		}
		if st := must[State](t)(q.Kick(bg, "nobody")); st != StateNone {
			t.Fatalf("kick unknown: %q", st)
		}
		st := must[Status](t)(q.Poll(bg, user(3), Client{}, Trusted))
		if st.Reason != ReasonKicked {
			t.Fatalf("kicked queued user: %+v", st)
		}
		noErr(t, q.Released(bg, user(0)))
		st = must[Status](t)(q.Poll(bg, user(0), Client{}, Trusted))
		if st.Reason != ReasonKicked {
			t.Fatalf("kicked holder: %+v", st)
		}
		noErr(t, q.ResetCapacity(bg))
		noErr(t, q.SetNotice(bg, ""))
		if c := must[Controls](t)(q.Controls(bg)); c.Notice != "" || c.CapacitySet || c.Paused {
			t.Fatalf("controls after clearing: %+v", c)
		}
		// Bad input changes nothing.
		wantErrIs(t, q.SetCapacity(bg, -1), ErrInvalid)
		long := string(make([]rune, MaxNotice+1))
		wantErrIs(t, q.SetNotice(bg, long), ErrInvalid)
	})
}

func TestTimeLimitAndRecords(t *testing.T) {
	o := testOptions(2)
	o.MaxSession = 10 * time.Minute
	forBackends(t, o, func(t *testing.T, q *Queue, clk *testkit.Clock) {
		start := clk.Now()
		must[Status](t)(q.JoinETA(bg, "p1", Client{}, Trusted, 30*time.Second))
		clk.Advance(20 * time.Second)
		cs := must[[]Claim](t)(q.Claim(bg, 1))
		noErr(t, q.MarkReady(bg, cs[0], "ss"))
		clk.Advance(5 * time.Second)
		hb := must[Status](t)(q.Heartbeat(bg, "p1", Trusted))
		if !hb.StartedAt.Equal(clk.Now().Truncate(time.Millisecond)) {
			t.Fatalf("started at %v, want %v", hb.StartedAt, clk.Now())
		}
		// Heartbeats keep it alive until the limit, which counts from the first heartbeat.
		for range 9 {
			clk.Advance(time.Minute)
			hb = must[Status](t)(q.Heartbeat(bg, "p1", Trusted))
			if r := must[ReapResult](t)(q.Reap(bg, 10)); len(r.Releasing) != 0 {
				t.Fatalf("reaped before the limit: %+v", r)
			}
		}
		clk.Advance(time.Minute)
		must[Status](t)(q.Heartbeat(bg, "p1", Trusted))
		r := must[ReapResult](t)(q.Reap(bg, 10))
		if !slices.Equal(r.Releasing, []string{"p1"}) || r.Dropped[ReasonTimeLimit] != 1 {
			t.Fatalf("at the limit: %+v", r)
		}
		noErr(t, q.Released(bg, "p1"))

		// A queued user who stops.
		must[Status](t)(q.Join(bg, "w1", Client{}, Trusted))
		must[State](t)(q.Stop(bg, "w1", Trusted))

		recs, next := must2(t)(q.Records(bg, "", 10))
		if len(recs) != 2 || next != "" {
			t.Fatalf("records %+v next %q", recs, next)
		}
		p := recs[0]
		if p.UserID != "p1" || p.Reason != ReasonTimeLimit || p.Lane != DefaultLane || p.FirstETA != 30*time.Second {
			t.Fatalf("record %+v", p)
		}
		if !p.JoinedAt.Equal(start.Truncate(time.Millisecond)) || p.AdmittedAt.Sub(p.JoinedAt) != 20*time.Second ||
			p.StartedAt.Sub(p.AdmittedAt) != 5*time.Second || p.EndedAt.Sub(p.StartedAt) != 10*time.Minute {
			t.Fatalf("record times %+v", p)
		}
		w := recs[1]
		if w.UserID != "w1" || w.Reason != ReasonStopped || !w.AdmittedAt.IsZero() || !w.StartedAt.IsZero() || w.JoinedAt.IsZero() {
			t.Fatalf("record %+v", w)
		}
		// Paging: one at a time.
		page, next := must2(t)(q.Records(bg, "", 1))
		if len(page) != 1 || next != page[0].ID {
			t.Fatalf("page 1: %+v %q", page, next)
		}
		page, _ = must2(t)(q.Records(bg, next, 1))
		if len(page) != 1 || page[0].UserID != "w1" {
			t.Fatalf("page 2: %+v", page)
		}
		_, _, err := q.Records(bg, "bogus", 1)
		wantErrIs(t, err, ErrInvalid)

		// The webhook's cursor.
		s := must[Stats](t)(q.Stats(bg))
		if s.RecordsKept != 2 || s.RecordsPending != 2 {
			t.Fatalf("stats %+v", s)
		}
		und := must[[]Record](t)(q.Undelivered(bg, 10))
		if len(und) != 2 {
			t.Fatalf("undelivered %+v", und)
		}
		noErr(t, q.Delivered(bg, und[0].ID))
		noErr(t, q.Delivered(bg, und[0].ID)) // twice is fine
		und = must[[]Record](t)(q.Undelivered(bg, 10))
		if len(und) != 1 || und[0].UserID != "w1" {
			t.Fatalf("undelivered after one: %+v", und)
		}
		if s := must[Stats](t)(q.Stats(bg)); s.RecordsPending != 1 {
			t.Fatalf("pending %d", s.RecordsPending)
		}

		// ETA error: told 30 s, waited 20 s: 50% off.
		pct, n, err := q.ETAError(bg, start)
		noErr(t, err)
		if n != 1 || pct != 50 {
			t.Fatalf("eta error %v%% over %d", pct, n)
		}

		// History: one admission in the first minute, two departures later.
		h := must[[]Minute](t)(q.History(bg, start))
		var adm, left int64
		for _, m := range h {
			adm += m.Admitted
			left += m.Left
		}
		if adm != 1 || left != 2 || len(h) < 10 {
			t.Fatalf("history %d minutes, %d admitted, %d left", len(h), adm, left)
		}
	})
}

func must2(t *testing.T) func(r []Record, next string, err error) ([]Record, string) {
	return func(r []Record, next string, err error) ([]Record, string) {
		t.Helper()
		noErr(t, err)
		return r, next
	}
}

func TestDueReportsUndeliveredRecords(t *testing.T) {
	o := testOptions(1)
	o.Deliver = true
	forBackends(t, o, func(t *testing.T, q *Queue, clk *testkit.Clock) {
		rdb := q.rdb.(Pipeliner)
		w := must[[]Work](t)(Due(bg, rdb, []*Queue{q}, time.Minute))
		if w[0].Records {
			t.Fatal("records due on a fresh queue")
		}
		must[Status](t)(q.Join(bg, "a", Client{}, Trusted))
		must[State](t)(q.Stop(bg, "a", Trusted))
		if w := must[[]Work](t)(Due(bg, rdb, []*Queue{q}, time.Minute)); !w[0].Records {
			t.Fatal("an undelivered record is not due")
		}
		recs := must[[]Record](t)(q.Undelivered(bg, 10))
		noErr(t, q.Delivered(bg, recs[len(recs)-1].ID))
		if w := must[[]Work](t)(Due(bg, rdb, []*Queue{q}, time.Minute)); w[0].Records {
			t.Fatal("records still due after delivery")
		}
	})
}

// TestResumeRestartsTheRate: the admission rate measured before a pause is forgotten at the
// resume, so ETAs do not count the paused time; pausing alone keeps it.
func TestResumeRestartsTheRate(t *testing.T) {
	forBackends(t, testOptions(3), func(t *testing.T, q *Queue, clk *testkit.Clock) {
		for i := range 3 {
			must[Status](t)(q.Join(bg, user(i), Client{}, Trusted))
		}
		admitOrder(t, q, 3)
		noErr(t, q.SetPaused(bg, true))
		if s := must[Stats](t)(q.Stats(bg)); s.RecentAdmissions != 3 {
			t.Fatalf("while paused: %d recent admissions", s.RecentAdmissions)
		}
		clk.Advance(time.Minute)
		noErr(t, q.SetPaused(bg, false))
		if s := must[Stats](t)(q.Stats(bg)); s.RecentAdmissions != 0 || s.AdmissionsPerMinute != 0 || s.AdmittedTotal != 3 {
			t.Fatalf("after the resume: %+v", s)
		}
		noErr(t, q.SetPaused(bg, false)) // resuming an unpaused queue keeps the rate
	})
}
