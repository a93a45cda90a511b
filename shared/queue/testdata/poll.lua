local K_LINE = KEYS[1]
local K_SEEN = KEYS[2]
local K_CS = KEYS[3]
local K_HOLD = KEYS[4]
local K_GONE = KEYS[5]
local K_GR = KEYS[6]
local K_TKG = KEYS[7]

local u, cs, proof = ARGV[1], ARGV[3], ARGV[4]
local r = redis.call('ZRANK', K_LINE, u)
if r then
  if proof ~= '*' and proof ~= 'G' then
    local j = redis.call('HGET', K_TKG, u) or redis.call('ZSCORE', K_LINE, u)
    if proof == '' or tonumber(j) ~= tonumber(proof) then return {'BadTicket'} end
  end
  redis.call('ZADD', K_SEEN, ARGV[2], u)
  if cs ~= '' then redis.call('HSET', K_CS, u, cs) end
  return {'Queued', r + 1, redis.call('ZCARD', K_LINE)}
end

local function holder_state(u)
  return redis.call('HGET', K_HOLD, 's:' .. u)
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
local function gone_status(u, now)
  local exp = redis.call('ZSCORE', K_GONE, u)
  if exp and tonumber(exp) > now then
    return {'', 0, 0, '', '', redis.call('HGET', K_GR, u) or ''}
  end
  return {'', 0, 0, '', '', ''}
end
local function holder_status(u, st, cs)
  local ss = ''
  if st == 'Ready' or st == 'Active' then ss = redis.call('HGET', K_HOLD, 'ss:' .. u) or '' end
  return {st, 0, 0, ss, cs, ''}
end

local now = tonumber(ARGV[2])
local st = holder_state(u)
if st then
  if not proof_ok(u, proof) then return {'BadTicket'} end
  if cs ~= '' then redis.call('HSET', K_CS, u, cs) end
  return holder_status(u, st, '')
end
return gone_status(u, now)
