local K_LINE = KEYS[1]
local K_CS = KEYS[2]
local K_HOLD = KEYS[3]
local K_LEASE = KEYS[4]
local K_RDY = KEYS[5]
local K_ACT = KEYS[6]
local K_REL = KEYS[7]
local K_TKG = KEYS[8]
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
local function find_lane(u)
  for i = 1, #LANES do
    local s = redis.call('ZSCORE', LANES[i], u)
    if s then return i, s end
  end
  return nil
end
local function join_id(u)
  local _, score = find_lane(u)
  return redis.call('HGET', K_TKG, u) or score or redis.call('HGET', K_HOLD, 'q:' .. u)
end
local function proof_ok(u, proof)
  if proof == '*' or proof == 'G' then return true end
  if proof == '' then return false end
  local j = join_id(u)
  return j and tonumber(j) == tonumber(proof)
end

local u, now, lease, tok, cs, proof = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3]), ARGV[4], ARGV[5], ARGV[6]
local st = holder_state(u)
if (st or find_lane(u)) and not proof_ok(u, proof) then return {'BadTicket'} end
if st ~= 'Ready' and st ~= 'Active' then return {} end
local z = state_zset(st)
local d = redis.call('ZSCORE', z, u)
if tonumber(d) <= now then return {} end
redis.call('ZREM', z, u)
redis.call('ZADD', K_LEASE, now + lease, u)
redis.call('HSET', K_HOLD, 's:' .. u, 'Admitting', 't:' .. u, tok, 'r:' .. u, st, 'd:' .. u, d)
if cs ~= '' then redis.call('HSET', K_CS, u, cs) else cs = redis.call('HGET', K_CS, u) or '' end
return {u, cs, tok}
