local K_LINE = KEYS[1]
local K_LEASE = KEYS[2]
local K_RDY = KEYS[3]
local K_ACT = KEYS[4]
local K_REL = KEYS[5]
local K_GONE = KEYS[6]
local K_CFG = KEYS[7]

local function held()
  return redis.call('ZCARD', K_LEASE) + redis.call('ZCARD', K_RDY) + redis.call('ZCARD', K_ACT) + redis.call('ZCARD', K_REL)
end

local now, every = tonumber(ARGV[1]), tonumber(ARGV[2])
local out = 0
if redis.call('ZCARD', K_LINE) + held() > 0 or #redis.call('ZRANGEBYSCORE', K_GONE, '-inf', now, 'LIMIT', 0, 1) > 0 then
  out = 1
end
if every > 0 and now - tonumber(redis.call('HGET', K_CFG, 'cartotal_at') or '0') >= every then
  out = out + 2
end
return out
