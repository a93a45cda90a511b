local K_CFG = KEYS[1]
local K_REC = KEYS[2]

local id, old = ARGV[1], redis.call('HGET', K_CFG, 'whid') or '-'
local r = redis.call('XRANGE', K_REC, old, id)
local n = #r
if n > 0 and r[1][1] == old then n = n - 1 end
redis.call('HDEL', K_CFG, 'whfail', 'whnext')
if n <= 0 then return 0 end
redis.call('HSET', K_CFG, 'whid', id)
redis.call('HINCRBY', K_CFG, 'whn', n)
return n
