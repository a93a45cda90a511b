local K_HOLD = KEYS[1]
local K_LEASE = KEYS[2]
local K_RDY = KEYS[3]
local K_ACT = KEYS[4]
local K_REL = KEYS[5]
local K_CNT = KEYS[6]
local K_REC = KEYS[7]
local K_JT = KEYS[8]
local K_ST = KEYS[9]
local K_HIST = KEYS[10]

local function holder_state(u)
  return redis.call('HGET', K_HOLD, 's:' .. u)
end
local function state_zset(st)
  if st == 'Admitting' then return K_LEASE end
  if st == 'Ready' then return K_RDY end
  if st == 'Active' then return K_ACT end
  if st == 'Releasing' then return K_REL end
  return nil
end
local function decode_score(score)
  score = tonumber(score)
  if score >= 4503599627370496 then
    local x = score - 4503599627370496
    return math.floor(x / 65536), x % 65536
  end
  return score % 134217728, 0
end
local function joined_at(seq)
  local r = redis.call('ZREVRANGEBYSCORE', K_JT, seq, '-inf', 'LIMIT', 0, 1)
  return r[1]
end
local function count_records(n, now)
  redis.call('HINCRBY', K_CNT, 'records', n)
  redis.call('HINCRBY', K_HIST, math.floor(now / 60000) .. ':l', n)
end
local function write_record(u, reason, now, score, lane, adm, started, many)
  local j, k = '', 0
  if score then
    local seq
    seq, k = decode_score(score)
    j = joined_at(seq) or ''
  end
  redis.call('XADD', K_REC, '*', 'u', u, 'l', lane or 'default', 'j', j, 'a', adm or '', 's', started or '', 'e', now, 'y', reason, 'k', k)
  if not many then count_records(1, now) end
end
local function record_holder(u, reason, now)
  write_record(u, reason, now, redis.call('HGET', K_HOLD, 'q:' .. u), redis.call('HGET', K_HOLD, 'l:' .. u),
    redis.call('HGET', K_HOLD, 'ad:' .. u), redis.call('ZSCORE', K_ST, u))
end
local function count_left(reason)
  redis.call('HINCRBY', K_CNT, 'left:' .. reason, 1)
end
local function to_releasing(u, st, reason, now)
  redis.call('ZREM', state_zset(st), u)
  redis.call('HDEL', K_HOLD, 't:' .. u, 'r:' .. u, 'd:' .. u)
  redis.call('HSET', K_HOLD, 's:' .. u, 'Releasing', 'y:' .. u, reason)
  redis.call('ZADD', K_REL, now, u)
  count_left(reason)
  record_holder(u, reason, now)
  redis.call('ZREM', K_ST, u)
end

local u, now = ARGV[1], tonumber(ARGV[2])
local st = holder_state(u)
local reason
if st == 'Ready' then reason = 'never_started' elseif st == 'Active' then reason = 'heartbeat_timeout' else return 0 end
local d = redis.call('ZSCORE', state_zset(st), u)
if d and tonumber(d) > now then return 0 end
to_releasing(u, st, reason, now)
return 1
