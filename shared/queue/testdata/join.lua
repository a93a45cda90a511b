local K_LINE = KEYS[1]
local K_CS = KEYS[2]
local K_SEQ = KEYS[3]
local K_HOLD = KEYS[4]
local K_GONE = KEYS[5]
local K_GR = KEYS[6]
local K_TKG = KEYS[7]
local K_CFG = KEYS[8]
local K_JT = KEYS[9]
local K_LS = KEYS[10]
local LANES = {K_LINE}
for i = 11, #KEYS do LANES[#LANES + 1] = KEYS[i] end

local function holder_state(u)
  return redis.call('HGET', K_HOLD, 's:' .. u)
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
local function line_length()
  local n = 0
  for i = 1, #LANES do n = n + redis.call('ZCARD', LANES[i]) end
  return n
end
local function lane_position(li, r, cycle)
  if #LANES == 1 then return r + 1 end
  local w, p = #cycle, tonumber(redis.call('HGET', K_CFG, 'lanep') or '0') % #cycle
  local per, offs = {}, {}
  for o = 0, w - 1 do
    local l = string.byte(cycle, (p + o) % w + 1) - 48
    per[l] = (per[l] or 0) + 1
    if l == li then offs[#offs + 1] = o end
  end
  local k, j = math.floor(r / #offs), r % #offs
  local before = {}
  for o = 0, offs[j + 1] - 1 do
    local l = string.byte(cycle, (p + o) % w + 1) - 48
    before[l] = (before[l] or 0) + 1
  end
  local pos = r + 1
  for m = 1, #LANES do
    if m ~= li then
      local t = k * (per[m] or 0) + (before[m] or 0)
      if t > 0 then pos = pos + math.min(t, redis.call('ZCARD', LANES[m])) end
    end
  end
  return pos
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
local function holder_status(u, st, cs)
  local ss = ''
  if st == 'Ready' or st == 'Active' then ss = redis.call('HGET', K_HOLD, 'ss:' .. u) or '' end
  return {st, 0, 0, ss, cs, ''}
end

local u, now, cs, proof = ARGV[1], tonumber(ARGV[2]), ARGV[3], ARGV[4]
local li, pre, per, cycle = tonumber(ARGV[5]), ARGV[6], tonumber(ARGV[7]), ARGV[8]
if li > #LANES then li = 1 end
local function reissue()
  if proof ~= 'G' then return join_id(u) end
  local j = redis.call('INCR', K_SEQ)
  redis.call('HSET', K_TKG, u, j)
  return j
end
local cur, score = find_lane(u)
local jid
if not cur then
  local st = holder_state(u)
  if st then
    local lane = redis.call('HGET', K_HOLD, 'l:' .. u) or 'default'
    if not proof_ok(u, proof) then return {st, 0, 0, '', '', '', '', lane} end
    jid = reissue()
    if cs ~= '' then redis.call('HSET', K_CS, u, cs) else cs = redis.call('HGET', K_CS, u) or '' end
    local out = holder_status(u, st, cs)
    out[7] = jid
    out[8] = lane
    return out
  end
  local seq = redis.call('INCR', K_SEQ)
  if now - tonumber(redis.call('HGET', K_CFG, 'jtl') or '0') >= 1000 then
    redis.call('ZADD', K_JT, seq, now)
    redis.call('HSET', K_CFG, 'jtl', now)
  end
  if pre ~= '' then
    score = tonumber(pre) * 134217728 + seq % 134217728
  else
    local eta = 0
    if per > 0 then
      eta = math.min(65535, math.ceil(lane_position(li, redis.call('ZCARD', LANES[li]), cycle) * per / 1000))
    end
    score = 4503599627370496 + seq * 65536 + eta
  end
  redis.call('ZADD', LANES[li], score, u)
  redis.call('ZREM', K_GONE, u)
  redis.call('HDEL', K_GR, u)
  redis.call('HDEL', K_TKG, u)
  cur, jid = li, score
else
  if not proof_ok(u, proof) then
    return {'Queued', lane_position(cur, redis.call('ZRANK', LANES[cur], u), cycle), line_length(), '', '', '', '', lane_name(cur)}
  end
  jid = reissue()
  if proof == 'G' and li ~= cur then
    redis.call('ZREM', LANES[cur], u)
    redis.call('ZADD', LANES[li], score, u)
    cur = li
  end
end
redis.call('HSET', K_LS, u, now)
if cs ~= '' then redis.call('HSET', K_CS, u, cs) else cs = redis.call('HGET', K_CS, u) or '' end
return {'Queued', lane_position(cur, redis.call('ZRANK', LANES[cur], u), cycle), line_length(), '', cs, '', jid, lane_name(cur)}
