package queue

import (
	"context"
	"fmt"
)

// reapScript handles up to batch stale users of each kind, each found with ZRANGEBYSCORE …
// LIMIT on a deadline-ordered set, so a batch costs O(batch · log N) whatever the queue size:
// queued users idle since idleCutoff (gone, idle; handled with variadic commands, since a
// whole batch of them may go at once); Ready users past their ready deadline
// (Releasing, never_started); Active users past their heartbeat deadline (Releasing,
// heartbeat_timeout); expired claim leases (back to the front, or a reattach back to its
// state); and up to 2·batch forgotten departures.
// ARGV: now, batch, idleCutoff, goneRetention.
// Reply: {idle, neverStarted, heartbeatTimeout, expiredClaims, more, releasingUser...}.
var reapScript = newScript("reap", `
local now, batch, cutoff, ret = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4])
local out = {0, 0, 0, 0, 0}
local idle = redis.call('ZRANGEBYSCORE', K_SEEN, '-inf', cutoff, 'LIMIT', 0, batch)
if #idle > 0 then
  local gone, reasons = {}, {}
  for i, u in ipairs(idle) do
    gone[2 * i - 1] = now + ret
    gone[2 * i] = u
    reasons[2 * i - 1] = u
    reasons[2 * i] = 'idle'
  end
  bulk('ZREM', K_LINE, idle)
  bulk('ZREM', K_SEEN, idle)
  bulk('HDEL', K_CS, idle)
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
local gone = redis.call('ZRANGEBYSCORE', K_GONE, '-inf', now, 'LIMIT', 0, 2 * batch)
bulk('ZREM', K_GONE, gone)
bulk('HDEL', K_GR, gone)
out[1], out[2], out[3], out[4] = #idle, #rdy, #act, #lease
if #idle == batch or #rdy == batch or #act == batch or #lease == batch then out[5] = 1 end
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
	v, err := q.run(ctx, reapScript, now, batch, now-ms(q.opts.QueueIdleTimeout), ms(q.opts.GoneRetention))
	var a []any
	if err == nil {
		a, err = replySlice(v, 5)
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
	for _, u := range a[5:] {
		res.Releasing = append(res.Releasing, replyString(u))
	}
	return res, nil
}
