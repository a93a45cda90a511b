local K_CFG = KEYS[1]

local now, base, cap = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local n = redis.call('HINCRBY', K_CFG, 'whfail', 1)
local wait = base * 2 ^ math.min(n - 1, 30)
if wait > cap then wait = cap end
redis.call('HSET', K_CFG, 'whnext', now + wait)
return n
