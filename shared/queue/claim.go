package queue

import (
	"context"
	"fmt"
)

// claimScript takes users while held slots < capacity, following the lanes' admission cycle
// from its pointer (lanes.go; without lanes: the head of the line). Nothing while the
// operator paused admission; the operator's capacity override, when set, replaces the
// configured capacity.
// ARGV: now, capacity (0: CAR's Total as stored in cfg), leaseMs, only ("" = anyone; else
// claim only this user, if it is next), cycle, token1..tokenN (N = most users to take).
// Reply: {user, client, token}...
var claimScript = newScript("claim", `
local now, cap, lease, only, cycle = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3]), ARGV[4], ARGV[5]
local ctl = redis.call('HMGET', K_CFG, 'paused', 'capo', 'cartotal')
if ctl[1] == '1' then return {} end
if ctl[2] then cap = tonumber(ctl[2]) elseif cap == 0 then cap = tonumber(ctl[3] or '0') end
local n = math.min(#ARGV - 5, cap - held())
if n <= 0 then return {} end
local order, take = {}, {}
if #LANES == 1 then
  for i = 1, n do order[i] = 1 end
  take[1] = n
else
  local left, total = {}, 0
  for i = 1, #LANES do
    left[i] = redis.call('ZCARD', LANES[i])
    total = total + left[i]
  end
  local w = #cycle
  local p = tonumber(redis.call('HGET', K_CFG, 'lanep') or '0') % w
  while #order < n and total > 0 do
    local l = string.byte(cycle, p + 1) - 48
    p = (p + 1) % w
    if left[l] > 0 then
      left[l], total = left[l] - 1, total - 1
      take[l] = (take[l] or 0) + 1
      order[#order + 1] = l
    end
  end
  if #order == 0 then return {} end
  if only ~= '' and redis.call('ZRANGE', LANES[order[1]], 0, 0)[1] ~= only then return {} end
  redis.call('HSET', K_CFG, 'lanep', p)
end
local heads = {}
for l, k in pairs(take) do heads[l] = redis.call('ZRANGE', LANES[l], 0, k - 1, 'WITHSCORES') end
local next = {}
local out, k = {}, 5
for _, l in ipairs(order) do
  local i = next[l] or 1
  next[l] = i + 2
  local head = heads[l]
  local u, seq = head[i], head[i + 1]
  if not u then break end
  if only ~= '' and u ~= only then return {} end
  k = k + 1
  local tok = ARGV[k]
  redis.call('ZREM', LANES[l], u)
  redis.call('HDEL', K_LS, u)
  redis.call('ZADD', K_LEASE, now + lease, u)
  redis.call('HSET', K_HOLD, 's:' .. u, 'Admitting', 't:' .. u, tok, 'q:' .. u, seq)
  if l > 1 then redis.call('HSET', K_HOLD, 'l:' .. u, lane_name(l)) end
  out[#out + 1] = u
  out[#out + 1] = redis.call('HGET', K_CS, u) or ''
  out[#out + 1] = tok
end
return out
`)

// reattachScript puts a Ready/Active user whose deadline has not passed back to Admitting on
// its own slot, remembering the state and deadline to return to.
// ARGV: user, now, leaseMs, token, client (encoded; "" keeps the stored one), proof.
// Reply: {user, client, token}, {} or {'BadTicket'} (a known user the proof does not name).
var reattachScript = newScript("reattach", `
local u, now, lease, tok, cs, proof = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3]), ARGV[4], ARGV[5], ARGV[6]
local st = holder_state(u)
if (st or find_lane(u)) and not proof_ok(u, proof) then return {'BadTicket'} end
if st ~= 'Ready' and st ~= 'Active' then return {} end
local z = state_zset(st)
local d = redis.call('ZSCORE', z, u)
if tonumber(d) <= now then return {} end
redis.call('ZREM', z, u)
redis.call('ZADD', K_LEASE, now + lease, u)
redis.call('HSET', K_HOLD, 's:' .. u, 'Admitting', 't:' .. u, tok, 'r:' .. u, st, 'd:' .. u, d)
if cs ~= '' then redis.call('HSET', K_CS, u, cs) else cs = redis.call('HGET', K_CS, u) or '' end
return {u, cs, tok}
`)

// markReadyScript: Admitting → Ready with the ServerSession, if the claim is still current.
// First admissions (not reattaches) count towards AdmittedTotal and the admission rate.
// ARGV: user, token, now, serverSession, readyMs, rateWindowMs. Reply: 1, or 0 if stale.
var markReadyScript = newScript("mark_ready", `
local u, tok, now, ss, ready, win = ARGV[1], ARGV[2], tonumber(ARGV[3]), ARGV[4], tonumber(ARGV[5]), tonumber(ARGV[6])
if holder_state(u) ~= 'Admitting' or redis.call('HGET', K_HOLD, 't:' .. u) ~= tok then return 0 end
local reattach = redis.call('HGET', K_HOLD, 'r:' .. u)
redis.call('ZREM', K_LEASE, u)
redis.call('ZADD', K_RDY, now + ready, u)
redis.call('HDEL', K_HOLD, 't:' .. u, 'r:' .. u, 'd:' .. u)
redis.call('HSET', K_HOLD, 's:' .. u, 'Ready', 'ss:' .. u, ss)
if not reattach then
  local n = redis.call('HINCRBY', K_CNT, 'admitted', 1)
  redis.call('ZADD', K_RATE, now, n)
  redis.call('ZREMRANGEBYSCORE', K_RATE, '-inf', now - win)
  redis.call('HSET', K_HOLD, 'ad:' .. u, now)
  redis.call('HINCRBY', K_HIST, math.floor(now / 60000) .. ':a', 1)
  local seq, eta = decode_score(redis.call('HGET', K_HOLD, 'q:' .. u))
  local j = joined_at(seq)
  if eta > 0 and j then
    local waited = math.max(now - tonumber(j), 1000)
    redis.call('LPUSH', K_ETAERR, now .. ':' .. math.floor(math.abs(eta * 1000 - waited) * 1000 / waited))
    redis.call('LTRIM', K_ETAERR, 0, 999)
  end
end
return 1
`)

// requeueScript gives up a current claim: back to the front of the line, or, for a reattach,
// back to the holding state it had. ARGV: user, token, now. Reply: 1, or 0 if stale.
var requeueScript = newScript("requeue", `
local u, tok, now = ARGV[1], ARGV[2], tonumber(ARGV[3])
if holder_state(u) ~= 'Admitting' or redis.call('HGET', K_HOLD, 't:' .. u) ~= tok then return 0 end
unclaim(u, now)
return 1
`)

// refuseScript ends a current claim CAR refused for good (reason car_refused). If CAR may
// hold a slot (locked, or a reattach, whose old session may still run) the user goes to
// Releasing, else it is gone at once. ARGV: user, token, now, locked (1/0), goneRetention.
// Reply: 1, or 0 if stale.
var refuseScript = newScript("refuse", `
local u, tok, now, locked, ret = ARGV[1], ARGV[2], tonumber(ARGV[3]), ARGV[4], tonumber(ARGV[5])
if holder_state(u) ~= 'Admitting' or redis.call('HGET', K_HOLD, 't:' .. u) ~= tok then return 0 end
if locked == '1' or redis.call('HEXISTS', K_HOLD, 'r:' .. u) == 1 then
  to_releasing(u, 'Admitting', 'car_refused', now)
else
  redis.call('ZREM', K_LEASE, u)
  record_holder(u, 'car_refused', now)
  drop_holder(u)
  redis.call('HDEL', K_CS, u)
  set_gone(u, 'car_refused', now, ret)
  count_left('car_refused')
end
return 1
`)

// Claim takes up to max users from the head of the line while held slots < capacity, each
// under a claim lease of ClaimLease: the reaper admits them, and a run that dies midway leaves
// them to come back to the front when Reap finds the lease expired.
func (q *Queue) Claim(ctx context.Context, max int) ([]Claim, error) {
	if max <= 0 {
		return nil, nil
	}
	if max > MaxClaim {
		return nil, fmt.Errorf("claim: max %d must be at most %d: %w", max, MaxClaim, ErrInvalid)
	}
	out, err := q.claim(ctx, "", max)
	if err != nil {
		return nil, fmt.Errorf("claim %d: %w", max, err)
	}
	return out, nil
}

// ClaimUser claims this user only if it is at the head of the line and a slot is free: a
// user's own /start or /poll admits it at once instead of waiting for the next reaper run.
func (q *Queue) ClaimUser(ctx context.Context, userID string) (Claim, bool, error) {
	if err := checkUser(userID); err != nil {
		return Claim{}, false, fmt.Errorf("claim user: %w", err)
	}
	cs, err := q.claim(ctx, userID, 1)
	if err != nil {
		return Claim{}, false, fmt.Errorf("claim user %s: %w", userID, err)
	}
	if len(cs) == 0 {
		return Claim{}, false, nil
	}
	return cs[0], true, nil
}

func (q *Queue) claim(ctx context.Context, only string, max int) ([]Claim, error) {
	if q.beforeOpening() {
		return nil, nil // nobody is admitted before a scheduled opening
	}
	args := make([]any, 0, 5+max)
	args = append(args, q.nowMS(), q.opts.Capacity, ms(q.opts.ClaimLease), only, q.cycle)
	for range max {
		tok, err := newToken()
		if err != nil {
			return nil, err
		}
		args = append(args, tok)
	}
	v, err := q.run(ctx, claimScript, args...)
	if err != nil {
		return nil, err
	}
	return replyClaims(v, false)
}

// Reattach puts a holder (Ready or Active) whose deadline has not passed back to Admitting on
// its own slot with a fresh claim lease, so a user who reconnects gets a new CAR session
// without queueing again; ok is false otherwise. c refreshes the stored client as Join does.
// The deadline checked is the one of the user's state: the ready deadline for Ready, the
// heartbeat deadline for Active. If the reattach claim's lease runs out, Reap puts the user
// back into that state with that deadline (as Requeue does): its old CAR session may still
// run, and the usual timeouts reap it if it does not.
//
// A known user whose current join p does not name gets ErrBadTicket, and nothing changes.
func (q *Queue) Reattach(ctx context.Context, userID string, c Client, p Proof) (Claim, bool, error) {
	if err := checkUser(userID); err != nil {
		return Claim{}, false, fmt.Errorf("reattach: %w", err)
	}
	fail := func(err error) (Claim, bool, error) {
		return Claim{}, false, fmt.Errorf("reattach %s: %w", userID, err)
	}
	if err := checkClient(c); err != nil {
		return fail(err)
	}
	tok, err := newToken()
	if err != nil {
		return fail(err)
	}
	v, err := q.run(ctx, reattachScript, userID, q.nowMS(), ms(q.opts.ClaimLease), tok, encodeClient(c), p.arg)
	if err != nil {
		return fail(err)
	}
	if a, ok := v.([]any); ok && len(a) == 1 && replyString(a[0]) == "BadTicket" {
		return fail(ErrBadTicket)
	}
	cs, err := replyClaims(v, true)
	if err != nil {
		return fail(err)
	}
	if len(cs) == 0 {
		return Claim{}, false, nil
	}
	return cs[0], true, nil
}

// MarkReady stores the ServerSession CAR created: Admitting → Ready. ErrLeaseLost if the claim
// is no longer the current one (the user was requeued, reaped or claimed again), in which case
// the caller must destroy the session it created. The lease is checked by token only: a claim
// whose lease ran out but that Reap has not yet returned to the line can still finish.
func (q *Queue) MarkReady(ctx context.Context, c Claim, serverSession string) error {
	return q.claimCall(ctx, markReadyScript, c, q.nowMS(), serverSession, ms(q.opts.ReadyTimeout), ms(q.opts.RateWindow))
}

// Requeue gives up an admission after a transient failure: the user returns to its place at
// the front (a reattach returns to its previous holding state and deadline) and the slot is
// free again. ErrLeaseLost if the claim is stale.
func (q *Queue) Requeue(ctx context.Context, c Claim) error {
	return q.claimCall(ctx, requeueScript, c, q.nowMS())
}

// Refuse ends an admission CAR refused for good (reason car_refused). If locked is true CAR
// may hold a slot for the user, so it goes to Releasing; else it is gone at once. A reattach
// claim always goes to Releasing, whatever locked says, because the user's earlier CAR session
// may still hold a slot. ErrLeaseLost if the claim is stale.
func (q *Queue) Refuse(ctx context.Context, c Claim, locked bool) error {
	l := 0
	if locked {
		l = 1
	}
	return q.claimCall(ctx, refuseScript, c, q.nowMS(), l, ms(q.opts.GoneRetention))
}

func (q *Queue) claimCall(ctx context.Context, sc *script, c Claim, args ...any) error {
	if err := checkUser(c.UserID); err != nil {
		return fmt.Errorf("%s: %w", sc.name, err)
	}
	v, err := q.run(ctx, sc, append([]any{c.UserID, c.Token}, args...)...)
	if err == nil && replyInt(v) != 1 {
		err = ErrLeaseLost
	}
	if err != nil {
		return fmt.Errorf("%s %s: %w", sc.name, c.UserID, err)
	}
	return nil
}
