local K_CS = KEYS[1]
local K_HOLD = KEYS[2]
local K_REL = KEYS[3]
local K_GONE = KEYS[4]
local K_GR = KEYS[5]
local K_TKG = KEYS[6]
local K_ST = KEYS[7]

local function holder_state(u)
  return redis.call('HGET', K_HOLD, 's:' .. u)
end
local function drop_holder(u)
  redis.call('HDEL', K_HOLD, 's:' .. u, 't:' .. u, 'q:' .. u, 'ss:' .. u, 'r:' .. u, 'd:' .. u, 'y:' .. u, 'a:' .. u, 'l:' .. u, 'ad:' .. u)
  redis.call('ZREM', K_ST, u)
end
local function set_gone(u, reason, now, retention)
  redis.call('ZADD', K_GONE, now + retention, u)
  redis.call('HSET', K_GR, u, reason)
  redis.call('HDEL', K_TKG, u)
end

local u, now, ret = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3])
if holder_state(u) ~= 'Releasing' then return 0 end
local reason = redis.call('HGET', K_HOLD, 'y:' .. u) or 'stopped'
redis.call('ZREM', K_REL, u)
drop_holder(u)
redis.call('HDEL', K_CS, u)
set_gone(u, reason, now, ret)
return 1
