local K_LINE = KEYS[1]
local K_HOLD = KEYS[2]
local K_RDY = KEYS[3]
local K_ACT = KEYS[4]
local K_GONE = KEYS[5]
local K_GR = KEYS[6]
local K_TKG = KEYS[7]

local u, deadline, proof = ARGV[1], ARGV[3], ARGV[4]
if proof ~= '*' and proof ~= 'G' then
  local j = redis.call('HGET', K_TKG, u) or redis.call('HGET', K_HOLD, 'q:' .. u) or redis.call('ZSCORE', K_LINE, u)
  if j and (proof == '' or tonumber(j) ~= tonumber(proof)) then return {'BadTicket'} end
end
if redis.call('ZADD', K_ACT, 'XX', 'CH', deadline, u) == 1 then return {'Active'} end

local function holder_state(u)
  return redis.call('HGET', K_HOLD, 's:' .. u)
end
local function gone_status(u, now)
  local exp = redis.call('ZSCORE', K_GONE, u)
  if exp and tonumber(exp) > now then
    return {'', 0, 0, '', '', redis.call('HGET', K_GR, u) or ''}
  end
  return {'', 0, 0, '', '', ''}
end

local now = tonumber(ARGV[2])
local st = holder_state(u)
if st == 'Ready' then
  redis.call('ZREM', K_RDY, u)
  redis.call('HSET', K_HOLD, 's:' .. u, 'Active')
  st = 'Active'
end
if st == 'Active' then redis.call('ZADD', K_ACT, deadline, u) end
if st then return {st} end
local r = redis.call('ZRANK', K_LINE, u)
if r then return {'Queued', r + 1, redis.call('ZCARD', K_LINE), '', '', ''} end
return gone_status(u, now)
