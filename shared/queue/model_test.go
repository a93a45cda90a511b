package queue

import (
	"cmp"
	"errors"
	"flag"
	"fmt"
	"os"
	"reflect"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/carqueue/carqueue/shared/redistest"
	"github.com/carqueue/carqueue/shared/testkit"
	"pgregory.net/rapid"
)

// peekScript reads the statuses of users (ARGV[2:]) at time ARGV[1] without touching
// anything: the model test compares them after every step. Reply: one status per user.
var peekScript = assembleScript("peek", `
local now, out = tonumber(ARGV[1]), {}
for i = 3, #ARGV do
  local u = ARGV[i]
  local li = find_lane(u)
  local st = holder_state(u)
  if li then
    out[#out + 1] = {'Queued', lane_position(li, redis.call('ZRANK', LANES[li], u), ARGV[2]), line_length(), '',
      redis.call('HGET', K_CS, u) or '', '', '', lane_name(li)}
  elseif st then
    local o = holder_status(u, st, redis.call('HGET', K_CS, u) or '')
    o[7] = ''
    o[8] = redis.call('HGET', K_HOLD, 'l:' .. u) or 'default'
    out[#out + 1] = o
  else
    out[#out + 1] = gone_status(u, now)
  end
end
return out
`)

// mUser is the model's view of one present user.
type mUser struct {
	state        State
	seq          int64 // join sequence (kept while Admitting)
	score        int64 // join score (score.go): the order within the lane
	lane         string
	started      int64 // first heartbeat (ms), 0 before it; kept across reattaches
	lastSeen     int64 // Queued
	client       Client
	tok, ss      string
	deadline     int64 // Admitting: lease expiry; Ready: ready deadline; Active: heartbeat deadline; Releasing: next attempt due
	prev         State // Admitting by reattach: state to return to
	prevDeadline int64
	reason       Reason // Releasing
	failures     int    // Releasing: DestroySession attempts that failed (RetryRelease)
	jid          int64  // the current join's id: its sequence, or the one a grant re-issued
}

type mGone struct {
	reason Reason
	until  int64
}

// model is the queue as a plain in-memory structure, following the documented semantics.
type model struct {
	o          Options
	now        int64
	seq        int64
	users      map[string]*mUser
	gone       map[string]mGone
	admitted   int64
	admissions []int64
	left       map[Reason]int64

	lanes    []Lane // in laneOrder
	cycle    string
	pointer  int // the admission cycle's pointer (lanes.go)
	paused   bool
	capo     int // capacity override, -1: none
	notice   string
	records  int64
	opensAt  int64 // 0: open
	seed     string
	grantFor string // the lane the next "granted" proof names

	// the last-seen sweep (lastseen.go): paced as for a large queue, or whole at every reap
	pacedSweep bool
	sweepEvery time.Duration
	sweeping   bool
	sweepStart int64
}

// laneOf is the 1-based index of a lane name (default: 1).
func (m *model) laneIdx(name string) int {
	for i, l := range m.lanes {
		if l.Name == name {
			return i + 1
		}
	}
	return 1
}

// laneLists are the queued users of each lane (1-based) in score order.
func (m *model) laneLists() map[int][]string {
	out := map[int][]string{}
	for u, x := range m.users {
		if x.state == StateQueued {
			i := m.laneIdx(x.lane)
			out[i] = append(out[i], u)
		}
	}
	for _, l := range out {
		slices.SortFunc(l, func(a, b string) int { return cmp.Compare(m.users[a].score, m.users[b].score) })
	}
	return out
}

// admissionOrder simulates the admissions from the pointer until n users are taken or every
// lane is empty: the users in order, and the pointer after.
func (m *model) admissionOrder(n int) ([]string, int) {
	lists := m.laneLists()
	if len(m.lanes) <= 1 {
		q := lists[1]
		return q[:min(n, len(q))], m.pointer
	}
	total := 0
	for _, l := range lists {
		total += len(l)
	}
	var out []string
	p := m.pointer % len(m.cycle)
	for len(out) < n && total > 0 {
		l := int(m.cycle[p] - '0')
		p = (p + 1) % len(m.cycle)
		if len(lists[l]) > 0 {
			out = append(out, lists[l][0])
			lists[l] = lists[l][1:]
			total--
		}
	}
	return out, p
}

func (m *model) capacity() int {
	if m.capo >= 0 {
		return m.capo
	}
	return m.o.Capacity
}

func (m *model) queuedSorted() []string {
	q, _ := m.admissionOrder(len(m.users) + 1)
	return q
}

func (m *model) held() int {
	n := 0
	for _, x := range m.users {
		if x.state.Holds() {
			n++
		}
	}
	return n
}

func (m *model) status(u string) Status {
	x, ok := m.users[u]
	if !ok {
		if g, ok := m.gone[u]; ok && g.until > m.now {
			return Status{Reason: g.reason}
		}
		return Status{}
	}
	lane := x.lane
	if lane == "" {
		lane = DefaultLane
	}
	if x.state == StateQueued {
		q := m.queuedSorted()
		return Status{State: StateQueued, Position: int64(slices.Index(q, u) + 1), Length: int64(len(q)), Client: x.client, Lane: lane}
	}
	st := Status{State: x.state, Client: x.client, Lane: lane}
	if x.state == StateReady || x.state == StateActive {
		st.ServerSession = x.ss
	}
	return st
}

func (m *model) setGone(u string, r Reason) {
	delete(m.users, u)
	m.gone[u] = mGone{r, m.now + ms(m.o.GoneRetention)}
}

func (m *model) toReleasing(x *mUser, r Reason) {
	x.state, x.reason, x.deadline, x.tok, x.prev, x.failures = StateReleasing, r, m.now, "", "", 0
	x.started = 0
	m.left[r]++
	m.records++
}

func (m *model) unclaim(x *mUser) {
	if x.prev != "" {
		x.state, x.deadline, x.prev, x.tok = x.prev, x.prevDeadline, "", ""
		return
	}
	x.state, x.lastSeen, x.tok, x.ss = StateQueued, m.now, "", ""
}

// proofs are the kinds of proof a caller may show; proofOf turns one into the queue's Proof.
var proofs = []string{"trusted", "granted", "none", "current", "stale"}

func (m *model) proofOf(u, kind string) Proof {
	var jid int64
	if x, ok := m.users[u]; ok {
		jid = x.jid
	}
	switch kind {
	case "trusted":
		return Trusted
	case "granted":
		return GrantedIn(m.grantFor)
	case "current":
		return Ticketed(strconv.FormatInt(jid, 10))
	case "stale":
		return Ticketed(strconv.FormatInt(jid+1000, 10))
	}
	return Unproven
}

// proven reports whether p lets a caller act for u: anyone for an unknown user; for a known
// one, trust, a grant, or a ticket of its current join.
func (m *model) proven(u string, p Proof) bool {
	x, ok := m.users[u]
	switch {
	case !ok, p == Trusted, p.arg == "G":
		return true
	case p == Unproven:
		return false
	}
	return p == Ticketed(strconv.FormatInt(x.jid, 10))
}

func (m *model) join(u string, c Client, p Proof) Status {
	x, ok := m.users[u]
	if ok && !m.proven(u, p) {
		st := m.status(u)
		st.Client, st.ServerSession = Client{}, ""
		return st
	}
	lane := DefaultLane
	if p.arg == "G" && p.lane != "" && m.laneIdx(p.lane) > 1 {
		lane = p.lane
	}
	if !ok {
		m.seq++
		x = &mUser{state: StateQueued, seq: m.seq, lane: lane}
		if m.opensAt > 0 && m.now < m.opensAt {
			x.score = cohortKey(m.seed, u)<<27 + m.seq%(1<<27)
		} else {
			x.score = scoreOpen + m.seq<<16
		}
		x.jid = x.score
		m.users[u] = x
		delete(m.gone, u)
	} else if p.arg == "G" {
		m.seq++
		x.jid = m.seq
		if x.state == StateQueued {
			x.lane = lane
		}
	}
	if x.state == StateQueued {
		x.lastSeen = m.now
	}
	if c.Session != "" {
		x.client = c
	}
	st := m.status(u)
	st.JoinID = strconv.FormatInt(x.jid, 10)
	return st
}

func (m *model) poll(u string, c Client, p Proof) (Status, error) {
	// The pipelined poll (lastseen.go) writes last-seen before it checks the ticket: an
	// earlier ticket of a queued user counts as seen, though it is refused.
	if x, ok := m.users[u]; ok && x.state == StateQueued && len(m.o.Lanes) == 0 && c.Session == "" {
		if _, err := strconv.ParseFloat(p.arg, 64); err == nil {
			x.lastSeen = m.now
		}
	}
	if !m.proven(u, p) {
		return Status{}, ErrBadTicket
	}
	if x, ok := m.users[u]; ok {
		if x.state == StateQueued {
			x.lastSeen = m.now
		}
		if c.Session != "" {
			x.client = c
		}
	}
	st := m.status(u)
	st.Client = Client{}
	return st, nil
}

// claim returns the users the queue must claim; the test then records their tokens.
func (m *model) claim(only string, k int) []string {
	if m.paused || (m.opensAt > 0 && m.now < m.opensAt) {
		return nil
	}
	n := min(k, m.capacity()-m.held())
	if n <= 0 {
		return nil
	}
	q, p := m.admissionOrder(n)
	if only != "" && (len(q) == 0 || q[0] != only) {
		return nil
	}
	if len(q) > 0 {
		m.pointer = p
	}
	for _, u := range q {
		x := m.users[u]
		x.state, x.deadline = StateAdmitting, m.now+ms(m.o.ClaimLease)
	}
	return q
}

func (m *model) current(c Claim) *mUser {
	x, ok := m.users[c.UserID]
	if !ok || x.state != StateAdmitting || x.tok != c.Token {
		return nil
	}
	return x
}

func (m *model) markReady(c Claim, ss string) error {
	x := m.current(c)
	if x == nil {
		return ErrLeaseLost
	}
	if x.prev == "" {
		m.admitted++
		m.admissions = append(m.admissions, m.now)
	}
	x.state, x.deadline, x.ss, x.tok, x.prev = StateReady, m.now+ms(m.o.ReadyTimeout), ss, "", ""
	return nil
}

func (m *model) requeue(c Claim) error {
	x := m.current(c)
	if x == nil {
		return ErrLeaseLost
	}
	m.unclaim(x)
	return nil
}

func (m *model) refuse(c Claim, locked bool) error {
	x := m.current(c)
	if x == nil {
		return ErrLeaseLost
	}
	if locked || x.prev != "" {
		m.toReleasing(x, ReasonCARRefused)
	} else {
		m.setGone(c.UserID, ReasonCARRefused)
		m.left[ReasonCARRefused]++
		m.records++
	}
	return nil
}

func (m *model) heartbeat(u string, p Proof) (Status, error) {
	if !m.proven(u, p) {
		return Status{}, ErrBadTicket
	}
	x, ok := m.users[u]
	if ok && (x.state == StateReady || x.state == StateActive) {
		x.state, x.deadline = StateActive, m.now+ms(m.o.HeartbeatTimeout)
		if x.started == 0 {
			x.started = m.now
		}
	}
	st := m.status(u)
	st.Client, st.ServerSession, st.Lane = Client{}, "", ""
	if ok && x.state.Holds() && m.o.MaxSession > 0 && x.started > 0 {
		st.StartedAt = time.UnixMilli(x.started)
	}
	return st, nil
}

func (m *model) stop(u string, p Proof) (State, error) {
	if !m.proven(u, p) {
		return StateNone, ErrBadTicket
	}
	return m.leave(u, ReasonStopped), nil
}

// leave is a stop or an operator's kick.
func (m *model) leave(u string, r Reason) State {
	x, ok := m.users[u]
	if !ok {
		return StateNone
	}
	prev := x.state
	switch x.state {
	case StateQueued:
		m.setGone(u, r)
		m.left[r]++
		m.records++
	case StateReleasing:
	default:
		m.toReleasing(x, r)
	}
	return prev
}

// reattach returns whether the user is to be claimed again.
func (m *model) reattach(u string, c Client, p Proof) (bool, error) {
	if !m.proven(u, p) {
		return false, ErrBadTicket
	}
	x, ok := m.users[u]
	if !ok || (x.state != StateReady && x.state != StateActive) || x.deadline <= m.now {
		return false, nil
	}
	x.prev, x.prevDeadline = x.state, x.deadline
	x.state, x.deadline = StateAdmitting, m.now+ms(m.o.ClaimLease)
	if c.Session != "" {
		x.client = c
	}
	return true, nil
}

// expire ends a Ready or Active user past its deadline, with the reason Reap would give.
func (m *model) expire(u string) bool {
	x, ok := m.users[u]
	if !ok || (x.state != StateReady && x.state != StateActive) || x.deadline > m.now {
		return false
	}
	reason := ReasonHeartbeatTimeout
	if x.state == StateReady {
		reason = ReasonNeverStarted
	}
	m.toReleasing(x, reason)
	return true
}

// due lists the users in state whose key is <= limit, ordered as ZRANGEBYSCORE orders them.
func (m *model) due(state State, key func(*mUser) int64, limit int64, batch int) []string {
	var out []string
	for u, x := range m.users {
		if x.state == state && key(x) <= limit {
			out = append(out, u)
		}
	}
	slices.SortFunc(out, func(a, b string) int {
		return cmp.Or(cmp.Compare(key(m.users[a]), key(m.users[b])), cmp.Compare(a, b))
	})
	return out[:min(batch, len(out))]
}

func (m *model) reap(batch int) ReapResult {
	dl := func(x *mUser) int64 { return x.deadline }
	res := ReapResult{Dropped: map[Reason]int{}}
	// The last-seen sweep (lastseen.go): a small queue is swept whole at every reap; a large
	// one (paced) from every sweepEvery, a step per reap until a step drops fewer than batch.
	var idle []string
	if !m.sweeping && (!m.pacedSweep || m.now-m.sweepStart >= ms(m.sweepEvery)) {
		m.sweeping, m.sweepStart = true, m.now
	}
	if m.sweeping {
		idle = m.due(StateQueued, func(x *mUser) int64 { return x.lastSeen }, m.now-ms(m.o.QueueIdleTimeout), batch)
		m.sweeping = len(idle) == batch
	}
	for _, u := range idle {
		m.setGone(u, ReasonIdle)
		m.left[ReasonIdle]++
		m.records++
	}
	rdy := m.due(StateReady, dl, m.now, batch)
	for _, u := range rdy {
		m.toReleasing(m.users[u], ReasonNeverStarted)
	}
	act := m.due(StateActive, dl, m.now, batch)
	for _, u := range act {
		m.toReleasing(m.users[u], ReasonHeartbeatTimeout)
	}
	lease := m.due(StateAdmitting, dl, m.now, batch)
	for _, u := range lease {
		m.unclaim(m.users[u])
	}
	var lim []string
	if m.o.MaxSession > 0 {
		var over []string
		for u, x := range m.users {
			if x.started > 0 && x.started <= m.now-ms(m.o.MaxSession) {
				over = append(over, u)
			}
		}
		slices.SortFunc(over, func(a, b string) int {
			return cmp.Or(cmp.Compare(m.users[a].started, m.users[b].started), cmp.Compare(a, b))
		})
		for _, u := range over[:min(batch, len(over))] {
			if x := m.users[u]; x.state == StateActive {
				m.toReleasing(x, ReasonTimeLimit)
				lim = append(lim, u)
			}
		}
	}
	for r, n := range map[Reason]int{ReasonIdle: len(idle), ReasonNeverStarted: len(rdy), ReasonHeartbeatTimeout: len(act), ReasonTimeLimit: len(lim)} {
		if n > 0 {
			res.Dropped[r] = n
		}
	}
	res.Releasing = append(append(rdy, act...), lim...)
	res.ExpiredClaims = len(lease)
	res.More = len(idle) == batch || len(rdy) == batch || len(act) == batch || len(lease) == batch || len(lim) == batch
	return res
}

func (m *model) releasing(max int) []string {
	return m.due(StateReleasing, func(x *mUser) int64 { return x.deadline }, m.now, max)
}

// retryRelease puts off a Releasing user's next attempt: base × 2^(failures-1), at most max.
func (m *model) retryRelease(u string, base, max time.Duration) int {
	x, ok := m.users[u]
	if !ok || x.state != StateReleasing {
		return 0
	}
	x.failures++
	wait := min(ms(base)<<min(x.failures-1, 30), ms(max))
	x.deadline = m.now + wait
	return x.failures
}

func (m *model) released(u string) error {
	x, ok := m.users[u]
	if !ok || x.state != StateReleasing {
		return ErrNotHolding
	}
	m.setGone(u, x.reason)
	return nil
}

func (m *model) stats() Stats {
	s := Stats{Capacity: int64(m.capacity()), AdmittedTotal: m.admitted, ReapedByReason: map[Reason]int64{},
		Controls:    Controls{Paused: m.paused, Notice: m.notice, Capacity: max(m.capo, 0), CapacitySet: m.capo >= 0},
		RecordsKept: m.records, RecordsPending: m.records}
	if len(m.lanes) > 1 {
		s.LaneQueued = map[string]int64{}
		for _, l := range m.lanes {
			s.LaneQueued[l.Name] = 0
		}
		for _, x := range m.users {
			if x.state == StateQueued {
				s.LaneQueued[m.lanes[m.laneIdx(x.lane)-1].Name]++
			}
		}
	}
	for _, x := range m.users {
		switch x.state {
		case StateQueued:
			s.Queued++
		case StateAdmitting:
			s.Admitting++
		case StateReady:
			s.Ready++
		case StateActive:
			s.Active++
		case StateReleasing:
			s.Releasing++
			if x.deadline > m.now {
				s.ReleasesRetrying++
			}
		}
	}
	for _, r := range Reasons {
		s.ReapedByReason[r] = m.left[r]
	}
	s.ReapedTotal = m.left[ReasonIdle] + m.left[ReasonHeartbeatTimeout] + m.left[ReasonNeverStarted] + m.left[ReasonTimeLimit]
	// The admissions of the window, over the span from the oldest of them to now (at least a
	// 30th of the window).
	var recent []int64
	for _, ts := range m.admissions {
		if ts > m.now-ms(m.o.RateWindow) {
			recent = append(recent, ts)
		}
	}
	if len(recent) > 0 {
		span := min(max(m.now-slices.Min(recent), ms(m.o.RateWindow)/30), ms(m.o.RateWindow))
		s.AdmissionsPerMinute = float64(len(recent)) * 60_000 / float64(span)
		s.RecentAdmissions = int64(len(recent))
	}
	return s
}

// limitRapidChecks keeps the model test bounded (it runs on two backends under -race) unless
// the caller asked for a number of checks.
// It also keeps rapid from writing fail files into the source tree (a failure prints its seed)
// and bounds shrinking.
func limitRapidChecks(n int) {
	set := map[string]bool{}
	flag.Visit(func(f *flag.Flag) { set[f.Name] = true })
	if _, env := os.LookupEnv("RAPID_CHECKS"); !set["rapid.checks"] && !env {
		_ = flag.Set("rapid.checks", fmt.Sprint(n))
	}
	if !set["rapid.nofailfile"] {
		_ = flag.Set("rapid.nofailfile", "true")
	}
	if !set["rapid.shrinktime"] {
		_ = flag.Set("rapid.shrinktime", "10s")
	}
}

// laneSets are the lanes a model run draws: none, two, three.
var laneSets = [][]Lane{nil, {{"vip", 2}, {DefaultLane, 1}}, {{DefaultLane, 1}, {"vip", 3}, {"pro", 1}}}

func TestModel(t *testing.T) {
	limitRapidChecks(40)
	users := []string{"a", "b", "c", "d", "e"}
	clients := []Client{{}, {Session: "cs1"}, {IP: "198.51.100.7", Session: "cs2"}, {IP: "2001:db8::1", Session: "cs|3"}, {IP: "198.51.100.8"}}
	jumps := []time.Duration{0, time.Millisecond, time.Second, 10 * time.Second, 29 * time.Second, 30 * time.Second,
		31 * time.Second, 40 * time.Second, 59 * time.Second, 60 * time.Second, 61 * time.Second, 5 * time.Minute, 11 * time.Minute}
	for _, b := range redistest.Backends(t) {
		t.Run(b.Name, func(t *testing.T) {
			prefix := redistest.Prefix(t, b.Client)
			run := 0
			rapid.Check(t, func(rt *rapid.T) {
				run++
				clk := testkit.NewClock()
				o := testOptions(rapid.IntRange(1, 3).Draw(rt, "capacity"))
				o.QueueID, o.Now = fmt.Sprintf("%s-%d", prefix, run), clk.Now
				o.ReadyTimeout, o.GoneRetention = 40*time.Second, 2*time.Minute
				o.Lanes = rapid.SampledFrom(laneSets).Draw(rt, "lanes")
				o.MaxSession = rapid.SampledFrom([]time.Duration{0, 45 * time.Second, 2 * time.Minute}).Draw(rt, "max session")
				if opens := rapid.SampledFrom([]time.Duration{0, 30 * time.Second, 2 * time.Minute}).Draw(rt, "opens in"); opens > 0 {
					o.OpensAt, o.ShuffleSeed = clk.Now().Add(opens), "seed"
				}
				q, err := New(b.Client, o)
				if err != nil {
					rt.Fatal(err)
				}
				o = q.Options()
				m := &model{o: o, now: clk.Now().UnixMilli(), users: map[string]*mUser{}, gone: map[string]mGone{}, left: map[Reason]int64{},
					lanes: laneOrder(o.Lanes), cycle: laneCycle(laneOrder(o.Lanes)), capo: -1, seed: o.ShuffleSeed,
					pacedSweep: rapid.Bool().Draw(rt, "paced sweep"), sweepEvery: q.sweepEvery()}
				if m.pacedSweep {
					q.sweepWhole = 0 // as if the queue were large: a sweep every sweepEvery
				}
				if !o.OpensAt.IsZero() {
					m.opensAt = o.OpensAt.UnixMilli()
				}
				laneNames := []string{"", DefaultLane, "vip", "pro"}
				var claims []Claim
				check := func(what string, got, want any) {
					if !reflect.DeepEqual(got, want) {
						rt.Fatalf("%s: queue %+v, model %+v", what, got, want)
					}
				}
				errIs := func(what string, got, want error) {
					if !errors.Is(got, want) || (got == nil) != (want == nil) {
						rt.Fatalf("%s: queue err %v, model err %v", what, got, want)
					}
				}
				pickClaim := func(rt *rapid.T) Claim {
					if len(claims) == 0 {
						rt.Skip("no claim yet")
					}
					return rapid.SampledFrom(claims).Draw(rt, "claim")
				}
				recordClaims := func(what string, got []Claim, want []string) {
					ids := []string{}
					for _, c := range got {
						ids = append(ids, c.UserID)
						check(what+" client of "+c.UserID, c.Client, m.users[c.UserID].client)
						m.users[c.UserID].tok = c.Token
						claims = append(claims, c)
					}
					check(what, ids, append([]string{}, want...))
				}
				rt.Repeat(map[string]func(*rapid.T){
					"join": func(rt *rapid.T) {
						u, c := rapid.SampledFrom(users).Draw(rt, "u"), rapid.SampledFrom(clients).Draw(rt, "client")
						m.grantFor = rapid.SampledFrom(laneNames).Draw(rt, "grant lane")
						p := m.proofOf(u, rapid.SampledFrom(proofs).Draw(rt, "proof"))
						got, err := q.Join(bg, u, c, p)
						errIs("join", err, nil)
						check("join "+u, got, m.join(u, c, p))
					},
					"poll": func(rt *rapid.T) {
						u, c := rapid.SampledFrom(users).Draw(rt, "u"), rapid.SampledFrom(clients).Draw(rt, "client")
						p := m.proofOf(u, rapid.SampledFrom(proofs).Draw(rt, "proof"))
						got, err := q.Poll(bg, u, c, p)
						want, werr := m.poll(u, c, p)
						errIs("poll", err, werr)
						check("poll "+u, got, want)
					},
					"claim": func(rt *rapid.T) {
						k := rapid.IntRange(1, 3).Draw(rt, "k")
						got, err := q.Claim(bg, k)
						errIs("claim", err, nil)
						recordClaims("claim", got, m.claim("", k))
					},
					"claimUser": func(rt *rapid.T) {
						u := rapid.SampledFrom(users).Draw(rt, "u")
						c, ok, err := q.ClaimUser(bg, u)
						errIs("claim user", err, nil)
						var got []Claim
						if ok {
							got = []Claim{c}
						}
						recordClaims("claim user "+u, got, m.claim(u, 1))
					},
					"reattach": func(rt *rapid.T) {
						u, cl := rapid.SampledFrom(users).Draw(rt, "u"), rapid.SampledFrom(clients).Draw(rt, "client")
						p := m.proofOf(u, rapid.SampledFrom(proofs).Draw(rt, "proof"))
						c, ok, err := q.Reattach(bg, u, cl, p)
						want, werr := m.reattach(u, cl, p)
						errIs("reattach", err, werr)
						check("reattach "+u, ok, want)
						if ok {
							check("reattach client", c.Client, m.users[u].client)
							m.users[u].tok = c.Token
							claims = append(claims, c)
						}
					},
					"markReady": func(rt *rapid.T) {
						c := pickClaim(rt)
						errIs("mark ready "+c.UserID, q.MarkReady(bg, c, "ss-"+c.Token[:4]), m.markReady(c, "ss-"+c.Token[:4]))
					},
					"requeue": func(rt *rapid.T) {
						c := pickClaim(rt)
						errIs("requeue "+c.UserID, q.Requeue(bg, c), m.requeue(c))
					},
					"refuse": func(rt *rapid.T) {
						c, locked := pickClaim(rt), rapid.Bool().Draw(rt, "locked")
						errIs("refuse "+c.UserID, q.Refuse(bg, c, locked), m.refuse(c, locked))
					},
					"heartbeat": func(rt *rapid.T) {
						u := rapid.SampledFrom(users).Draw(rt, "u")
						p := m.proofOf(u, rapid.SampledFrom(proofs).Draw(rt, "proof"))
						got, err := q.Heartbeat(bg, u, p)
						want, werr := m.heartbeat(u, p)
						errIs("heartbeat", err, werr)
						check("heartbeat "+u, got, want)
					},
					"expire": func(rt *rapid.T) {
						u := rapid.SampledFrom(users).Draw(rt, "u")
						got, err := q.Expire(bg, u)
						errIs("expire", err, nil)
						check("expire "+u, got, m.expire(u))
					},
					"retryRelease": func(rt *rapid.T) {
						u := rapid.SampledFrom(users).Draw(rt, "u")
						base := time.Duration(rapid.IntRange(1, 3).Draw(rt, "base")) * time.Second
						max := base * time.Duration(rapid.IntRange(1, 8).Draw(rt, "cap"))
						n, ok, err := q.RetryRelease(bg, u, base, max)
						errIs("retry release", err, nil)
						want := m.retryRelease(u, base, max)
						check("retry release "+u, n, want)
						check("retry release ok "+u, ok, want > 0)
					},
					"stop": func(rt *rapid.T) {
						u := rapid.SampledFrom(users).Draw(rt, "u")
						p := m.proofOf(u, rapid.SampledFrom(proofs).Draw(rt, "proof"))
						got, err := q.Stop(bg, u, p)
						want, werr := m.stop(u, p)
						errIs("stop", err, werr)
						check("stop "+u, got, want)
					},
					"reap": func(rt *rapid.T) {
						batch := rapid.IntRange(1, 3).Draw(rt, "batch")
						got, err := q.Reap(bg, batch)
						errIs("reap", err, nil)
						check("reap", got, m.reap(batch))
					},
					"releasing": func(rt *rapid.T) {
						max := rapid.IntRange(1, 4).Draw(rt, "max")
						got, err := q.Releasing(bg, max)
						errIs("releasing", err, nil)
						want := m.releasing(max)
						if len(want) == 0 {
							want = []string{}
						}
						check("releasing", got, want)
					},
					"released": func(rt *rapid.T) {
						u := rapid.SampledFrom(users).Draw(rt, "u")
						errIs("released "+u, q.Released(bg, u), m.released(u))
					},
					"pause": func(rt *rapid.T) {
						paused := rapid.Bool().Draw(rt, "paused")
						if m.paused && !paused {
							m.admissions = nil // a resume measures the rate afresh
						}
						m.paused = paused
						errIs("pause", q.SetPaused(bg, m.paused), nil)
					},
					"capacity": func(rt *rapid.T) {
						n := rapid.IntRange(-1, 3).Draw(rt, "capacity override")
						if n < 0 {
							errIs("reset capacity", q.ResetCapacity(bg), nil)
						} else {
							errIs("set capacity", q.SetCapacity(bg, n), nil)
						}
						m.capo = n
					},
					"notice": func(rt *rapid.T) {
						m.notice = rapid.SampledFrom([]string{"", "maintenance at 10:00", "维护中"}).Draw(rt, "notice")
						errIs("notice", q.SetNotice(bg, m.notice), nil)
					},
					"kick": func(rt *rapid.T) {
						u := rapid.SampledFrom(users).Draw(rt, "u")
						got, err := q.Kick(bg, u)
						errIs("kick", err, nil)
						check("kick "+u, got, m.leave(u, ReasonKicked))
					},
					"advance": func(rt *rapid.T) {
						d := rapid.SampledFrom(jumps).Draw(rt, "d")
						clk.Advance(d)
						m.now = clk.Now().UnixMilli()
					},
					"": func(rt *rapid.T) {
						m.now = clk.Now().UnixMilli()
						if err := q.CheckInvariants(bg); err != nil {
							rt.Fatalf("invariants: %v", err)
						}
						args := []any{m.now, q.cycle}
						var want []Status
						for _, u := range users {
							args = append(args, u)
							want = append(want, m.status(u))
						}
						v, err := q.run(bg, peekScript, args...)
						errIs("peek", err, nil)
						var got []Status
						for _, x := range v.([]any) {
							st, err := replyStatus(x)
							errIs("peek reply", err, nil)
							got = append(got, st)
						}
						check("statuses of "+fmt.Sprint(users), got, want)
						s, err := q.Stats(bg)
						errIs("stats", err, nil)
						check("stats", s, m.stats())
					},
				})
			})
		})
	}
}
