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
	with := func(f func(o *Options)) Options {
		o := testOptions(1)
		f(&o)
		return o
	}
	tests := []struct {
		name string
		opts Options
		want string // the whole message (ErrInvalid's text follows it); "" = valid
	}{
		{"ok", testOptions(1), ""},
		{"empty id", with(func(o *Options) { o.QueueID = "" }), `new queue: QueueID "" must be 1-64 chars of [A-Za-z0-9_.:-]`},
		{"brace in id", with(func(o *Options) { o.QueueID = "a}b" }), `new queue: QueueID "a}b" must be 1-64 chars of [A-Za-z0-9_.:-]`},
		{"long id", with(func(o *Options) { o.QueueID = strings.Repeat("a", 65) }), `new queue: QueueID "` + strings.Repeat("a", 65) + `" must be 1-64 chars`},
		{"negative capacity", with(func(o *Options) { o.Capacity = -1 }), "new queue: Capacity must be >= 0 (0: CAR's Total), got -1"},
		{"bad lock space", with(func(o *Options) { o.LockSpace = "a{b" }), `new queue: LockSpace "a{b" must be 1-64 chars`},
		{"zero idle timeout", with(func(o *Options) { o.QueueIdleTimeout = 0 }), "new queue: QueueIdleTimeout must be >= 1ms, got 0s"},
		{"negative heartbeat timeout", with(func(o *Options) { o.HeartbeatTimeout = -time.Second }), "new queue: HeartbeatTimeout must be >= 1ms, got -1s"},
		{"zero ready timeout", with(func(o *Options) { o.ReadyTimeout = 0 }), "new queue: ReadyTimeout must be >= 1ms, got 0s"},
		{"sub-ms claim lease", with(func(o *Options) { o.ClaimLease = time.Microsecond }), "new queue: ClaimLease must be >= 1ms, got 1µs"},
		{"zero gone retention", with(func(o *Options) { o.GoneRetention = 0 }), "new queue: GoneRetention must be >= 1ms, got 0s"},
		{"zero rate window", with(func(o *Options) { o.RateWindow = 0 }), "new queue: RateWindow must be >= 1ms, got 0s"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			q, err := New(c, tt.opts)
			if tt.want == "" {
				noErr(t, err)
				if o := q.Options(); o.Now == nil || o.QueueIdleTimeout != tt.opts.QueueIdleTimeout {
					t.Fatalf("options changed: %+v", o)
				}
				return
			}
			if !errors.Is(err, ErrInvalid) || !strings.HasPrefix(err.Error(), tt.want) {
				t.Fatalf("err = %v, want ErrInvalid saying %q", err, tt.want)
			}
		})
	}
	if _, err := New(nil, testOptions(1)); !errors.Is(err, ErrInvalid) {
		t.Fatalf("nil client: err = %v", err)
	}
}

// A *redis.ClusterClient must fit: a queue may live on a cluster (its keys share one slot).
var _ Scripter = (*redis.ClusterClient)(nil)

func TestInvalidArguments(t *testing.T) {
	forBackends(t, testOptions(1), func(t *testing.T, q *Queue, clk *testkit.Clock) {
		for _, u := range []string{"", strings.Repeat("x", 65), "a b", "a{b}", "ü"} {
			_, err := q.Join(bg, u, Client{Session: "cs"}, Trusted)
			if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), "UserId") {
				t.Errorf("Join(%q) err = %v, want ErrInvalid naming UserId", u, err)
			}
			_, err = q.Poll(bg, u, Client{}, Trusted)
			wantErrIs(t, err, ErrInvalid)
			_, err = q.Heartbeat(bg, u, Trusted)
			wantErrIs(t, err, ErrInvalid)
		}
		const u = "ok.user@x:1-_"
		long := strings.Repeat("ü", MaxClientSession) // the limit is in characters, not bytes
		_, err := q.Join(bg, u, Client{Session: long + "c"}, Trusted)
		if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), "ClientSession has 8193 chars, at most 8192") {
			t.Errorf("Join with a long ClientSession: err = %v", err)
		}
		maxIP := strings.Repeat("f", MaxIP)
		st := must[Status](t)(q.Join(bg, u, Client{IP: maxIP, Session: long}, Trusted))
		if st.Client != (Client{IP: maxIP, Session: long}) {
			t.Errorf("longest client not kept whole: IP %q, %d chars of session", st.Client.IP, len([]rune(st.Client.Session)))
		}
		for _, tt := range []struct{ ip, want string }{
			{maxIP + "f", "client IP has 65 bytes, at most 64 allowed"},
			{"10.0.0.1|x", `client IP "10.0.0.1|x" has '|' at byte 8`},
			{"10.0.0.1\n", `client IP "10.0.0.1\n" has '\n' at byte 8`},
			{"10.0.0.1\u0085", `client IP "10.0.0.1\u0085" has '\u0085' at byte 8`},
		} {
			for name, call := range map[string]func() error{
				"join":     func() error { _, err := q.Join(bg, u, Client{IP: tt.ip, Session: "cs"}, Trusted); return err },
				"poll":     func() error { _, err := q.Poll(bg, u, Client{IP: tt.ip}, Trusted); return err },
				"reattach": func() error { _, _, err := q.Reattach(bg, u, Client{IP: tt.ip, Session: "cs"}, Trusted); return err },
			} {
				if err := call(); !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), name+" "+u+": "+tt.want) {
					t.Errorf("%s with IP %q: err = %v, want ErrInvalid saying %q", name, tt.ip, err, tt.want)
				}
			}
		}
		_, err = q.Reap(bg, 0)
		wantErrIs(t, err, ErrInvalid)
		_, err = q.Claim(bg, MaxClaim+1)
		wantErrIs(t, err, ErrInvalid)
		_, _, err = q.LockUser(bg, u, 0)
		wantErrIs(t, err, ErrInvalid)
		_, _, err = q.TakeLease(bg, 0)
		wantErrIs(t, err, ErrInvalid)
	})
}

func TestClientEncoding(t *testing.T) {
	for _, c := range []Client{
		{IP: "203.0.113.5", Session: "cs"},
		{IP: "", Session: "cs"},
		{IP: "2001:db8::1%eth0", Session: "a|b||c|"}, // the session keeps its '|'
		{IP: "10.0.0.1", Session: "|"},
	} {
		v := encodeClient(c)
		if err := checkClient(c); err != nil {
			t.Fatalf("%+v: %v", c, err)
		}
		if got := decodeClient(v); got != c {
			t.Errorf("decode(encode(%+v)) = %+v (stored %q)", c, got, v)
		}
	}
	if v := encodeClient(Client{IP: "203.0.113.5"}); v != "" {
		t.Errorf("a client without session encodes to %q, want \"\" (keep the stored one)", v)
	}
	if got := encodeClient(Client{IP: "203.0.113.5", Session: "cs"}); got != "203.0.113.5|cs" {
		t.Errorf("stored form %q", got)
	}
	for v, want := range map[string]Client{"": {}, "raw-session": {Session: "raw-session"}, "|cs": {Session: "cs"}} {
		if got := decodeClient(v); got != want {
			t.Errorf("decode(%q) = %+v, want %+v", v, got, want)
		}
	}
}

func TestJoinIsIdempotentAndPollCounts(t *testing.T) {
	forBackends(t, testOptions(1), func(t *testing.T, q *Queue, clk *testkit.Clock) {
		for i := 1; i <= 3; i++ {
			st := must[Status](t)(q.Join(bg, user(i), Client{Session: "cs1"}, Trusted))
			if st.State != StateQueued || st.Position != int64(i) || st.Length != int64(i) {
				t.Fatalf("join %d: %+v", i, st)
			}
		}
		st := must[Status](t)(q.Join(bg, user(1), Client{IP: "203.0.113.1", Session: "cs2"}, Trusted))
		if st.Position != 1 || st.Length != 3 || st.Client != (Client{IP: "203.0.113.1", Session: "cs2"}) {
			t.Fatalf("re-join moved or did not refresh: %+v", st)
		}
		st = must[Status](t)(q.Poll(bg, user(2), Client{}, Trusted))
		if st.State != StateQueued || st.Position != 2 || st.Length != 3 || st.Client != (Client{}) {
			t.Fatalf("poll: %+v", st)
		}
		st = must[Status](t)(q.Poll(bg, "stranger", Client{}, Trusted))
		if st != (Status{}) {
			t.Fatalf("unknown user: %+v", st)
		}
		c, ok, err := q.ClaimUser(bg, user(2))
		if err != nil || ok {
			t.Fatalf("ClaimUser of a non-head user: %v %v", ok, err)
		}
		c, ok, err = q.ClaimUser(bg, user(1))
		if err != nil || !ok || c.Client != (Client{IP: "203.0.113.1", Session: "cs2"}) || c.Token == "" {
			t.Fatalf("ClaimUser head: %+v %v %v", c, ok, err)
		}
		st = must[Status](t)(q.Join(bg, user(1), Client{Session: "cs3"}, Trusted)) // no IP now: none stored
		if st.State != StateAdmitting || st.Client != (Client{Session: "cs3"}) {
			t.Fatalf("join of a holder: %+v", st)
		}
		noErr(t, q.MarkReady(bg, Claim{UserID: user(1), Token: c.Token}, "ss1"))
		st = must[Status](t)(q.Join(bg, user(1), Client{IP: "203.0.113.9"}, Trusted)) // no session: IP not stored either
		if st.State != StateReady || st.ServerSession != "ss1" || st.Client != (Client{Session: "cs3"}) {
			t.Fatalf("join of a ready user: %+v", st)
		}
		st = must[Status](t)(q.Poll(bg, user(3), Client{}, Trusted))
		if st.Position != 2 || st.Length != 2 {
			t.Fatalf("after admission: %+v", st)
		}
	})
}

func TestClaimRespectsCapacityAndLeaseExpiryReturnsToFront(t *testing.T) {
	o := testOptions(2)
	o.QueueIdleTimeout = time.Hour
	forBackends(t, o, func(t *testing.T, q *Queue, clk *testkit.Clock) {
		for i := 1; i <= 5; i++ {
			must[Status](t)(q.Join(bg, user(i), Client{}, Trusted))
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
			if st := must[Status](t)(q.Poll(bg, user(i), Client{}, Trusted)); st.Position != int64(i) || st.Length != 5 {
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
		if st := must[Status](t)(q.Poll(bg, user(1), Client{}, Trusted)); st.Position != 1 {
			t.Fatalf("requeued user not at the front: %+v", st)
		}
	})
}

func TestHeartbeatStopAndRelease(t *testing.T) {
	forBackends(t, testOptions(1), func(t *testing.T, q *Queue, clk *testkit.Clock) {
		must[Status](t)(q.Join(bg, "a", Client{Session: "csa"}, Trusted))
		must[Status](t)(q.Join(bg, "b", Client{Session: "csb"}, Trusted))
		c := must[[]Claim](t)(q.Claim(bg, 1))[0]
		if st := must[Status](t)(q.Heartbeat(bg, "a", Trusted)); st.State != StateAdmitting {
			t.Fatalf("heartbeat while admitting: %+v", st)
		}
		noErr(t, q.MarkReady(bg, c, "ssa"))
		st := must[Status](t)(q.Heartbeat(bg, "a", Trusted))
		if st.State != StateActive {
			t.Fatalf("heartbeat: %+v", st)
		}
		if prev := must[State](t)(q.Stop(bg, "b", Trusted)); prev != StateQueued {
			t.Fatalf("stop queued: %v", prev)
		}
		if st := must[Status](t)(q.Poll(bg, "b", Client{}, Trusted)); st.State != StateNone || st.Reason != ReasonStopped {
			t.Fatalf("stopped user: %+v", st)
		}
		if prev := must[State](t)(q.Stop(bg, "a", Trusted)); prev != StateActive {
			t.Fatalf("stop active: %v", prev)
		}
		if prev := must[State](t)(q.Stop(bg, "a", Trusted)); prev != StateReleasing {
			t.Fatalf("stop twice: %v", prev)
		}
		if rel := must[[]string](t)(q.Releasing(bg, 10)); len(rel) != 1 || rel[0] != "a" {
			t.Fatalf("releasing: %v", rel)
		}
		must[Status](t)(q.Join(bg, "c", Client{}, Trusted))
		if got := must[[]Claim](t)(q.Claim(bg, 1)); len(got) != 0 {
			t.Fatalf("a releasing user's slot was given away: %+v", got)
		}
		noErr(t, q.Released(bg, "a"))
		wantErrIs(t, q.Released(bg, "a"), ErrNotHolding)
		if st := must[Status](t)(q.Heartbeat(bg, "a", Trusted)); st.State != StateNone || st.Reason != ReasonStopped {
			t.Fatalf("heartbeat of released user: %+v", st)
		}
		if got := must[[]Claim](t)(q.Claim(bg, 1)); len(got) != 1 || got[0].UserID != "c" {
			t.Fatalf("slot not free after Released: %+v", got)
		}
		clk.Advance(10*time.Minute + time.Millisecond)
		if st := must[Status](t)(q.Poll(bg, "a", Client{}, Trusted)); st != (Status{}) {
			t.Fatalf("gone reason kept past retention: %+v", st)
		}
		if prev := must[State](t)(q.Stop(bg, "nobody", Trusted)); prev != StateNone {
			t.Fatalf("stop unknown: %v", prev)
		}
	})
}

func TestReattach(t *testing.T) {
	forBackends(t, testOptions(1), func(t *testing.T, q *Queue, clk *testkit.Clock) {
		must[Status](t)(q.Join(bg, "a", Client{IP: "198.51.100.1", Session: "cs1"}, Trusted))
		c := must[[]Claim](t)(q.Claim(bg, 1))[0]
		if c.Client != (Client{IP: "198.51.100.1", Session: "cs1"}) {
			t.Fatalf("claim: %+v", c)
		}
		noErr(t, q.MarkReady(bg, c, "ss1"))
		must[Status](t)(q.Heartbeat(bg, "a", Trusted))
		deadline := clk.Now().Add(time.Minute)

		clk.Advance(10 * time.Second)
		r, ok, err := q.Reattach(bg, "a", Client{IP: "198.51.100.2", Session: "cs2"}, Trusted)
		if err != nil || !ok || !r.Reattach || r.Client != (Client{IP: "198.51.100.2", Session: "cs2"}) {
			t.Fatalf("reattach: %+v %v %v", r, ok, err)
		}
		if _, ok, _ := q.Reattach(bg, "a", Client{Session: "cs3"}, Trusted); ok {
			t.Fatal("reattach of an admitting user")
		}
		noErr(t, q.Requeue(bg, r)) // back to Active, old deadline
		if st := must[Status](t)(q.Poll(bg, "a", Client{}, Trusted)); st.State != StateActive || st.ServerSession != "ss1" {
			t.Fatalf("after requeue of reattach: %+v", st)
		}

		r = must[Claim](t)(func() (Claim, error) { c, _, err := q.Reattach(bg, "a", Client{}, Trusted); return c, err }())
		if r.Client != (Client{IP: "198.51.100.2", Session: "cs2"}) {
			t.Fatalf("reattach without a session did not return the stored client: %+v", r)
		}
		clk.Advance(30 * time.Second) // lease runs out: back to Active with the old deadline
		res := must[ReapResult](t)(q.Reap(bg, 10))
		if res.ExpiredClaims != 1 || len(res.Releasing) != 0 {
			t.Fatalf("reap: %+v", res)
		}
		if st := must[Status](t)(q.Poll(bg, "a", Client{}, Trusted)); st.State != StateActive {
			t.Fatalf("after expired reattach lease: %+v", st)
		}
		clk.Advance(deadline.Sub(clk.Now()))
		if _, ok, _ := q.Reattach(bg, "a", Client{}, Trusted); ok {
			t.Fatal("reattach past the heartbeat deadline")
		}
		res = must[ReapResult](t)(q.Reap(bg, 10))
		if len(res.Releasing) != 1 || res.Dropped[ReasonHeartbeatTimeout] != 1 {
			t.Fatalf("reap: %+v", res)
		}

		// A reattach that succeeds is not a new admission.
		noErr(t, q.Released(bg, "a"))
		must[Status](t)(q.Join(bg, "a", Client{Session: "cs1"}, Trusted))
		c = must[[]Claim](t)(q.Claim(bg, 1))[0]
		noErr(t, q.MarkReady(bg, c, "ss2"))
		r, _, _ = q.Reattach(bg, "a", Client{}, Trusted)
		noErr(t, q.MarkReady(bg, r, "ss3"))
		s := must[Stats](t)(q.Stats(bg))
		if s.AdmittedTotal != 2 || s.Ready != 1 {
			t.Fatalf("stats: %+v", s)
		}
		r, _, _ = q.Reattach(bg, "a", Client{}, Trusted)
		noErr(t, q.Refuse(bg, r, false)) // a reattach always releases
		if st := must[Status](t)(q.Poll(bg, "a", Client{}, Trusted)); st.State != StateReleasing {
			t.Fatalf("refused reattach: %+v", st)
		}
	})
}

func TestRefuse(t *testing.T) {
	forBackends(t, testOptions(2), func(t *testing.T, q *Queue, clk *testkit.Clock) {
		must[Status](t)(q.Join(bg, "a", Client{}, Trusted))
		must[Status](t)(q.Join(bg, "b", Client{}, Trusted))
		cs := must[[]Claim](t)(q.Claim(bg, 2))
		noErr(t, q.Refuse(bg, cs[0], false))
		noErr(t, q.Refuse(bg, cs[1], true))
		if st := must[Status](t)(q.Poll(bg, "a", Client{}, Trusted)); st.State != StateNone || st.Reason != ReasonCARRefused {
			t.Fatalf("refused unlocked: %+v", st)
		}
		if st := must[Status](t)(q.Poll(bg, "b", Client{}, Trusted)); st.State != StateReleasing {
			t.Fatalf("refused locked: %+v", st)
		}
		noErr(t, q.Released(bg, "b"))
		if st := must[Status](t)(q.Poll(bg, "b", Client{}, Trusted)); st.Reason != ReasonCARRefused {
			t.Fatalf("released after refusal: %+v", st)
		}
		s := must[Stats](t)(q.Stats(bg))
		if s.ReapedByReason[ReasonCARRefused] != 2 || s.ReapedTotal != 0 {
			t.Fatalf("stats: %+v", s)
		}
	})
}

func TestReapIsBoundedAndSlotsComeBack(t *testing.T) {
	opts := testOptions(4)
	opts.ReadyTimeout = 20 * time.Second
	forBackends(t, opts, func(t *testing.T, q *Queue, clk *testkit.Clock) {
		for i := 0; i < 10; i++ {
			must[Status](t)(q.Join(bg, user(i), Client{}, Trusted))
		}
		cs := must[[]Claim](t)(q.Claim(bg, 4)) // u000..u003
		for _, c := range cs {
			noErr(t, q.MarkReady(bg, c, "ss-"+c.UserID))
		}
		must[Status](t)(q.Heartbeat(bg, user(0), Trusted))
		must[Status](t)(q.Heartbeat(bg, user(1), Trusted))
		clk.Advance(20 * time.Second) // u002, u003 never started
		must[Status](t)(q.Poll(bg, user(9), Client{}, Trusted))
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
		if st := must[Status](t)(q.Poll(bg, user(6), Client{}, Trusted)); st.Reason != ReasonIdle {
			t.Fatalf("idle user: %+v", st)
		}
		if st := must[Status](t)(q.Poll(bg, user(4), Client{}, Trusted)); st.State != StateQueued || st.Position != 1 {
			t.Fatalf("expired claim not at the front: %+v", st)
		}
		s := must[Stats](t)(q.Stats(bg))
		if s.ReapedTotal != 7 || s.ReapedByReason[ReasonIdle] != 3 || s.ReapedByReason[ReasonNeverStarted] != 2 || s.Releasing != 2 || s.Queued != 3 {
			t.Fatalf("stats: %+v", s)
		}
	})
}

// TestStatsAdmissionRate: the rate counts the admissions of the last RateWindow over the span
// actually observed, from the oldest of them to now, at least RateWindow/30 (10 s here).
func TestStatsAdmissionRate(t *testing.T) {
	o := testOptions(10)
	o.QueueIdleTimeout = time.Hour
	forBackends(t, o, func(t *testing.T, q *Queue, clk *testkit.Clock) {
		rate := func(what string, want float64) {
			t.Helper()
			if s := must[Stats](t)(q.Stats(bg)); s.AdmissionsPerMinute != want {
				t.Fatalf("%s: AdmissionsPerMinute = %v, want %v (stats %+v)", what, s.AdmissionsPerMinute, want, s)
			}
		}
		admit := func(n int) {
			t.Helper()
			for _, c := range must[[]Claim](t)(q.Claim(bg, n)) {
				noErr(t, q.MarkReady(bg, c, "ss"))
			}
		}
		for i := range 6 {
			must[Status](t)(q.Join(bg, user(i), Client{}, Trusted))
		}
		rate("no admission yet", 0)
		admit(1)
		rate("one admission just now: 1 over the 10 s floor", 6)
		clk.Advance(5 * time.Second)
		rate("5 s later: still the floor", 6)
		clk.Advance(25 * time.Second)
		rate("30 s after it", 2)
		admit(1)
		rate("a second one 30 s after the first", 4)
		clk.Advance(4*time.Minute + 30*time.Second)
		rate("the first fell out of the 5 min window; the second is 4.5 min old", 60_000.0/270_000)
		clk.Advance(30 * time.Second)
		rate("both fell out", 0)
		admit(3)
		rate("a burst of 3 in one moment: 3 over the floor", 18)
		s := must[Stats](t)(q.Stats(bg))
		if s.AdmittedTotal != 5 || s.Ready != 5 || s.Queued != 1 {
			t.Fatalf("stats: %+v", s)
		}
	})
}

func TestAdmissionRate(t *testing.T) {
	const win = 300_000 // 5 min in ms
	for _, tt := range []struct {
		n, oldest, now int64
		want           float64
	}{
		{0, 0, 1000, 0},
		{1, 1000, 1000, 6},                  // floor: win/30 = 10 s
		{1, 1000, 61_000, 1},                // 1 over 1 min
		{10, 0, 120_000, 5},                 // 10 over 2 min
		{5, 0, 600_000, 1},                  // oldest older than the window (a stale trim): at most win
		{2, 2000, 1000, 12},                 // oldest ahead of now (another instance's clock): the floor
		{1, 0, 0, float64(60_000) / 10_000}, // same moment
	} {
		if got := admissionRate(tt.n, tt.oldest, tt.now, win); got != tt.want {
			t.Errorf("admissionRate(%d, oldest %d, now %d) = %v, want %v", tt.n, tt.oldest, tt.now, got, tt.want)
		}
	}
	if got := admissionRate(1, 0, 0, 1); got != 60_000 {
		t.Errorf("1 ms window: %v, want no division by zero", got)
	}
}

func TestLockUser(t *testing.T) {
	forBackends(t, testOptions(1), func(t *testing.T, q *Queue, clk *testkit.Clock) {
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
	q := must[*Queue](t)(New(c, testOptions(1)))
	m.Close()
	// Each error names the operation and the user once, then the cause.
	_, err := q.Poll(bg, "a", Client{}, Trusted)
	if err == nil || !strings.HasPrefix(err.Error(), "poll a: ") || strings.Count(err.Error(), "poll") != 1 {
		t.Fatalf("poll err = %v", err)
	}
	err = q.MarkReady(bg, Claim{UserID: "a", Token: "t"}, "ss")
	if err == nil || !strings.HasPrefix(err.Error(), "mark_ready a: ") || strings.Count(err.Error(), "mark_ready") != 1 {
		t.Fatalf("mark ready err = %v", err)
	}
	_, _, err = q.TakeLease(bg, time.Second)
	if err == nil || !strings.HasPrefix(err.Error(), "take reaper lease: ") || strings.Count(err.Error(), "lease") != 1 {
		t.Fatalf("take lease err = %v", err)
	}
}

// TestReapLargeBatch reaps more idle users in one batch than one Lua unpack takes (the
// script chunks its variadic commands).
func TestReapLargeBatch(t *testing.T) {
	forBackends(t, testOptions(1), func(t *testing.T, q *Queue, clk *testkit.Clock) {
		const n = 1100
		for i := range n {
			must[Status](t)(q.Join(bg, user(i), Client{Session: "cs"}, Trusted))
		}
		clk.Advance(time.Minute)
		must[Status](t)(q.Poll(bg, user(7), Client{}, Trusted)) // polled just now: stays
		res := must[ReapResult](t)(q.Reap(bg, n))
		if res.Dropped[ReasonIdle] != n-1 || res.More {
			t.Fatalf("reap: %+v", res)
		}
		mustInvariants(t, q)
		if st := must[Status](t)(q.Poll(bg, user(7), Client{}, Trusted)); st.Position != 1 || st.Length != 1 {
			t.Fatalf("survivor: %+v", st)
		}
		clk.Advance(10*time.Minute + time.Millisecond)
		must[ReapResult](t)(q.Reap(bg, n)) // forgets the departures (2·batch at a time)
		if st := must[Status](t)(q.Poll(bg, user(8), Client{}, Trusted)); st != (Status{}) {
			t.Fatalf("forgotten user: %+v", st)
		}
		mustInvariants(t, q)
	})
}
