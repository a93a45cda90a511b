local K_CS = KEYS[1]
local K_HOLD = KEYS[2]
local K_LEASE = KEYS[3]
local K_RDY = KEYS[4]
local K_ACT = KEYS[5]
local K_REL = KEYS[6]
local K_GONE = KEYS[7]
local K_GR = KEYS[8]
local K_CNT = KEYS[9]
local K_TKG = KEYS[10]
local K_REC = KEYS[11]
local K_JT = KEYS[12]
local K_ST = KEYS[13]
local K_HIST = KEYS[14]

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
local function drop_holder(u)
  redis.call('HDEL', K_HOLD, 's:' .. u, 't:' .. u, 'q:' .. u, 'ss:' .. u, 'r:' .. u, 'd:' .. u, 'y:' .. u, 'a:' .. u, 'l:' .. u, 'ad:' .. u)
  redis.call('ZREM', K_ST, u)
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
local function set_gone(u, reason, now, retention)
  redis.call('ZADD', K_GONE, now + retention, u)
  redis.call('HSET', K_GR, u, reason)
  redis.call('HDEL', K_TKG, u)
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
