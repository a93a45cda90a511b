local K_LINE = KEYS[1]
local K_HOLD = KEYS[2]
local K_RDY = KEYS[3]
local K_ACT = KEYS[4]
local K_GONE = KEYS[5]
local K_GR = KEYS[6]
local K_TKG = KEYS[7]
local K_CFG = KEYS[8]
local K_ST = KEYS[9]
local LANES = {K_LINE}
for i = 10, #KEYS do LANES[#LANES + 1] = KEYS[i] end

local u, deadline, proof, started = ARGV[1], ARGV[3], ARGV[4], ARGV[5] == '1'
if proof ~= '*' and proof ~= 'G' then
  local j = redis.call('HGET', K_TKG, u) or redis.call('HGET', K_HOLD, 'q:' .. u)
  if not j then
    for i = 1, #LANES do
      j = redis.call('ZSCORE', LANES[i], u)
      if j then break end
    end
  end
  if j and (proof == '' or tonumber(j) ~= tonumber(proof)) then return {'BadTicket'} end
end
if redis.call('ZADD', K_ACT, 'XX', 'CH', deadline, u) == 1 then
  if started then return {'Active', 0, 0, '', '', '', '', '', redis.call('ZSCORE', K_ST, u) or ''} end
  return {'Active'}
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
  redis.call('ZADD', K_ST, 'NX', now, u)
  st = 'Active'
end
if st == 'Active' then redis.call('ZADD', K_ACT, deadline, u) end
if st then
  if started then return {st, 0, 0, '', '', '', '', '', redis.call('ZSCORE', K_ST, u) or ''} end
  return {st}
end
local li, _ = find_lane(u)
if li then
  local r = redis.call('ZRANK', LANES[li], u)
  return {'Queued', lane_position(li, r, ARGV[6]), line_length(), '', '', '', '', lane_name(li)}
end
return gone_status(u, now)
