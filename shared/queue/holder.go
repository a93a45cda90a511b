package queue

import (
	"context"
	"fmt"
	"strconv"
	"time"
)

// heartbeatScript: Ready → Active, Active stays; both get a fresh heartbeat deadline. Other
// users are answered without change; a known user whose join id the proof does not name is
// answered BadTicket. The first heartbeat of a session (Ready → Active) is its start (st), kept
// across reattaches. ARGV: user, now, new deadline, proof, started ("1": reply the start,
// for MaxSession), cycle. Reply: status without ServerSession and client, which a heartbeat
// does not need (one read less each time), then the start (ms) when asked for.
//
// The common case, an Active user, is one command: ZADD XX CH changes the deadline of a member
// that exists (and answers 1 when it did); everyone else, and a repeat within the same
// millisecond (score unchanged, answer 0), takes the slower path, which gives the same result.
var heartbeatScript = newScript("heartbeat", `
local u, deadline, proof, started = ARGV[1], ARGV[3], ARGV[4], ARGV[5] == '1'
if proof ~= '*' and proof ~= 'G' then
  local j = redis.call('HGET', K_TKG, u) or redis.call('HGET', K_HOLD, 'q:' .. u)
  if not j then
    for i = 1, #LANES do
      j = redis.call('ZSCORE', LANES[i], u)
      if j then break end
    end
  end
  if j and (proof == '' or tonumber(j) ~= tonumber(proof)) then return {'BadTicket'} end
end
if redis.call('ZADD', K_ACT, 'XX', 'CH', deadline, u) == 1 then
  if started then return {'Active', 0, 0, '', '', '', '', '', redis.call('ZSCORE', K_ST, u) or ''} end
  return {'Active'}
end
--[[helpers]]
local now = tonumber(ARGV[2])
local st = holder_state(u)
if st == 'Ready' then
  redis.call('ZREM', K_RDY, u)
  redis.call('HSET', K_HOLD, 's:' .. u, 'Active')
  redis.call('ZADD', K_ST, 'NX', now, u)
  st = 'Active'
end
if st == 'Active' then redis.call('ZADD', K_ACT, deadline, u) end
if st then
  if started then return {st, 0, 0, '', '', '', '', '', redis.call('ZSCORE', K_ST, u) or ''} end
  return {st}
end
local li, _ = find_lane(u)
if li then
  local r = redis.call('ZRANK', LANES[li], u)
  return {'Queued', lane_position(li, r, ARGV[6]), line_length(), '', '', '', '', lane_name(li)}
end
return gone_status(u, now)
`)

// releasingScript lists the Releasing users whose next attempt is due, the longest due
// first. ARGV: now, max. Reply: users.
var releasingScript = newScript("releasing", `
return redis.call('ZRANGEBYSCORE', K_REL, '-inf', ARGV[1], 'LIMIT', 0, tonumber(ARGV[2]))
`)

// retryReleaseScript puts off the next DestroySession attempt for a Releasing user whose
// attempt failed: min(base × 2^(failures-1), cap) from now. ARGV: user, now, baseMs, capMs.
// Reply: the failures so far, or 0 if the user is not Releasing.
var retryReleaseScript = newScript("retry_release", `
local u, now, base, cap = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4])
if holder_state(u) ~= 'Releasing' then return 0 end
local n = redis.call('HINCRBY', K_HOLD, 'a:' .. u, 1)
local wait = base * 2 ^ math.min(n - 1, 30)
if wait > cap then wait = cap end
redis.call('ZADD', K_REL, 'XX', now + wait, u)
return n
`)

// releasedScript frees the slot of a Releasing user; it is remembered as gone with the reason
// it started releasing for. ARGV: user, now, goneRetention. Reply: 1, or 0 if not Releasing.
var releasedScript = newScript("released", `
local u, now, ret = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3])
if holder_state(u) ~= 'Releasing' then return 0 end
local reason = redis.call('HGET', K_HOLD, 'y:' .. u) or 'stopped'
redis.call('ZREM', K_REL, u)
drop_holder(u)
redis.call('HDEL', K_CS, u)
set_gone(u, reason, now, ret)
return 1
`)

// Heartbeat keeps an admitted user's slot: Ready → Active, Active stays, and either gets a
// fresh heartbeat deadline. It returns the resulting status (StateNone with Reason when gone)
// without ServerSession or Client. One round trip. A heartbeat after the deadline but before
// Reap ran still counts: the deadline only matters to Reap and Reattach. A heartbeat while a
// reattach is Admitting changes nothing (if the reattach lease runs out, the user returns
// with its old deadline).
//
// A known user whose current join p does not name gets ErrBadTicket, and nothing changes.
func (q *Queue) Heartbeat(ctx context.Context, userID string, p Proof) (Status, error) {
	if err := checkUser(userID); err != nil {
		return Status{}, fmt.Errorf("heartbeat: %w", err)
	}
	now := q.nowMS()
	started := "0"
	if q.opts.MaxSession > 0 {
		started = "1"
	}
	v, err := q.run(ctx, heartbeatScript, userID, now, now+ms(q.opts.HeartbeatTimeout), p.arg, started, q.cycle)
	var st Status
	if a, ok := v.([]any); err == nil && ok && len(a) == 9 {
		if ms, perr := strconv.ParseFloat(replyString(a[8]), 64); perr == nil && ms > 0 {
			st.StartedAt = time.UnixMilli(int64(ms))
		}
		v = a[:8]
	}
	if err == nil {
		startedAt := st.StartedAt
		st, err = replyStatus(v)
		st.StartedAt, st.Lane = startedAt, "" // a heartbeat answer names no lane
	}
	if err != nil {
		return Status{}, fmt.Errorf("heartbeat %s: %w", userID, err)
	}
	return st, nil
}

// Releasing lists up to max users waiting for DestroySession whose attempt is due, the
// longest due first: a user who just started releasing is due at once, one whose attempt
// failed when RetryRelease said. So the reaper retries them without hammering a failing CAR.
func (q *Queue) Releasing(ctx context.Context, max int) ([]string, error) {
	if max <= 0 {
		return nil, nil
	}
	if max > MaxBatch {
		return nil, fmt.Errorf("releasing: max %d must be at most %d: %w", max, MaxBatch, ErrInvalid)
	}
	v, err := q.run(ctx, releasingScript, q.nowMS(), max)
	var a []any
	if err == nil {
		a, err = replySlice(v, 0)
	}
	if err != nil {
		return nil, fmt.Errorf("releasing %d: %w", max, err)
	}
	out := make([]string, len(a))
	for i, u := range a {
		out[i] = replyString(u)
	}
	return out, nil
}

// RetryRelease records a failed DestroySession attempt for a Releasing user and puts off the
// next one: base after the first failure, doubling with each further one, at most max. It
// returns the failures so far; ok is false when the user is not Releasing (any more).
func (q *Queue) RetryRelease(ctx context.Context, userID string, base, max time.Duration) (failures int, ok bool, err error) {
	if err := checkUser(userID); err != nil {
		return 0, false, fmt.Errorf("retry release: %w", err)
	}
	if base < time.Millisecond || max < base {
		return 0, false, fmt.Errorf("retry release %s: backoff %v..%v must be >= 1ms and ordered: %w", userID, base, max, ErrInvalid)
	}
	v, err := q.run(ctx, retryReleaseScript, userID, q.nowMS(), ms(base), ms(max))
	if err != nil {
		return 0, false, fmt.Errorf("retry release %s: %w", userID, err)
	}
	n := int(replyInt(v))
	return n, n > 0, nil
}

// Released frees the slot of a Releasing user once CAR confirmed its session destroyed; the
// user is remembered as gone with the reason it started leaving for. ErrNotHolding if the
// user is not Releasing (for instance released already by another caller); callers may treat
// that as done.
func (q *Queue) Released(ctx context.Context, userID string) error {
	if err := checkUser(userID); err != nil {
		return fmt.Errorf("released: %w", err)
	}
	v, err := q.run(ctx, releasedScript, userID, q.nowMS(), ms(q.opts.GoneRetention))
	if err == nil && replyInt(v) != 1 {
		err = ErrNotHolding
	}
	if err != nil {
		return fmt.Errorf("released %s: %w", userID, err)
	}
	return nil
}
