local K_LINE = KEYS[1]
local K_CS = KEYS[2]
local K_HOLD = KEYS[3]
local K_LEASE = KEYS[4]
local K_RDY = KEYS[5]
local K_ACT = KEYS[6]
local K_REL = KEYS[7]
local K_CFG = KEYS[8]
local K_LS = KEYS[9]
local LANES = {K_LINE}
for i = 10, #KEYS do LANES[#LANES + 1] = KEYS[i] end

local function lane_name(i)
  if i == 1 then return 'default' end
  return string.sub(LANES[i], #K_LINE + 2)
end
local function held()
  return redis.call('ZCARD', K_LEASE) + redis.call('ZCARD', K_RDY) + redis.call('ZCARD', K_ACT) + redis.call('ZCARD', K_REL)
end

local now, cap, lease, only, cycle = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3]), ARGV[4], ARGV[5]
local ctl = redis.call('HMGET', K_CFG, 'paused', 'capo', 'cartotal')
if ctl[1] == '1' then return {} end
if ctl[2] then cap = tonumber(ctl[2]) elseif cap == 0 then cap = tonumber(ctl[3] or '0') end
local n = math.min(#ARGV - 5, cap - held())
if n <= 0 then return {} end
local order, take = {}, {}
if #LANES == 1 then
  for i = 1, n do order[i] = 1 end
  take[1] = n
else
  local left, total = {}, 0
  for i = 1, #LANES do
    left[i] = redis.call('ZCARD', LANES[i])
    total = total + left[i]
  end
  local w = #cycle
  local p = tonumber(redis.call('HGET', K_CFG, 'lanep') or '0') % w
  while #order < n and total > 0 do
    local l = string.byte(cycle, p + 1) - 48
    p = (p + 1) % w
    if left[l] > 0 then
      left[l], total = left[l] - 1, total - 1
      take[l] = (take[l] or 0) + 1
      order[#order + 1] = l
    end
  end
  if #order == 0 then return {} end
  if only ~= '' and redis.call('ZRANGE', LANES[order[1]], 0, 0)[1] ~= only then return {} end
  redis.call('HSET', K_CFG, 'lanep', p)
end
local heads = {}
for l, k in pairs(take) do heads[l] = redis.call('ZRANGE', LANES[l], 0, k - 1, 'WITHSCORES') end
local next = {}
local out, k = {}, 5
for _, l in ipairs(order) do
  local i = next[l] or 1
  next[l] = i + 2
  local head = heads[l]
  local u, seq = head[i], head[i + 1]
  if not u then break end
  if only ~= '' and u ~= only then return {} end
  k = k + 1
  local tok = ARGV[k]
  redis.call('ZREM', LANES[l], u)
  redis.call('HDEL', K_LS, u)
  redis.call('ZADD', K_LEASE, now + lease, u)
  redis.call('HSET', K_HOLD, 's:' .. u, 'Admitting', 't:' .. u, tok, 'q:' .. u, seq)
  if l > 1 then redis.call('HSET', K_HOLD, 'l:' .. u, lane_name(l)) end
  out[#out + 1] = u
  out[#out + 1] = redis.call('HGET', K_CS, u) or ''
  out[#out + 1] = tok
end
return out
