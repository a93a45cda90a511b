local K_HOLD = KEYS[1]
local K_REL = KEYS[2]

local function holder_state(u)
  return redis.call('HGET', K_HOLD, 's:' .. u)
end

local u, now, base, cap = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4])
if holder_state(u) ~= 'Releasing' then return 0 end
local n = redis.call('HINCRBY', K_HOLD, 'a:' .. u, 1)
local wait = base * 2 ^ math.min(n - 1, 30)
if wait > cap then wait = cap end
redis.call('ZADD', K_REL, 'XX', now + wait, u)
return n
