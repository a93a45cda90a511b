local K_LINE = KEYS[1]
local K_SEEN = KEYS[2]
local K_CS = KEYS[3]
local K_HOLD = KEYS[4]
local K_LEASE = KEYS[5]
local K_RDY = KEYS[6]
local K_ACT = KEYS[7]
local K_REL = KEYS[8]
local K_GONE = KEYS[9]
local K_GR = KEYS[10]
local K_CNT = KEYS[11]
local K_TKG = KEYS[12]

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
local function join_id(u)
  return redis.call('HGET', K_TKG, u) or redis.call('ZSCORE', K_LINE, u) or redis.call('HGET', K_HOLD, 'q:' .. u)
end
local function proof_ok(u, proof)
  if proof == '*' or proof == 'G' then return true end
  if proof == '' then return false end
  local j = join_id(u)
  return j and tonumber(j) == tonumber(proof)
end
local function set_gone(u, reason, now, retention)
  redis.call('ZADD', K_GONE, now + retention, u)
  redis.call('HSET', K_GR, u, reason)
  redis.call('HDEL', K_TKG, u)
end
local function count_left(reason)
  redis.call('HINCRBY', K_CNT, 'left:' .. reason, 1)
end
local function leave_line(u)
  redis.call('ZREM', K_LINE, u)
  redis.call('ZREM', K_SEEN, u)
  redis.call('HDEL', K_CS, u)
end
local function to_releasing(u, st, reason, now)
  redis.call('ZREM', state_zset(st), u)
  redis.call('HDEL', K_HOLD, 't:' .. u, 'r:' .. u, 'd:' .. u)
  redis.call('HSET', K_HOLD, 's:' .. u, 'Releasing', 'y:' .. u, reason)
  redis.call('ZADD', K_REL, now, u)
  count_left(reason)
end

local u, now, ret, proof = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3]), ARGV[4]
if redis.call('ZSCORE', K_LINE, u) then
  if not proof_ok(u, proof) then return 'BadTicket' end
  leave_line(u)
  set_gone(u, 'stopped', now, ret)
  count_left('stopped')
  return 'Queued'
end
local st = holder_state(u)
if not st then return '' end
if not proof_ok(u, proof) then return 'BadTicket' end
if st ~= 'Releasing' then to_releasing(u, st, 'stopped', now) end
return st
