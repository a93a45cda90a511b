local K_HOLD = KEYS[1]
local K_LEASE = KEYS[2]
local K_RDY = KEYS[3]
local K_CNT = KEYS[4]
local K_RATE = KEYS[5]

local function holder_state(u)
  return redis.call('HGET', K_HOLD, 's:' .. u)
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
end
return 1
