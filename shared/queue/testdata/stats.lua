local K_LINE = KEYS[1]
local K_LEASE = KEYS[2]
local K_RDY = KEYS[3]
local K_ACT = KEYS[4]
local K_REL = KEYS[5]
local K_CNT = KEYS[6]
local K_RATE = KEYS[7]
local K_CFG = KEYS[8]
local K_UP = KEYS[9]
local K_REC = KEYS[10]
local LANES = {K_LINE}
for i = 11, #KEYS do LANES[#LANES + 1] = KEYS[i] end

local function lane_name(i)
  if i == 1 then return 'default' end
  return string.sub(LANES[i], #K_LINE + 2)
end
local function line_length()
  local n = 0
  for i = 1, #LANES do n = n + redis.call('ZCARD', LANES[i]) end
  return n
end

local from = '(' .. ARGV[1]
local oldest = redis.call('ZRANGEBYSCORE', K_RATE, from, '+inf', 'WITHSCORES', 'LIMIT', 0, 1)
local out = {line_length(), redis.call('ZCARD', K_LEASE), redis.call('ZCARD', K_RDY),
  redis.call('ZCARD', K_ACT), redis.call('ZCARD', K_REL), redis.call('ZCOUNT', K_RATE, from, '+inf'),
  oldest[2] or '', redis.call('ZCOUNT', K_REL, '(' .. ARGV[2], '+inf'),
  redis.call('HGET', K_CFG, 'cartotal') or '', redis.call('HGET', K_CFG, 'cartotal_at') or '',
  redis.call('HGET', K_UP, 'hold') or ''}
local ctl = redis.call('HMGET', K_CFG, 'paused', 'notice', 'capo', 'whn')
out[#out + 1] = ctl[1] or ''
out[#out + 1] = ctl[2] or ''
out[#out + 1] = ctl[3] or ''
out[#out + 1] = ctl[4] or '0'
out[#out + 1] = redis.call('XLEN', K_REC)
local lanes = {}
if #LANES > 1 then
  for i = 1, #LANES do
    lanes[#lanes + 1] = lane_name(i)
    lanes[#lanes + 1] = redis.call('ZCARD', LANES[i])
  end
end
out[#out + 1] = lanes
for _, x in ipairs(redis.call('HGETALL', K_CNT)) do out[#out + 1] = x end
return out
