package queue

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/carqueue/carqueue/shared/testkit"
	"github.com/redis/go-redis/v9"
)

func TestNewValidatesOptions(t *testing.T) {
	m := miniredis.RunT(t)
	c := redis.NewClient(&redis.Options{Addr: m.Addr()})
	defer c.Close()
	tests := []struct {
		name string
		opts Options
		want string // substring naming the field; "" = valid
	}{
		{"ok", Options{QueueID: "q1", Capacity: 1}, ""},
		{"empty id", Options{Capacity: 1}, "QueueID"},
		{"brace in id", Options{QueueID: "a}b", Capacity: 1}, "QueueID"},
		{"long id", Options{QueueID: strings.Repeat("a", 65), Capacity: 1}, "1-64"},
		{"zero capacity", Options{QueueID: "q"}, "Capacity"},
		{"negative timeout", Options{QueueID: "q", Capacity: 1, HeartbeatTimeout: -time.Second}, "HeartbeatTimeout"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			q, err := New(c, tt.opts)
			if tt.want == "" {
				noErr(t, err)
				o := q.Options()
				if o.QueueIdleTimeout != 60*time.Second || o.ClaimLease != 30*time.Second || o.GoneRetention != 10*time.Minute || o.RateWindow != 5*time.Minute || o.Now == nil {
					t.Fatalf("defaults not applied: %+v", o)
				}
				return
			}
			if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err = %v, want ErrInvalid naming %q", err, tt.want)
			}
		})
	}
}

func TestInvalidArguments(t *testing.T) {
	forBackends(t, Options{Capacity: 1}, func(t *testing.T, q *Queue, clk *testkit.Clock) {
		for _, u := range []string{"", strings.Repeat("x", 65), "a b", "a{b}", "ü"} {
			_, err := q.Join(bg, u, "cs")
			if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), "UserId") {
				t.Errorf("Join(%q) err = %v, want ErrInvalid naming UserId", u, err)
			}
			_, err = q.Poll(bg, u, "")
			wantErrIs(t, err, ErrInvalid)
			_, err = q.Heartbeat(bg, u)
			wantErrIs(t, err, ErrInvalid)
		}
		_, err := q.Join(bg, "ok.user@x:1-_", strings.Repeat("c", MaxClientSession+1))
		wantErrIs(t, err, ErrInvalid)
		must[Status](t)(q.Join(bg, "ok.user@x:1-_", strings.Repeat("c", MaxClientSession)))
		_, err = q.Reap(bg, 0)
		wantErrIs(t, err, ErrInvalid)
		_, err = q.Claim(bg, MaxClaim+1)
		wantErrIs(t, err, ErrInvalid)
	})
}

func TestJoinIsIdempotentAndPollCounts(t *testing.T) {
	forBackends(t, Options{Capacity: 1}, func(t *testing.T, q *Queue, clk *testkit.Clock) {
		for i := 1; i <= 3; i++ {
			st := must[Status](t)(q.Join(bg, user(i), "cs1"))
			if st.State != StateQueued || st.Position != int64(i) || st.Length != int64(i) {
				t.Fatalf("join %d: %+v", i, st)
			}
		}
		st := must[Status](t)(q.Join(bg, user(1), "cs2"))
		if st.Position != 1 || st.Length != 3 || st.ClientSession != "cs2" {
			t.Fatalf("re-join moved or did not refresh: %+v", st)
		}
		st = must[Status](t)(q.Poll(bg, user(2), ""))
		if st.State != StateQueued || st.Position != 2 || st.Length != 3 || st.ClientSession != "" {
			t.Fatalf("poll: %+v", st)
		}
		st = must[Status](t)(q.Poll(bg, "stranger", ""))
		if st != (Status{}) {
			t.Fatalf("unknown user: %+v", st)
		}
		c, ok, err := q.ClaimUser(bg, user(2))
		if err != nil || ok {
			t.Fatalf("ClaimUser of a non-head user: %v %v", ok, err)
		}
		c, ok, err = q.ClaimUser(bg, user(1))
		if err != nil || !ok || c.ClientSession != "cs2" || c.Token == "" {
			t.Fatalf("ClaimUser head: %+v %v %v", c, ok, err)
		}
		st = must[Status](t)(q.Join(bg, user(1), "cs3"))
		if st.State != StateAdmitting || st.ClientSession != "cs3" {
			t.Fatalf("join of a holder: %+v", st)
		}
		noErr(t, q.MarkReady(bg, Claim{UserID: user(1), Token: c.Token}, "ss1"))
		st = must[Status](t)(q.Join(bg, user(1), ""))
		if st.State != StateReady || st.ServerSession != "ss1" || st.ClientSession != "cs3" {
			t.Fatalf("join of a ready user: %+v", st)
		}
		st = must[Status](t)(q.Poll(bg, user(3), ""))
		if st.Position != 2 || st.Length != 2 {
			t.Fatalf("after admission: %+v", st)
		}
	})
}

func TestClaimRespectsCapacityAndLeaseExpiryReturnsToFront(t *testing.T) {
	forBackends(t, Options{Capacity: 2, ClaimLease: 30 * time.Second, QueueIdleTimeout: time.Hour}, func(t *testing.T, q *Queue, clk *testkit.Clock) {
		for i := 1; i <= 5; i++ {
			must[Status](t)(q.Join(bg, user(i), ""))
		}
		cs := must[[]Claim](t)(q.Claim(bg, 10))
		if len(cs) != 2 || cs[0].UserID != user(1) || cs[1].UserID != user(2) || cs[0].Token == "" || cs[0].Token == cs[1].Token {
			t.Fatalf("claims %+v", cs)
		}
		wantErrIs(t, q.MarkReady(bg, Claim{UserID: cs[0].UserID, Token: cs[1].Token}, "x"), ErrLeaseLost)
		if more := must[[]Claim](t)(q.Claim(bg, 10)); len(more) != 0 {
			t.Fatalf("claimed past capacity: %+v", more)
		}
		mustInvariants(t, q)
		clk.Advance(30 * time.Second)
		res := must[ReapResult](t)(q.Reap(bg, 10))
		if res.ExpiredClaims != 2 || res.More {
			t.Fatalf("reap: %+v", res)
		}
		for i := 1; i <= 2; i++ {
			if st := must[Status](t)(q.Poll(bg, user(i), "")); st.Position != int64(i) || st.Length != 5 {
				t.Fatalf("user %d after lease expiry: %+v", i, st)
			}
		}
		wantErrIs(t, q.MarkReady(bg, cs[0], "late"), ErrLeaseLost)
		wantErrIs(t, q.Requeue(bg, cs[1]), ErrLeaseLost)
		wantErrIs(t, q.Refuse(bg, cs[1], true), ErrLeaseLost)
		again := must[[]Claim](t)(q.Claim(bg, 1))
		if len(again) != 1 || again[0].UserID != user(1) || again[0].Token == cs[0].Token {
			t.Fatalf("re-claim: %+v", again)
		}
		wantErrIs(t, q.MarkReady(bg, cs[0], "stale token"), ErrLeaseLost)
		noErr(t, q.Requeue(bg, again[0]))
		if st := must[Status](t)(q.Poll(bg, user(1), "")); st.Position != 1 {
			t.Fatalf("requeued user not at the front: %+v", st)
		}
	})
}

func TestHeartbeatStopAndRelease(t *testing.T) {
	forBackends(t, Options{Capacity: 1}, func(t *testing.T, q *Queue, clk *testkit.Clock) {
		must[Status](t)(q.Join(bg, "a", "csa"))
		must[Status](t)(q.Join(bg, "b", "csb"))
		c := must[[]Claim](t)(q.Claim(bg, 1))[0]
		if st := must[Status](t)(q.Heartbeat(bg, "a")); st.State != StateAdmitting {
			t.Fatalf("heartbeat while admitting: %+v", st)
		}
		noErr(t, q.MarkReady(bg, c, "ssa"))
		st := must[Status](t)(q.Heartbeat(bg, "a"))
		if st.State != StateActive {
			t.Fatalf("heartbeat: %+v", st)
		}
		if prev := must[State](t)(q.Stop(bg, "b")); prev != StateQueued {
			t.Fatalf("stop queued: %v", prev)
		}
		if st := must[Status](t)(q.Poll(bg, "b", "")); st.State != StateNone || st.Reason != ReasonStopped {
			t.Fatalf("stopped user: %+v", st)
		}
		if prev := must[State](t)(q.Stop(bg, "a")); prev != StateActive {
			t.Fatalf("stop active: %v", prev)
		}
		if prev := must[State](t)(q.Stop(bg, "a")); prev != StateReleasing {
			t.Fatalf("stop twice: %v", prev)
		}
		if rel := must[[]string](t)(q.Releasing(bg, 10)); len(rel) != 1 || rel[0] != "a" {
			t.Fatalf("releasing: %v", rel)
		}
		must[Status](t)(q.Join(bg, "c", ""))
		if got := must[[]Claim](t)(q.Claim(bg, 1)); len(got) != 0 {
			t.Fatalf("a releasing user's slot was given away: %+v", got)
		}
		noErr(t, q.Released(bg, "a"))
		wantErrIs(t, q.Released(bg, "a"), ErrNotHolding)
		if st := must[Status](t)(q.Heartbeat(bg, "a")); st.State != StateNone || st.Reason != ReasonStopped {
			t.Fatalf("heartbeat of released user: %+v", st)
		}
		if got := must[[]Claim](t)(q.Claim(bg, 1)); len(got) != 1 || got[0].UserID != "c" {
			t.Fatalf("slot not free after Released: %+v", got)
		}
		clk.Advance(10*time.Minute + time.Millisecond)
		if st := must[Status](t)(q.Poll(bg, "a", "")); st != (Status{}) {
			t.Fatalf("gone reason kept past retention: %+v", st)
		}
		if prev := must[State](t)(q.Stop(bg, "nobody")); prev != StateNone {
			t.Fatalf("stop unknown: %v", prev)
		}
	})
}

func TestReattach(t *testing.T) {
	forBackends(t, Options{Capacity: 1, HeartbeatTimeout: time.Minute, ClaimLease: 30 * time.Second}, func(t *testing.T, q *Queue, clk *testkit.Clock) {
		must[Status](t)(q.Join(bg, "a", "cs1"))
		c := must[[]Claim](t)(q.Claim(bg, 1))[0]
		noErr(t, q.MarkReady(bg, c, "ss1"))
		must[Status](t)(q.Heartbeat(bg, "a"))
		deadline := clk.Now().Add(time.Minute)

		clk.Advance(10 * time.Second)
		r, ok, err := q.Reattach(bg, "a", "cs2")
		if err != nil || !ok || !r.Reattach || r.ClientSession != "cs2" {
			t.Fatalf("reattach: %+v %v %v", r, ok, err)
		}
		if _, ok, _ := q.Reattach(bg, "a", "cs3"); ok {
			t.Fatal("reattach of an admitting user")
		}
		noErr(t, q.Requeue(bg, r)) // back to Active, old deadline
		if st := must[Status](t)(q.Poll(bg, "a", "")); st.State != StateActive || st.ServerSession != "ss1" {
			t.Fatalf("after requeue of reattach: %+v", st)
		}

		r = must[Claim](t)(func() (Claim, error) { c, _, err := q.Reattach(bg, "a", ""); return c, err }())
		clk.Advance(30 * time.Second) // lease runs out: back to Active with the old deadline
		res := must[ReapResult](t)(q.Reap(bg, 10))
		if res.ExpiredClaims != 1 || len(res.Releasing) != 0 {
			t.Fatalf("reap: %+v", res)
		}
		if st := must[Status](t)(q.Poll(bg, "a", "")); st.State != StateActive {
			t.Fatalf("after expired reattach lease: %+v", st)
		}
		clk.Advance(deadline.Sub(clk.Now()))
		if _, ok, _ := q.Reattach(bg, "a", ""); ok {
			t.Fatal("reattach past the heartbeat deadline")
		}
		res = must[ReapResult](t)(q.Reap(bg, 10))
		if len(res.Releasing) != 1 || res.Dropped[ReasonHeartbeatTimeout] != 1 {
			t.Fatalf("reap: %+v", res)
		}

		// A reattach that succeeds is not a new admission.
		noErr(t, q.Released(bg, "a"))
		must[Status](t)(q.Join(bg, "a", "cs1"))
		c = must[[]Claim](t)(q.Claim(bg, 1))[0]
		noErr(t, q.MarkReady(bg, c, "ss2"))
		r, _, _ = q.Reattach(bg, "a", "")
		noErr(t, q.MarkReady(bg, r, "ss3"))
		s := must[Stats](t)(q.Stats(bg))
		if s.AdmittedTotal != 2 || s.Ready != 1 {
			t.Fatalf("stats: %+v", s)
		}
		r, _, _ = q.Reattach(bg, "a", "")
		noErr(t, q.Refuse(bg, r, false)) // a reattach always releases
		if st := must[Status](t)(q.Poll(bg, "a", "")); st.State != StateReleasing {
			t.Fatalf("refused reattach: %+v", st)
		}
	})
}

func TestRefuse(t *testing.T) {
	forBackends(t, Options{Capacity: 2}, func(t *testing.T, q *Queue, clk *testkit.Clock) {
		must[Status](t)(q.Join(bg, "a", ""))
		must[Status](t)(q.Join(bg, "b", ""))
		cs := must[[]Claim](t)(q.Claim(bg, 2))
		noErr(t, q.Refuse(bg, cs[0], false))
		noErr(t, q.Refuse(bg, cs[1], true))
		if st := must[Status](t)(q.Poll(bg, "a", "")); st.State != StateNone || st.Reason != ReasonCARRefused {
			t.Fatalf("refused unlocked: %+v", st)
		}
		if st := must[Status](t)(q.Poll(bg, "b", "")); st.State != StateReleasing {
			t.Fatalf("refused locked: %+v", st)
		}
		noErr(t, q.Released(bg, "b"))
		if st := must[Status](t)(q.Poll(bg, "b", "")); st.Reason != ReasonCARRefused {
			t.Fatalf("released after refusal: %+v", st)
		}
		s := must[Stats](t)(q.Stats(bg))
		if s.ReapedByReason[ReasonCARRefused] != 2 || s.ReapedTotal != 0 {
			t.Fatalf("stats: %+v", s)
		}
	})
}

func TestReapIsBoundedAndSlotsComeBack(t *testing.T) {
	opts := Options{Capacity: 4, QueueIdleTimeout: time.Minute, HeartbeatTimeout: time.Minute, ReadyTimeout: 20 * time.Second}
	forBackends(t, opts, func(t *testing.T, q *Queue, clk *testkit.Clock) {
		for i := 0; i < 10; i++ {
			must[Status](t)(q.Join(bg, user(i), ""))
		}
		cs := must[[]Claim](t)(q.Claim(bg, 4)) // u000..u003
		for _, c := range cs {
			noErr(t, q.MarkReady(bg, c, "ss-"+c.UserID))
		}
		must[Status](t)(q.Heartbeat(bg, user(0)))
		must[Status](t)(q.Heartbeat(bg, user(1)))
		clk.Advance(20 * time.Second) // u002, u003 never started
		must[Status](t)(q.Poll(bg, user(9), ""))
		res := must[ReapResult](t)(q.Reap(bg, 1))
		if !res.More || len(res.Releasing) != 1 || res.Releasing[0] != user(2) || res.Dropped[ReasonNeverStarted] != 1 {
			t.Fatalf("first batch: %+v", res)
		}
		res = must[ReapResult](t)(q.Reap(bg, 1))
		if !res.More || len(res.Releasing) != 1 || res.Releasing[0] != user(3) {
			t.Fatalf("second batch: %+v", res)
		}
		res = must[ReapResult](t)(q.Reap(bg, 1))
		if res.More || len(res.Releasing) != 0 || len(res.Dropped) != 0 {
			t.Fatalf("third batch: %+v", res)
		}
		if got := must[[]Claim](t)(q.Claim(bg, 4)); len(got) != 0 {
			t.Fatalf("claimed while releasing users hold slots: %+v", got)
		}
		for _, u := range must[[]string](t)(q.Releasing(bg, 10)) {
			noErr(t, q.Released(bg, u))
		}
		got := must[[]Claim](t)(q.Claim(bg, 4))
		if len(got) != 2 || got[0].UserID != user(4) || got[1].UserID != user(5) {
			t.Fatalf("reaped slots not claimable: %+v", got)
		}
		clk.Advance(40 * time.Second) // queued u006..u008 idle (u009 polled at +20s); u000, u001 silent
		res = must[ReapResult](t)(q.Reap(bg, 100))
		if res.Dropped[ReasonIdle] != 3 || res.Dropped[ReasonHeartbeatTimeout] != 2 || res.ExpiredClaims != 2 || res.More {
			t.Fatalf("big batch: %+v", res)
		}
		if st := must[Status](t)(q.Poll(bg, user(6), "")); st.Reason != ReasonIdle {
			t.Fatalf("idle user: %+v", st)
		}
		if st := must[Status](t)(q.Poll(bg, user(4), "")); st.State != StateQueued || st.Position != 1 {
			t.Fatalf("expired claim not at the front: %+v", st)
		}
		s := must[Stats](t)(q.Stats(bg))
		if s.ReapedTotal != 7 || s.ReapedByReason[ReasonIdle] != 3 || s.ReapedByReason[ReasonNeverStarted] != 2 || s.Releasing != 2 || s.Queued != 3 {
			t.Fatalf("stats: %+v", s)
		}
	})
}

func TestStatsAdmissionRate(t *testing.T) {
	forBackends(t, Options{Capacity: 10, RateWindow: 5 * time.Minute, QueueIdleTimeout: time.Hour}, func(t *testing.T, q *Queue, clk *testkit.Clock) {
		if s := must[Stats](t)(q.Stats(bg)); s.AdmissionsPerMinute != 0 || s.Capacity != 10 {
			t.Fatalf("empty stats: %+v", s)
		}
		for i := 0; i < 6; i++ {
			must[Status](t)(q.Join(bg, user(i), ""))
		}
		for i := 0; i < 5; i++ {
			c := must[[]Claim](t)(q.Claim(bg, 1))[0]
			noErr(t, q.MarkReady(bg, c, "ss"))
			clk.Advance(time.Minute)
		}
		s := must[Stats](t)(q.Stats(bg)) // admissions at 0..4 min, now 5 min: the first fell out
		if s.AdmissionsPerMinute != 4.0/5 || s.AdmittedTotal != 5 || s.Ready != 5 || s.Queued != 1 {
			t.Fatalf("stats: %+v", s)
		}
	})
}

func TestLockUser(t *testing.T) {
	forBackends(t, Options{Capacity: 1}, func(t *testing.T, q *Queue, clk *testkit.Clock) {
		unlock, ok, err := q.LockUser(bg, "a", time.Minute)
		if err != nil || !ok {
			t.Fatalf("lock: %v %v", ok, err)
		}
		if _, ok, _ := q.LockUser(bg, "a", time.Minute); ok {
			t.Fatal("second lock taken")
		}
		if _, ok, _ := q.LockUser(bg, "b", time.Minute); !ok {
			t.Fatal("lock of another user refused")
		}
		unlock()
		unlock2, ok, _ := q.LockUser(bg, "a", time.Minute)
		if !ok {
			t.Fatal("lock not freed by unlock")
		}
		unlock() // stale unlock must not free the new holder's lock
		if _, ok, _ := q.LockUser(bg, "a", time.Minute); ok {
			t.Fatal("stale unlock freed someone else's lock")
		}
		unlock2()
	})
}

func TestErrorsWrapContext(t *testing.T) {
	m := miniredis.RunT(t)
	c := redis.NewClient(&redis.Options{Addr: m.Addr(), DialerRetries: 1, MaxRetries: -1})
	defer c.Close()
	q := must[*Queue](t)(New(c, Options{QueueID: "q", Capacity: 1}))
	m.Close()
	_, err := q.Poll(bg, "a", "")
	if err == nil || !strings.Contains(err.Error(), "poll a") {
		t.Fatalf("err = %v", err)
	}
}

// TestReapLargeBatch reaps more idle users in one batch than one Lua unpack takes (the
// script chunks its variadic commands).
func TestReapLargeBatch(t *testing.T) {
	forBackends(t, Options{Capacity: 1, QueueIdleTimeout: time.Minute}, func(t *testing.T, q *Queue, clk *testkit.Clock) {
		const n = 1100
		for i := range n {
			must[Status](t)(q.Join(bg, user(i), "cs"))
		}
		clk.Advance(time.Minute)
		must[Status](t)(q.Poll(bg, user(7), "")) // polled just now: stays
		res := must[ReapResult](t)(q.Reap(bg, n))
		if res.Dropped[ReasonIdle] != n-1 || res.More {
			t.Fatalf("reap: %+v", res)
		}
		mustInvariants(t, q)
		if st := must[Status](t)(q.Poll(bg, user(7), "")); st.Position != 1 || st.Length != 1 {
			t.Fatalf("survivor: %+v", st)
		}
		clk.Advance(10*time.Minute + time.Millisecond)
		must[ReapResult](t)(q.Reap(bg, n)) // forgets the departures (2·batch at a time)
		if st := must[Status](t)(q.Poll(bg, user(8), "")); st != (Status{}) {
			t.Fatalf("forgotten user: %+v", st)
		}
		mustInvariants(t, q)
	})
}
