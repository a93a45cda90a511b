local K_LINE = KEYS[1]
local K_CS = KEYS[2]
local K_HOLD = KEYS[3]
local K_GONE = KEYS[4]
local K_GR = KEYS[5]
local K_TKG = KEYS[6]
local K_CFG = KEYS[7]
local K_LS = KEYS[8]
local LANES = {K_LINE}
for i = 9, #KEYS do LANES[#LANES + 1] = KEYS[i] end

local u, cs, proof = ARGV[1], ARGV[3], ARGV[4]
local r = redis.call('ZRANK', K_LINE, u)
if r and #LANES == 1 then
  if proof ~= '*' and proof ~= 'G' then
    local j = redis.call('HGET', K_TKG, u) or redis.call('ZSCORE', K_LINE, u)
    if proof == '' or tonumber(j) ~= tonumber(proof) then return {'BadTicket'} end
  end
  redis.call('HSET', K_LS, u, ARGV[2])
  if cs ~= '' then redis.call('HSET', K_CS, u, cs) end
  return {'Queued', r + 1, redis.call('ZCARD', K_LINE)}
end

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
local li = r and 1
if not li then
  for i = 2, #LANES do
    r = redis.call('ZRANK', LANES[i], u)
    if r then li = i break end
  end
end
if li then
  if not proof_ok(u, proof) then return {'BadTicket'} end
  redis.call('HSET', K_LS, u, now)
  if cs ~= '' then redis.call('HSET', K_CS, u, cs) end
  return {'Queued', lane_position(li, r, ARGV[5]), line_length(), '', '', '', '', lane_name(li)}
end
-- not queued: a last-seen the pipelined poll (lastseen.go) wrote before it knew goes
redis.call('HDEL', K_LS, u)
local st = holder_state(u)
if st then
  if not proof_ok(u, proof) then return {'BadTicket'} end
  if cs ~= '' then redis.call('HSET', K_CS, u, cs) end
  local out = holder_status(u, st, '')
  if #LANES > 1 then
    out[7] = ''
    out[8] = redis.call('HGET', K_HOLD, 'l:' .. u) or 'default'
  end
  return out
end
return gone_status(u, now)
