local K_LINE = KEYS[1]
local K_HOLD = KEYS[2]
local K_LEASE = KEYS[3]
local K_RDY = KEYS[4]
local K_ACT = KEYS[5]
local K_REL = KEYS[6]
local K_ST = KEYS[7]
local K_LS = KEYS[8]
local LANES = {K_LINE}
for i = 9, #KEYS do LANES[#LANES + 1] = KEYS[i] end

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
local function drop_holder(u)
  redis.call('HDEL', K_HOLD, 's:' .. u, 't:' .. u, 'q:' .. u, 'ss:' .. u, 'r:' .. u, 'd:' .. u, 'y:' .. u, 'a:' .. u, 'l:' .. u, 'ad:' .. u)
  redis.call('ZREM', K_ST, u)
end
local function lane_name(i)
  if i == 1 then return 'default' end
  return string.sub(LANES[i], #K_LINE + 2)
end
local function lane_key(name)
  if name and name ~= '' then
    for i = 2, #LANES do
      if lane_name(i) == name then return LANES[i] end
    end
  end
  return K_LINE
end
local function unclaim(u, now)
  redis.call('ZREM', K_LEASE, u)
  local prev = redis.call('HGET', K_HOLD, 'r:' .. u)
  if prev then
    local d = redis.call('HGET', K_HOLD, 'd:' .. u)
    redis.call('HDEL', K_HOLD, 't:' .. u, 'r:' .. u, 'd:' .. u)
    redis.call('HSET', K_HOLD, 's:' .. u, prev)
    redis.call('ZADD', state_zset(prev), d, u)
  else
    local seq = redis.call('HGET', K_HOLD, 'q:' .. u)
    local lane = lane_key(redis.call('HGET', K_HOLD, 'l:' .. u))
    drop_holder(u)
    redis.call('ZADD', lane, seq, u)
    redis.call('HSET', K_LS, u, now)
  end
end

local u, tok, now = ARGV[1], ARGV[2], tonumber(ARGV[3])
if holder_state(u) ~= 'Admitting' or redis.call('HGET', K_HOLD, 't:' .. u) ~= tok then return 0 end
unclaim(u, now)
return 1
