local K_HOLD = KEYS[1]
local K_LEASE = KEYS[2]
local K_RDY = KEYS[3]
local K_ACT = KEYS[4]
local K_REL = KEYS[5]
local K_JT = KEYS[6]
local K_ST = KEYS[7]

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

local limit, out = tonumber(ARGV[1]), {}
for _, z in ipairs({K_ACT, K_RDY, K_LEASE, K_REL}) do
  for _, u in ipairs(redis.call('ZRANGE', z, 0, limit - 1)) do
    if #out >= 6 * limit then return out end
    local f = redis.call('HMGET', K_HOLD, 's:' .. u, 'l:' .. u, 'q:' .. u, 'ad:' .. u)
    local seq, j = 0, nil
    if f[3] then seq = decode_score(f[3]) j = joined_at(seq) end
    out[#out + 1] = u
    out[#out + 1] = f[1] or ''
    out[#out + 1] = f[2] or 'default'
    out[#out + 1] = j or ''
    out[#out + 1] = f[4] or ''
    out[#out + 1] = redis.call('ZSCORE', K_ST, u) or ''
  end
end
return out
