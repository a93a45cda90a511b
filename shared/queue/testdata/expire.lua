local K_HOLD = KEYS[1]
local K_LEASE = KEYS[2]
local K_RDY = KEYS[3]
local K_ACT = KEYS[4]
local K_REL = KEYS[5]
local K_CNT = KEYS[6]

local function holder_state(u)
  return redis.call('HGET', K_HOLD, 's:' .. u)
end
local function state_zset(st)
  if st == 'Admitting' then return K_LEASE end
  if st == 'Ready' then return K_RDY end
  if st == 'Active' then return K_ACT end
  if st == 'Releasing' then return K_REL end
  return nil
end
local function count_left(reason)
  redis.call('HINCRBY', K_CNT, 'left:' .. reason, 1)
end
local function to_releasing(u, st, reason, now)
  redis.call('ZREM', state_zset(st), u)
  redis.call('HDEL', K_HOLD, 't:' .. u, 'r:' .. u, 'd:' .. u)
  redis.call('HSET', K_HOLD, 's:' .. u, 'Releasing', 'y:' .. u, reason)
  redis.call('ZADD', K_REL, now, u)
  count_left(reason)
end

local u, now = ARGV[1], tonumber(ARGV[2])
local st = holder_state(u)
local reason
if st == 'Ready' then reason = 'never_started' elseif st == 'Active' then reason = 'heartbeat_timeout' else return 0 end
local d = redis.call('ZSCORE', state_zset(st), u)
if d and tonumber(d) > now then return 0 end
to_releasing(u, st, reason, now)
return 1
