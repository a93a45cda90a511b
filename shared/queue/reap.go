package queue

import (
	"context"
	"fmt"
)

// reapScript handles up to batch stale users of each kind, so a batch costs O(batch · log N)
// whatever the queue size: queued users idle since idleCutoff, found by a step of the
// last-seen sweep (gone, idle; handled with variadic commands, since a whole batch of them may
// go at once); and, each found with ZRANGEBYSCORE … LIMIT on a deadline-ordered set, Ready users past their ready deadline
// (Releasing, never_started); Active users past their heartbeat deadline (Releasing,
// heartbeat_timeout); expired claim leases (back to the front, or a reattach back to its
// state); and up to 2·batch forgotten departures.
// Active users whose session reached MaxSession (Releasing, time_limit); a record for everyone
// who left. Then upkeep: the records trimmed to RecordsMax, the join checkpoints to a day,
// this minute's queue length and slots held sampled into the history, minutes older than a
// day dropped from it.
// ARGV: now, batch, idleCutoff, goneRetention, maxSessionMs (0: no cap), recordsMax, the
// sweep's cursor and start (sweepStep), then the sweep step's candidates.
// Reply: {idle, neverStarted, heartbeatTimeout, expiredClaims, more, timeLimit, releasingUser...}.
var reapScript = newScript("reap", `
local now, batch, cutoff, ret = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4])
local maxs, recmax = tonumber(ARGV[5]), tonumber(ARGV[6])
local out = {0, 0, 0, 0, 0, 0}
-- idle: the candidates of a step of the last-seen sweep (lastseen.go; the HSCAN is the
-- caller's), each dropped if still unseen since cutoff and queued; an entry of a user who is
-- not queued is removed. The sweep's state: ARGV[7] the cursor to keep ('-': the sweep is
-- through, '': no step), ARGV[8] when a sweep started ('': unchanged). Then the last-seen zset
-- of an earlier version is drained: an entry there is idle unless ls has seen the user since.
local idle, where = {}, {}
if ARGV[8] ~= '' then redis.call('HSET', K_CFG, 'lss', ARGV[8]) end
if ARGV[7] == '-' then
  redis.call('HDEL', K_CFG, 'lsc')
elseif ARGV[7] ~= '' then
  redis.call('HSET', K_CFG, 'lsc', ARGV[7])
  out[5] = 1
end
for i = 9, #ARGV do
  local u = ARGV[i]
  local t = tonumber(redis.call('HGET', K_LS, u) or '')
  if t and t <= cutoff and #idle < batch then
    local li, score = find_lane(u)
    if li then
      idle[#idle + 1] = u
      where[u] = {li, score}
    else
      redis.call('HDEL', K_LS, u)
    end
  end
end
if #idle < batch then
  local old = redis.call('ZRANGEBYSCORE', K_SEEN, '-inf', cutoff, 'LIMIT', 0, batch - #idle)
  bulk('ZREM', K_SEEN, old)
  for _, u in ipairs(old) do
    local t = tonumber(redis.call('HGET', K_LS, u) or '0')
    local li, score = find_lane(u)
    if t <= cutoff and li and not where[u] then
      idle[#idle + 1] = u
      where[u] = {li, score}
    end
  end
  if #old > 0 and #idle == batch then out[5] = 1 end
end
if #idle > 0 then
  local gone, reasons = {}, {}
  for i, u in ipairs(idle) do
    gone[2 * i - 1] = now + ret
    gone[2 * i] = u
    reasons[2 * i - 1] = u
    reasons[2 * i] = 'idle'
    write_record(u, 'idle', now, where[u][2], lane_name(where[u][1]), nil, nil, true)
  end
  count_records(#idle, now)
  for i = 1, #LANES do bulk('ZREM', LANES[i], idle) end
  bulk('HDEL', K_LS, idle)
  bulk('HDEL', K_CS, idle)
  bulk('HDEL', K_TKG, idle)
  bulk('ZADD', K_GONE, gone)
  bulk('HSET', K_GR, reasons)
  redis.call('HINCRBY', K_CNT, 'left:idle', #idle)
end
local rdy = redis.call('ZRANGEBYSCORE', K_RDY, '-inf', now, 'LIMIT', 0, batch)
for _, u in ipairs(rdy) do
  to_releasing(u, 'Ready', 'never_started', now)
  out[#out + 1] = u
end
local act = redis.call('ZRANGEBYSCORE', K_ACT, '-inf', now, 'LIMIT', 0, batch)
for _, u in ipairs(act) do
  to_releasing(u, 'Active', 'heartbeat_timeout', now)
  out[#out + 1] = u
end
local lease = redis.call('ZRANGEBYSCORE', K_LEASE, '-inf', now, 'LIMIT', 0, batch)
for _, u in ipairs(lease) do
  unclaim(u, now)
end
local lim = {}
if maxs > 0 then
  local over = redis.call('ZRANGEBYSCORE', K_ST, '-inf', now - maxs, 'LIMIT', 0, batch)
  for _, u in ipairs(over) do
    if holder_state(u) == 'Active' then
      to_releasing(u, 'Active', 'time_limit', now)
      lim[#lim + 1] = u
      out[#out + 1] = u
    end
  end
end
local gone = redis.call('ZRANGEBYSCORE', K_GONE, '-inf', now, 'LIMIT', 0, 2 * batch)
bulk('ZREM', K_GONE, gone)
bulk('HDEL', K_GR, gone)
redis.call('XTRIM', K_REC, 'MAXLEN', '~', recmax)
redis.call('ZREMRANGEBYRANK', K_JT, 0, -86402)
local m = math.floor(now / 60000)
redis.call('HSET', K_HIST, m .. ':q', line_length(), m .. ':h', held())
local lo = tonumber(redis.call('HGET', K_CFG, 'histlo') or m)
if lo <= m - 1440 then
  local upto = math.min(m - 1440, lo + 60)
  for x = lo, upto do redis.call('HDEL', K_HIST, x .. ':a', x .. ':l', x .. ':q', x .. ':h') end
  lo = upto + 1
end
redis.call('HSET', K_CFG, 'histlo', lo)
out[1], out[2], out[3], out[4], out[6] = #idle, #rdy, #act, #lease, #lim
if #idle == batch or #rdy == batch or #act == batch or #lease == batch or #lim == batch then out[5] = 1 end
return out
`)

// Reap handles up to batch stale users of each kind (idle queued users, Ready and Active
// users past their deadline, expired claim leases, forgotten departures) in O(batch · log N),
// so the reaper can sweep a million-user queue without blocking Redis: batch 50 costs about
// 0.5 ms of Redis time (BENCHMARKS.md). More says to call again.
func (q *Queue) Reap(ctx context.Context, batch int) (ReapResult, error) {
	if batch <= 0 || batch > MaxBatch {
		return ReapResult{}, fmt.Errorf("reap: batch %d must be 1-%d: %w", batch, MaxBatch, ErrInvalid)
	}
	now := q.nowMS()
	cutoff := now - ms(q.opts.QueueIdleTimeout)
	step, err := q.sweepStep(ctx, now, cutoff, batch)
	if err != nil {
		return ReapResult{}, fmt.Errorf("reap %d: %w", batch, err)
	}
	args := append([]any{now, batch, cutoff, ms(q.opts.GoneRetention), ms(q.opts.MaxSession), q.opts.RecordsMax,
		step.cursor, step.started}, step.candidates...)
	v, err := q.run(ctx, reapScript, args...)
	var a []any
	if err == nil {
		a, err = replySlice(v, 6)
	}
	if err != nil {
		return ReapResult{}, fmt.Errorf("reap %d: %w", batch, err)
	}
	res := ReapResult{Dropped: map[Reason]int{}, ExpiredClaims: int(replyInt(a[3])), More: replyInt(a[4]) == 1}
	for i, r := range []Reason{ReasonIdle, ReasonNeverStarted, ReasonHeartbeatTimeout} {
		if n := int(replyInt(a[i])); n > 0 {
			res.Dropped[r] = n
		}
	}
	if n := int(replyInt(a[5])); n > 0 {
		res.Dropped[ReasonTimeLimit] = n
	}
	for _, u := range a[6:] {
		res.Releasing = append(res.Releasing, replyString(u))
	}
	return res, nil
}
