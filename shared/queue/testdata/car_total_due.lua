local K_CFG = KEYS[1]

local now, every = tonumber(ARGV[1]), tonumber(ARGV[2])
local at = tonumber(redis.call('HGET', K_CFG, 'cartotal_at') or '0')
if now - at < every then return 0 end
if tonumber(redis.call('HGET', K_CFG, 'cartotal_claim') or '0') > now then return 0 end
redis.call('HSET', K_CFG, 'cartotal_claim', now + math.floor(every / 2))
return 1
