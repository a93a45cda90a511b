local K_LINE = KEYS[1]
local K_LEASE = KEYS[2]
local K_RDY = KEYS[3]
local K_ACT = KEYS[4]
local K_REL = KEYS[5]
local K_CNT = KEYS[6]
local K_RATE = KEYS[7]
local K_CFG = KEYS[8]
local K_UP = KEYS[9]

local from = '(' .. ARGV[1]
local oldest = redis.call('ZRANGEBYSCORE', K_RATE, from, '+inf', 'WITHSCORES', 'LIMIT', 0, 1)
local out = {redis.call('ZCARD', K_LINE), redis.call('ZCARD', K_LEASE), redis.call('ZCARD', K_RDY),
  redis.call('ZCARD', K_ACT), redis.call('ZCARD', K_REL), redis.call('ZCOUNT', K_RATE, from, '+inf'),
  oldest[2] or '', redis.call('ZCOUNT', K_REL, '(' .. ARGV[2], '+inf'),
  redis.call('HGET', K_CFG, 'cartotal') or '', redis.call('HGET', K_CFG, 'cartotal_at') or '',
  redis.call('HGET', K_UP, 'hold') or ''}
for _, x in ipairs(redis.call('HGETALL', K_CNT)) do out[#out + 1] = x end
return out
