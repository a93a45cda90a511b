local K_REAPER = KEYS[1]
local K_UP = KEYS[2]

local now = tonumber(ARGV[2])
local v = redis.call('GET', K_REAPER)
if v then
  local exp = tonumber(string.match(v, '^(%d+):'))
  if exp and exp > now then return 0 end
end
redis.call('SET', K_REAPER, ARGV[1], 'PX', ARGV[3])
local grace = tonumber(ARGV[4])
local hold = tonumber(redis.call('HGET', K_UP, 'hold')) or 0
if grace > 0 then
  local seen = tonumber(redis.call('HGET', K_UP, 'seen'))
  if seen and now - seen > grace then
    hold = math.max(hold, now + tonumber(ARGV[5]))
    redis.call('HSET', K_UP, 'hold', hold)
    redis.call('HINCRBY', K_UP, 'outages', 1)
  end
  redis.call('HSET', K_UP, 'seen', now)
end
return {1, hold}
