local K_LINE = KEYS[1]
local K_SEEN = KEYS[2]
local K_CS = KEYS[3]
local K_SEQ = KEYS[4]
local K_HOLD = KEYS[5]
local K_GONE = KEYS[6]
local K_GR = KEYS[7]
local K_TKG = KEYS[8]

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
local function holder_status(u, st, cs)
  local ss = ''
  if st == 'Ready' or st == 'Active' then ss = redis.call('HGET', K_HOLD, 'ss:' .. u) or '' end
  return {st, 0, 0, ss, cs, ''}
end

local u, now, cs, proof = ARGV[1], tonumber(ARGV[2]), ARGV[3], ARGV[4]
local function reissue()
  if proof ~= 'G' then return join_id(u) end
  local j = redis.call('INCR', K_SEQ)
  redis.call('HSET', K_TKG, u, j)
  return j
end
local r = redis.call('ZRANK', K_LINE, u)
local jid
if not r then
  local st = holder_state(u)
  if st then
    if not proof_ok(u, proof) then return {st, 0, 0, '', '', '', ''} end
    jid = reissue()
    if cs ~= '' then redis.call('HSET', K_CS, u, cs) else cs = redis.call('HGET', K_CS, u) or '' end
    local out = holder_status(u, st, cs)
    out[7] = jid
    return out
  end
  local seq = redis.call('INCR', K_SEQ)
  redis.call('ZADD', K_LINE, seq, u)
  redis.call('ZREM', K_GONE, u)
  redis.call('HDEL', K_GR, u)
  redis.call('HDEL', K_TKG, u)
  r = redis.call('ZCARD', K_LINE) - 1
  jid = seq
else
  if not proof_ok(u, proof) then return {'Queued', r + 1, redis.call('ZCARD', K_LINE), '', '', '', ''} end
  jid = reissue()
end
redis.call('ZADD', K_SEEN, now, u)
if cs ~= '' then redis.call('HSET', K_CS, u, cs) else cs = redis.call('HGET', K_CS, u) or '' end
return {'Queued', r + 1, redis.call('ZCARD', K_LINE), '', cs, '', jid}
