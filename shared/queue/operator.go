package queue

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// The operator's side of a queue (API.md second edition, "Operator routes", "Priority lanes",
// "Scheduled opening", "Session limits and records"). Every control is a field of the
// queue's cfg hash, read by the scripts that act on it (claim reads paused and capacity), so
// every instance sees a change at once.

// More reasons a user leaves.
const (
	ReasonKicked    Reason = "kicked"     // an operator's /admin/kick
	ReasonTimeLimit Reason = "time_limit" // the session reached MaxSession
)

// DefaultLane is the lane of a user who came without a grant naming another.
const DefaultLane = "default"

// Lane is one priority lane of a queue: of every sum-of-weights admissions, up to Weight come
// from this lane while it has users.
type Lane struct {
	Name   string // 1-32 chars of [a-z0-9_-]; DefaultLane must be one of a queue's lanes
	Weight int    // 1-100
}

// Controls are the operator's live settings of a queue.
type Controls struct {
	Paused bool
	Notice string // "" when none
	// Capacity is the live capacity override (/admin/capacity); CapacitySet false: none, the
	// configured Capacity applies.
	Capacity    int
	CapacitySet bool
}

// Holder is one user holding a slot, for /admin/sessions.
type Holder struct {
	UserID     string
	State      State
	Lane       string
	JoinedAt   time.Time // zero when unknown
	AdmittedAt time.Time // zero while Admitting for the first time
	StartedAt  time.Time // first heartbeat; zero before it
}

// Record is one departure (API.md "Session records"). Zero times are "never happened".
type Record struct {
	ID                                       string // the stream id: the cursor of /admin/records
	UserID, Lane                             string
	JoinedAt, AdmittedAt, StartedAt, EndedAt time.Time
	Reason                                   Reason
	// FirstETA is the wait the user was first told (0: none was given).
	FirstETA time.Duration
}

// Minute is one minute of a queue's history (History).
type Minute struct {
	At       time.Time // the minute's start
	Admitted int64     // first admissions in the minute
	Left     int64     // departures (any reason)
	Queued   int64     // line length as last sampled in the minute (-1: not sampled)
	Holding  int64     // slots held as last sampled (-1: not sampled)
}

// MaxNotice bounds a notice, in characters (API.md).
const MaxNotice = 500

// controlScript changes one operator setting in cfg. A change of capacity leaves capo_set
// behind for good: from then on more slots may be held than Options.Capacity says
// (CheckInvariants). A resume forgets the admission rate: the window would hold the paused
// time, and ETAs from it would run long; the rate is measured afresh (no ETA until a few
// admissions). ARGV: field, value ("" deletes it).
var controlScript = newScript("control", `
if ARGV[1] == 'capo' then redis.call('HSET', K_CFG, 'capo_set', 1) end
if ARGV[1] == 'paused' and ARGV[2] == '' and redis.call('HGET', K_CFG, 'paused') == '1' then
  redis.call('DEL', K_RATE)
end
if ARGV[2] == '' then return redis.call('HDEL', K_CFG, ARGV[1]) end
return redis.call('HSET', K_CFG, ARGV[1], ARGV[2])
`)

// controlsScript reads the operator settings. Reply: {paused, notice, capacity override}.
var controlsScript = newScript("controls", `
return redis.call('HMGET', K_CFG, 'paused', 'notice', 'capo')
`)

func readControls(paused, notice, capo string) Controls {
	c := Controls{Paused: paused == "1", Notice: notice}
	if n, err := strconv.Atoi(capo); err == nil {
		c.Capacity, c.CapacitySet = n, true
	}
	return c
}

// Controls reads the operator's live settings (one round trip).
func (q *Queue) Controls(ctx context.Context) (Controls, error) {
	v, err := q.run(ctx, controlsScript)
	var a []any
	if err == nil {
		a, err = replySlice(v, 3)
	}
	if err != nil {
		return Controls{}, fmt.Errorf("controls: %w", err)
	}
	return readControls(replyString(a[0]), replyString(a[1]), replyString(a[2])), nil
}

func (q *Queue) control(ctx context.Context, what, field, value string) error {
	if _, err := q.run(ctx, controlScript, field, value); err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	return nil
}

// SetPaused stops (true) or resumes (false) admission: the claim script reads it, so no
// instance admits anyone once it is set. Queued users keep their places. Resuming restarts the
// measure of the admission rate (AdmissionsPerMinute), which the pause would distort.
func (q *Queue) SetPaused(ctx context.Context, paused bool) error {
	v := ""
	if paused {
		v = "1"
	}
	return q.control(ctx, "set paused", "paused", v)
}

// SetNotice sets the notice shown to every user of the queue; "" clears it.
func (q *Queue) SetNotice(ctx context.Context, notice string) error {
	if n := utf8.RuneCountInString(notice); n > MaxNotice || !utf8.ValidString(notice) {
		return fmt.Errorf("set notice: Notice has %d chars (valid UTF-8 required), at most %d allowed: %w", n, MaxNotice, ErrInvalid)
	}
	return q.control(ctx, "set notice", "notice", notice)
}

// SetCapacity overrides the capacity live (n >= 0); lowering it ends no session, it only
// stops admitting until fewer hold a slot.
func (q *Queue) SetCapacity(ctx context.Context, n int) error {
	if n < 0 || n > MaxCapacity {
		return fmt.Errorf("set capacity: Capacity %d must be 0-%d: %w", n, MaxCapacity, ErrInvalid)
	}
	return q.control(ctx, "set capacity", "capo", strconv.Itoa(n))
}

// MaxCapacity bounds a live capacity override.
const MaxCapacity = 1_000_000

// ResetCapacity drops the override: the configured Capacity applies again.
func (q *Queue) ResetCapacity(ctx context.Context) error {
	return q.control(ctx, "reset capacity", "capo", "")
}

// Kick removes a user: a queued one leaves (gone, kicked); a holder starts releasing (reason
// kicked) and the caller must DestroySession it, as after Stop. It returns the state before
// (StateNone: not in the queue).
func (q *Queue) Kick(ctx context.Context, userID string) (State, error) {
	if err := checkUser(userID); err != nil {
		return StateNone, fmt.Errorf("kick: %w", err)
	}
	v, err := q.run(ctx, stopScript, userID, q.nowMS(), ms(q.opts.GoneRetention), Trusted.arg, string(ReasonKicked))
	if err != nil {
		return StateNone, fmt.Errorf("kick %s: %w", userID, err)
	}
	return State(replyString(v)), nil
}

// holdersScript lists up to limit holders with their details, longest holding first within
// each state. ARGV: limit. Reply: {user, state, lane, joinScore, admitted, started}...
var holdersScript = newScript("holders", `
local limit, out = tonumber(ARGV[1]), {}
for _, z in ipairs({K_ACT, K_RDY, K_LEASE, K_REL}) do
  for _, u in ipairs(redis.call('ZRANGE', z, 0, limit - 1)) do
    if #out >= 6 * limit then return out end
    local f = redis.call('HMGET', K_HOLD, 's:' .. u, 'l:' .. u, 'q:' .. u, 'ad:' .. u)
    local seq, j = 0, nil
    if f[3] then seq = decode_score(f[3]) j = joined_at(seq) end
    out[#out + 1] = u
    out[#out + 1] = f[1] or ''
    out[#out + 1] = f[2] or 'default'
    out[#out + 1] = j or ''
    out[#out + 1] = f[4] or ''
    out[#out + 1] = redis.call('ZSCORE', K_ST, u) or ''
  end
end
return out
`)

// MaxList bounds one page of Holders or Records.
const MaxList = 1000

// Holders lists up to limit users holding a slot: Active first, then Ready, Admitting and
// Releasing.
func (q *Queue) Holders(ctx context.Context, limit int) ([]Holder, error) {
	if limit < 1 || limit > MaxList {
		return nil, fmt.Errorf("holders: Limit %d must be 1-%d: %w", limit, MaxList, ErrInvalid)
	}
	v, err := q.run(ctx, holdersScript, limit)
	var a []any
	if err == nil {
		a, err = replySlice(v, 0)
	}
	if err != nil {
		return nil, fmt.Errorf("holders: %w", err)
	}
	out := make([]Holder, 0, len(a)/6)
	for i := 0; i+5 < len(a); i += 6 {
		out = append(out, Holder{UserID: replyString(a[i]), State: State(replyString(a[i+1])), Lane: replyString(a[i+2]),
			JoinedAt: msTime(a[i+3]), AdmittedAt: msTime(a[i+4]), StartedAt: msTime(a[i+5])})
	}
	return out, nil
}

// msTime reads a reply's Unix milliseconds; zero for an empty one.
func msTime(v any) time.Time {
	f, err := strconv.ParseFloat(replyString(v), 64)
	if err != nil || f <= 0 {
		return time.Time{}
	}
	return time.UnixMilli(int64(f))
}

// recordsScript pages the records after a cursor. ARGV: after ("" or "-": from the oldest),
// limit. Reply: the stream entries (XRANGE's form).
var recordsScript = newScript("records", `
local after, limit = ARGV[1], tonumber(ARGV[2])
if after == '' then after = '-' end
local r = redis.call('XRANGE', K_REC, after, '+', 'COUNT', limit + 1)
if #r > 0 and r[1][1] == after then table.remove(r, 1) elseif #r > limit then table.remove(r) end
return r
`)

// newestScript is the newest records, oldest first. ARGV: limit.
var newestScript = newScript("newest_records", `
local r = redis.call('XREVRANGE', K_REC, '+', '-', 'COUNT', tonumber(ARGV[1]))
local out = {}
for i = #r, 1, -1 do out[#out + 1] = r[i] end
return out
`)

// Newest returns the newest limit records, oldest first: what a dashboard's distributions
// are drawn from.
func (q *Queue) Newest(ctx context.Context, limit int) ([]Record, error) {
	if limit < 1 || limit > MaxList {
		return nil, fmt.Errorf("newest records: Limit %d must be 1-%d: %w", limit, MaxList, ErrInvalid)
	}
	v, err := q.run(ctx, newestScript, limit)
	var recs []Record
	if err == nil {
		recs, err = readRecords(v)
	}
	if err != nil {
		return nil, fmt.Errorf("newest records: %w", err)
	}
	return recs, nil
}

// undeliveredScript is recordsScript from the webhook's cursor; nothing while a failed
// delivery's backoff runs. ARGV: limit, now.
var undeliveredScript = newScript("undelivered", `
if tonumber(redis.call('HGET', K_CFG, 'whnext') or '0') > tonumber(ARGV[2]) then return {} end
local after, limit = redis.call('HGET', K_CFG, 'whid') or '-', tonumber(ARGV[1])
local r = redis.call('XRANGE', K_REC, after, '+', 'COUNT', limit + 1)
if #r > 0 and r[1][1] == after then table.remove(r, 1) elseif #r > limit then table.remove(r) end
return r
`)

// deliveredScript moves the webhook's cursor forward to id, counting the records passed.
// ARGV: id. Reply: the records newly counted delivered.
var deliveredScript = newScript("delivered", `
local id, old = ARGV[1], redis.call('HGET', K_CFG, 'whid') or '-'
local r = redis.call('XRANGE', K_REC, old, id)
local n = #r
if n > 0 and r[1][1] == old then n = n - 1 end
redis.call('HDEL', K_CFG, 'whfail', 'whnext')
if n <= 0 then return 0 end
redis.call('HSET', K_CFG, 'whid', id)
redis.call('HINCRBY', K_CFG, 'whn', n)
return n
`)

// deliveryFailedScript puts off the next delivery: min(base × 2^(failures-1), cap) from now.
// ARGV: now, baseMs, capMs. Reply: the failures in a row.
var deliveryFailedScript = newScript("delivery_failed", `
local now, base, cap = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local n = redis.call('HINCRBY', K_CFG, 'whfail', 1)
local wait = base * 2 ^ math.min(n - 1, 30)
if wait > cap then wait = cap end
redis.call('HSET', K_CFG, 'whnext', now + wait)
return n
`)

// DeliveryFailed records a failed delivery and puts off the next one, for every instance:
// base after the first failure, doubling, at most max. It returns the failures in a row.
func (q *Queue) DeliveryFailed(ctx context.Context, base, max time.Duration) (int, error) {
	if base < time.Millisecond || max < base {
		return 0, fmt.Errorf("delivery failed: backoff %v..%v must be >= 1ms and ordered: %w", base, max, ErrInvalid)
	}
	v, err := q.run(ctx, deliveryFailedScript, q.nowMS(), ms(base), ms(max))
	if err != nil {
		return 0, fmt.Errorf("delivery failed: %w", err)
	}
	return int(replyInt(v)), nil
}

// streamID is the form of a record id (a Redis stream id).
func validStreamID(id string) bool {
	a, b, ok := strings.Cut(id, "-")
	if !ok || a == "" || b == "" || len(id) > 41 {
		return false
	}
	for _, s := range []string{a, b} {
		if _, err := strconv.ParseUint(s, 10, 64); err != nil {
			return false
		}
	}
	return true
}

// Records pages the departures, oldest first: up to limit after the cursor after ("" from the
// oldest kept); next is the cursor for the following page, "" when this page reached the
// newest record (a caller following the records keeps the last ID itself).
func (q *Queue) Records(ctx context.Context, after string, limit int) (recs []Record, next string, err error) {
	if after != "" && !validStreamID(after) {
		return nil, "", fmt.Errorf("records: After %q is not a record id (<ms>-<n>): %w", after, ErrInvalid)
	}
	if limit < 1 || limit > MaxList {
		return nil, "", fmt.Errorf("records: Limit %d must be 1-%d: %w", limit, MaxList, ErrInvalid)
	}
	v, err := q.run(ctx, recordsScript, after, limit)
	if err == nil {
		recs, err = readRecords(v)
	}
	if err != nil {
		return nil, "", fmt.Errorf("records after %q: %w", after, err)
	}
	if len(recs) == limit {
		next = recs[len(recs)-1].ID
	}
	return recs, next, nil
}

// Undelivered lists up to limit records after the webhook's cursor, oldest first; none while
// the backoff after a failed delivery (DeliveryFailed) runs.
func (q *Queue) Undelivered(ctx context.Context, limit int) ([]Record, error) {
	if limit < 1 || limit > MaxList {
		return nil, fmt.Errorf("undelivered: limit %d must be 1-%d: %w", limit, MaxList, ErrInvalid)
	}
	v, err := q.run(ctx, undeliveredScript, limit, q.nowMS())
	var recs []Record
	if err == nil {
		recs, err = readRecords(v)
	}
	if err != nil {
		return nil, fmt.Errorf("undelivered: %w", err)
	}
	return recs, nil
}

// Delivered moves the webhook's cursor to id (a record Undelivered returned): everything up to
// it was delivered, and the backoff of earlier failures ends. A cursor never moves back.
func (q *Queue) Delivered(ctx context.Context, id string) error {
	if !validStreamID(id) {
		return fmt.Errorf("delivered: %q is not a record id: %w", id, ErrInvalid)
	}
	if _, err := q.run(ctx, deliveredScript, id); err != nil {
		return fmt.Errorf("delivered %s: %w", id, err)
	}
	return nil
}

// readRecords reads XRANGE's reply: {{id, {field, value, ...}}, ...}.
func readRecords(v any) ([]Record, error) {
	a, err := replySlice(v, 0)
	if err != nil {
		return nil, err
	}
	out := make([]Record, 0, len(a))
	for _, e := range a {
		pair, ok := e.([]any)
		if !ok || len(pair) != 2 {
			return nil, fmt.Errorf("record entry %v", e)
		}
		fv, _ := pair[1].([]any)
		f := map[string]any{}
		for i := 0; i+1 < len(fv); i += 2 {
			f[replyString(fv[i])] = fv[i+1]
		}
		r := Record{ID: replyString(pair[0]), UserID: replyString(f["u"]), Lane: replyString(f["l"]),
			JoinedAt: msTime(f["j"]), AdmittedAt: msTime(f["a"]), StartedAt: msTime(f["s"]), EndedAt: msTime(f["e"]),
			Reason: Reason(replyString(f["y"])), FirstETA: time.Duration(replyInt(f["k"])) * time.Second}
		out = append(out, r)
	}
	return out, nil
}

// historyScript reads the per-minute counters. ARGV: first minute, last minute.
// Reply: {a, l, q, h} per minute (” where absent).
var historyScript = newScript("history", `
local out = {}
for m = tonumber(ARGV[1]), tonumber(ARGV[2]) do
  local f = redis.call('HMGET', K_HIST, m .. ':a', m .. ':l', m .. ':q', m .. ':h')
  for i = 1, 4 do out[#out + 1] = f[i] or '' end
end
return out
`)

// HistoryWindow is how far back History goes.
const HistoryWindow = 24 * time.Hour

// History returns the per-minute counters from since to now, oldest first (at most
// HistoryWindow). Queued and Holding are the reaper's last sample in the minute, -1 where it
// took none (no reaper pass ran: the queue was idle).
func (q *Queue) History(ctx context.Context, since time.Time) ([]Minute, error) {
	now := q.opts.Now()
	if since.Before(now.Add(-HistoryWindow)) {
		since = now.Add(-HistoryWindow)
	}
	first, last := since.UnixMilli()/60000, now.UnixMilli()/60000
	if first > last {
		return nil, nil
	}
	v, err := q.run(ctx, historyScript, first, last)
	var a []any
	if err == nil {
		a, err = replySlice(v, 0)
	}
	if err != nil {
		return nil, fmt.Errorf("history since %v: %w", since, err)
	}
	out := make([]Minute, 0, len(a)/4)
	for i := 0; i+3 < len(a); i += 4 {
		m := Minute{At: time.UnixMilli((first + int64(i/4)) * 60000).UTC(), Admitted: replyInt(a[i]), Left: replyInt(a[i+1]), Queued: -1, Holding: -1}
		if replyString(a[i+2]) != "" {
			m.Queued, m.Holding = replyInt(a[i+2]), replyInt(a[i+3])
		}
		out = append(out, m)
	}
	return out, nil
}

// etaErrScript reads the recent ETA errors. Reply: {"<ms>:<permille>", ...}, newest first.
var etaErrScript = newScript("eta_errors", `
return redis.call('LRANGE', K_ETAERR, 0, -1)
`)

// ETAError is the median absolute error of the first ETA told against the actual wait, in
// percent, over the first admissions since since that were told one (at most the last 1,000),
// and how many those were (0: pct means nothing).
func (q *Queue) ETAError(ctx context.Context, since time.Time) (pct float64, n int, err error) {
	v, err := q.run(ctx, etaErrScript)
	var a []any
	if err == nil {
		a, err = replySlice(v, 0)
	}
	if err != nil {
		return 0, 0, fmt.Errorf("eta error: %w", err)
	}
	from := since.UnixMilli()
	var errs []int64
	for _, x := range a {
		at, e, ok := strings.Cut(replyString(x), ":")
		t, err1 := strconv.ParseInt(at, 10, 64)
		p, err2 := strconv.ParseInt(e, 10, 64)
		if ok && err1 == nil && err2 == nil && t >= from {
			errs = append(errs, p)
		}
	}
	if len(errs) == 0 {
		return 0, 0, nil
	}
	return float64(median(errs)) / 10, len(errs), nil
}

func median(xs []int64) int64 {
	s := append([]int64(nil), xs...)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}
