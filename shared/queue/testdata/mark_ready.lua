local K_HOLD = KEYS[1]
local K_LEASE = KEYS[2]
local K_RDY = KEYS[3]
local K_CNT = KEYS[4]
local K_RATE = KEYS[5]
local K_JT = KEYS[6]
local K_HIST = KEYS[7]
local K_ETAERR = KEYS[8]

local function holder_state(u)
  return redis.call('HGET', K_HOLD, 's:' .. u)
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
