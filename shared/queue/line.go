package queue

import (
	"context"
	"fmt"
	"strconv"
	"time"
)

// joinScript puts a user at the back of its lane, or refreshes a known one in place when the
// caller proves it is that user (its current ticket, a grant, or trusted). A known user asked
// for without proof is answered its state and place and nothing changes: no refresh, no
// last-seen, no ServerSession in the answer, no join id. A grant ('G') re-issues the join id,
// so the tickets of the user's earlier callers stop working while it keeps its place, and
// moves a queued user to the grant's lane (keeping its score, so its join order).
// A new user's score (score.go) holds its join sequence and first ETA (perMs per position,
// 0: none), or before a scheduled opening its shuffle key; each second's first join leaves a
// checkpoint in jt.
// ARGV: user, now, client (encoded; "" keeps the stored one), proof, lane (index in LANES),
// cohort key ("" once open), perMs, cycle. Reply: status, then the join id (” when not
// proven), then the lane.
var joinScript = newScript("join", `
local u, now, cs, proof = ARGV[1], tonumber(ARGV[2]), ARGV[3], ARGV[4]
local li, pre, per, cycle = tonumber(ARGV[5]), ARGV[6], tonumber(ARGV[7]), ARGV[8]
if li > #LANES then li = 1 end
local function reissue()
  if proof ~= 'G' then return join_id(u) end
  local j = redis.call('INCR', K_SEQ)
  redis.call('HSET', K_TKG, u, j)
  return j
end
local cur, score = find_lane(u)
local jid
if not cur then
  local st = holder_state(u)
  if st then
    local lane = redis.call('HGET', K_HOLD, 'l:' .. u) or 'default'
    if not proof_ok(u, proof) then return {st, 0, 0, '', '', '', '', lane} end
    jid = reissue()
    if cs ~= '' then redis.call('HSET', K_CS, u, cs) else cs = redis.call('HGET', K_CS, u) or '' end
    local out = holder_status(u, st, cs)
    out[7] = jid
    out[8] = lane
    return out
  end
  local seq = redis.call('INCR', K_SEQ)
  if now - tonumber(redis.call('HGET', K_CFG, 'jtl') or '0') >= 1000 then
    redis.call('ZADD', K_JT, seq, now)
    redis.call('HSET', K_CFG, 'jtl', now)
  end
  if pre ~= '' then
    score = tonumber(pre) * 134217728 + seq % 134217728
  else
    local eta = 0
    if per > 0 then
      eta = math.min(65535, math.ceil(lane_position(li, redis.call('ZCARD', LANES[li]), cycle) * per / 1000))
    end
    score = 4503599627370496 + seq * 65536 + eta
  end
  redis.call('ZADD', LANES[li], score, u)
  redis.call('ZREM', K_GONE, u)
  redis.call('HDEL', K_GR, u)
  redis.call('HDEL', K_TKG, u)
  cur, jid = li, score
else
  if not proof_ok(u, proof) then
    return {'Queued', lane_position(cur, redis.call('ZRANK', LANES[cur], u), cycle), line_length(), '', '', '', '', lane_name(cur)}
  end
  jid = reissue()
  if proof == 'G' and li ~= cur then
    redis.call('ZREM', LANES[cur], u)
    redis.call('ZADD', LANES[li], score, u)
    cur = li
  end
end
redis.call('HSET', K_LS, u, now)
if cs ~= '' then redis.call('HSET', K_CS, u, cs) else cs = redis.call('HGET', K_CS, u) or '' end
return {'Queued', lane_position(cur, redis.call('ZRANK', LANES[cur], u), cycle), line_length(), '', cs, '', jid, lane_name(cur)}
`)

// pollScript answers a user's status, touching last-seen of a queued user and storing a new
// client. It does not read the stored client back (a poll would carry up to 32 KB for
// nothing). A known user whose join id the proof does not name is answered BadTicket and
// nothing changes. A queue without lanes takes the first branch, three commands.
// ARGV: user, now, client (encoded; "" keeps the stored one), proof, cycle. Reply: status
// (with the lane, when the queue has lanes).
var pollScript = newScript("poll", `
local u, cs, proof = ARGV[1], ARGV[3], ARGV[4]
local r = redis.call('ZRANK', K_LINE, u)
if r and #LANES == 1 then
  if proof ~= '*' and proof ~= 'G' then
    local j = redis.call('HGET', K_TKG, u) or redis.call('ZSCORE', K_LINE, u)
    if proof == '' or tonumber(j) ~= tonumber(proof) then return {'BadTicket'} end
  end
  redis.call('HSET', K_LS, u, ARGV[2])
  if cs ~= '' then redis.call('HSET', K_CS, u, cs) end
  return {'Queued', r + 1, redis.call('ZCARD', K_LINE)}
end
--[[helpers]]
local now = tonumber(ARGV[2])
local li = r and 1
if not li then
  for i = 2, #LANES do
    r = redis.call('ZRANK', LANES[i], u)
    if r then li = i break end
  end
end
if li then
  if not proof_ok(u, proof) then return {'BadTicket'} end
  redis.call('HSET', K_LS, u, now)
  if cs ~= '' then redis.call('HSET', K_CS, u, cs) end
  return {'Queued', lane_position(li, r, ARGV[5]), line_length(), '', '', '', '', lane_name(li)}
end
-- not queued: a last-seen the pipelined poll (lastseen.go) wrote before it knew goes
redis.call('HDEL', K_LS, u)
local st = holder_state(u)
if st then
  if not proof_ok(u, proof) then return {'BadTicket'} end
  if cs ~= '' then redis.call('HSET', K_CS, u, cs) end
  local out = holder_status(u, st, '')
  if #LANES > 1 then
    out[7] = ''
    out[8] = redis.call('HGET', K_HOLD, 'l:' .. u) or 'default'
  end
  return out
end
return gone_status(u, now)
`)

// expireScript ends a holder whose reconnect window has passed before Reap got to it, with
// the reason Reap would give: Ready past its ready deadline never_started, Active past its
// heartbeat deadline heartbeat_timeout. Anyone else is left alone, so a late /start can end
// only a session that is really over, never one a concurrent call of the same user is
// re-attaching (Admitting) or has just re-attached (a fresh deadline).
// ARGV: user, now. Reply: 1 when it moved the user to Releasing, else 0.
var expireScript = newScript("expire", `
local u, now = ARGV[1], tonumber(ARGV[2])
local st = holder_state(u)
local reason
if st == 'Ready' then reason = 'never_started' elseif st == 'Active' then reason = 'heartbeat_timeout' else return 0 end
local d = redis.call('ZSCORE', state_zset(st), u)
if d and tonumber(d) > now then return 0 end
to_releasing(u, st, reason, now)
return 1
`)

// stopScript removes a queued user (gone, stopped) or moves a holder to Releasing, when the
// proof names the user's current join; an operator's kick is the same with reason kicked.
// ARGV: user, now, goneRetention, proof, reason (stopped when absent). Reply: the state
// before, or BadTicket.
var stopScript = newScript("stop", `
local u, now, ret, proof = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3]), ARGV[4]
local reason = ARGV[5] or 'stopped'
local li, score = find_lane(u)
if li then
  if not proof_ok(u, proof) then return 'BadTicket' end
  leave_line(u)
  set_gone(u, reason, now, ret)
  count_left(reason)
  write_record(u, reason, now, score, lane_name(li))
  return 'Queued'
end
local st = holder_state(u)
if not st then return '' end
if not proof_ok(u, proof) then return 'BadTicket' end
if st ~= 'Releasing' then to_releasing(u, st, reason, now) end
return st
`)

// Join puts the user at the back of the line or, if it is already queued or holding, keeps
// its place and refreshes its client (when c.Session is set) and last-seen: a repeated /start
// must never cost a user its place. Status.Client is the client now stored, the one admission
// will use. One round trip.
//
// p decides what Join may do to a user it already knows: with the proof of its current
// join (or Trusted) it refreshes as above; with Granted it also re-issues the join id
// (Status.JoinID is the new one: earlier tickets stop working); Unproven, or a stale ticket,
// changes nothing and answers the state and place only (no ServerSession, no client, an empty
// JoinID). A new user needs no proof.
func (q *Queue) Join(ctx context.Context, userID string, c Client, p Proof) (Status, error) {
	return q.JoinETA(ctx, userID, c, p, 0)
}

// JoinETA is Join that also stores, for a new user, the first ETA it is told: perPlace for
// each position ahead (0: none). The queue compares it with the user's actual wait when it is
// admitted (Stats.ETAErrorPct) and in the user's record. A grant's lane (GrantedIn) puts a new
// user in that lane and moves a queued one there; before a scheduled opening a new user gets
// its shuffle key instead (score.go).
func (q *Queue) JoinETA(ctx context.Context, userID string, c Client, p Proof, perPlace time.Duration) (Status, error) {
	pre := ""
	if q.beforeOpening() {
		pre = strconv.FormatInt(cohortKey(q.opts.ShuffleSeed, userID), 10)
	}
	return q.statusCall(ctx, joinScript, userID, c, p, q.laneIndex(p.lane), pre, etaArg(perPlace), q.cycle)
}

// Poll returns the user's status, touching last-seen (a queued user who stops polling is
// reaped as idle) and refreshing its client when c.Session is set. Status.Client stays empty:
// polls are the hot path and need not carry the ClientSession back. One round trip.
//
// A known user whose current join p does not name gets ErrBadTicket, and nothing changes.
//
// The common poll, a queued user of a queue without lanes showing its ticket and no new
// client, is a pipeline of plain commands sent with other polls in flight (pipeline.go,
// lastseen.go); everyone else, and anyone that pipeline does not find in line, takes the script.
func (q *Queue) Poll(ctx context.Context, userID string, c Client, p Proof) (Status, error) {
	if len(q.laneKeys) == 0 && c.Session == "" && checkUser(userID) == nil {
		if proof, err := strconv.ParseFloat(p.arg, 64); err == nil {
			st, ok, err := q.pollPipelined(ctx, userID, proof)
			if err != nil {
				return Status{}, fmt.Errorf("poll %s: %w", userID, err)
			}
			if ok {
				return st, nil
			}
		}
	}
	return q.statusCall(ctx, pollScript, userID, c, p, q.cycle)
}

func (q *Queue) statusCall(ctx context.Context, sc *script, userID string, c Client, p Proof, more ...any) (Status, error) {
	if err := checkUser(userID); err != nil {
		return Status{}, fmt.Errorf("%s: %w", sc.name, err)
	}
	if err := checkClient(c); err != nil {
		return Status{}, fmt.Errorf("%s %s: %w", sc.name, userID, err)
	}
	args := append([]any{userID, q.nowMS(), encodeClient(c), p.arg}, more...)
	v, err := q.run(ctx, sc, args...)
	var st Status
	if err == nil {
		st, err = replyStatus(v)
	}
	if err != nil {
		return Status{}, fmt.Errorf("%s %s: %w", sc.name, userID, err)
	}
	return st, nil
}

// Expire ends a holder (Ready or Active) whose deadline has passed, as Reap would, and
// reports whether it did. It is what a late return calls instead of Stop: between its failed
// Reattach and this call a concurrent call of the same user may have re-attached, and then
// nothing must end. The user is Releasing afterwards (its CAR session still to destroy).
func (q *Queue) Expire(ctx context.Context, userID string) (bool, error) {
	if err := checkUser(userID); err != nil {
		return false, fmt.Errorf("expire: %w", err)
	}
	v, err := q.run(ctx, expireScript, userID, q.nowMS())
	if err != nil {
		return false, fmt.Errorf("expire %s: %w", userID, err)
	}
	return replyInt(v) == 1, nil
}

// Stop removes a queued user at once, or moves a holder to Releasing (it keeps its slot until
// CAR confirms DestroySession). It returns the state before, so the caller knows whether a
// CAR session may need destroying. Stopping twice is fine: the second call returns
// StateReleasing (still leaving) or StateNone (gone). A known user whose current join p does
// not name gets ErrBadTicket, and nothing changes.
func (q *Queue) Stop(ctx context.Context, userID string, p Proof) (State, error) {
	if err := checkUser(userID); err != nil {
		return StateNone, fmt.Errorf("stop: %w", err)
	}
	v, err := q.run(ctx, stopScript, userID, q.nowMS(), ms(q.opts.GoneRetention), p.arg)
	if err == nil && replyString(v) == "BadTicket" {
		err = ErrBadTicket
	}
	if err != nil {
		return StateNone, fmt.Errorf("stop %s: %w", userID, err)
	}
	return State(replyString(v)), nil
}
