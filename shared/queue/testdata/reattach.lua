local K_CS = KEYS[1]
local K_HOLD = KEYS[2]
local K_LEASE = KEYS[3]
local K_RDY = KEYS[4]
local K_ACT = KEYS[5]
local K_REL = KEYS[6]

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

local u, now, lease, tok, cs = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3]), ARGV[4], ARGV[5]
local st = holder_state(u)
if st ~= 'Ready' and st ~= 'Active' then return {} end
local z = state_zset(st)
local d = redis.call('ZSCORE', z, u)
if tonumber(d) <= now then return {} end
redis.call('ZREM', z, u)
redis.call('ZADD', K_LEASE, now + lease, u)
redis.call('HSET', K_HOLD, 's:' .. u, 'Admitting', 't:' .. u, tok, 'r:' .. u, st, 'd:' .. u, d)
if cs ~= '' then redis.call('HSET', K_CS, u, cs) else cs = redis.call('HGET', K_CS, u) or '' end
return {u, cs, tok}
