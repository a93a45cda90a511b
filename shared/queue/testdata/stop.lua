local K_LINE = KEYS[1]
local K_CS = KEYS[2]
local K_HOLD = KEYS[3]
local K_LEASE = KEYS[4]
local K_RDY = KEYS[5]
local K_ACT = KEYS[6]
local K_REL = KEYS[7]
local K_GONE = KEYS[8]
local K_GR = KEYS[9]
local K_CNT = KEYS[10]
local K_TKG = KEYS[11]
local K_REC = KEYS[12]
local K_JT = KEYS[13]
local K_ST = KEYS[14]
local K_HIST = KEYS[15]
local K_LS = KEYS[16]
local LANES = {K_LINE}
for i = 17, #KEYS do LANES[#LANES + 1] = KEYS[i] end

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
local function lane_name(i)
  if i == 1 then return 'default' end
  return string.sub(LANES[i], #K_LINE + 2)
end
local function decode_score(score)
  score = tonumber(score)
  if score >= 4503599627370496 then
    local x = score - 4503599627370496
    return math.floor(x / 65536), x % 65536
  end
  return score % 134217728, 0
end
local function joined_at(seq)
  local r = redis.call('ZREVRANGEBYSCORE', K_JT, seq, '-inf', 'LIMIT', 0, 1)
  return r[1]
end
local function count_records(n, now)
  redis.call('HINCRBY', K_CNT, 'records', n)
  redis.call('HINCRBY', K_HIST, math.floor(now / 60000) .. ':l', n)
end
local function write_record(u, reason, now, score, lane, adm, started, many)
  local j, k = '', 0
  if score then
    local seq
    seq, k = decode_score(score)
    j = joined_at(seq) or ''
  end
  redis.call('XADD', K_REC, '*', 'u', u, 'l', lane or 'default', 'j', j, 'a', adm or '', 's', started or '', 'e', now, 'y', reason, 'k', k)
  if not many then count_records(1, now) end
end
local function record_holder(u, reason, now)
  write_record(u, reason, now, redis.call('HGET', K_HOLD, 'q:' .. u), redis.call('HGET', K_HOLD, 'l:' .. u),
    redis.call('HGET', K_HOLD, 'ad:' .. u), redis.call('ZSCORE', K_ST, u))
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
local function set_gone(u, reason, now, retention)
  redis.call('ZADD', K_GONE, now + retention, u)
  redis.call('HSET', K_GR, u, reason)
  redis.call('HDEL', K_TKG, u)
end
local function count_left(reason)
  redis.call('HINCRBY', K_CNT, 'left:' .. reason, 1)
end
local function leave_line(u)
  for i = 1, #LANES do redis.call('ZREM', LANES[i], u) end
  redis.call('HDEL', K_LS, u)
  redis.call('HDEL', K_CS, u)
end
local function to_releasing(u, st, reason, now)
  redis.call('ZREM', state_zset(st), u)
  redis.call('HDEL', K_HOLD, 't:' .. u, 'r:' .. u, 'd:' .. u)
  redis.call('HSET', K_HOLD, 's:' .. u, 'Releasing', 'y:' .. u, reason)
  redis.call('ZADD', K_REL, now, u)
  count_left(reason)
  record_holder(u, reason, now)
  redis.call('ZREM', K_ST, u)
end

local u, now, ret, proof = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3]), ARGV[4]
local reason = ARGV[5] or 'stopped'
local li, score = find_lane(u)
if li then
  if not proof_ok(u, proof) then return 'BadTicket' end
  leave_line(u)
  set_gone(u, reason, now, ret)
  count_left(reason)
  write_record(u, reason, now, score, lane_name(li))
  return 'Queued'
end
local st = holder_state(u)
if not st then return '' end
if not proof_ok(u, proof) then return 'BadTicket' end
if st ~= 'Releasing' then to_releasing(u, st, reason, now) end
return st
