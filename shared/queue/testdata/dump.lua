local K_LINE = KEYS[1]
local K_CS = KEYS[2]
local K_SEQ = KEYS[3]
local K_HOLD = KEYS[4]
local K_LEASE = KEYS[5]
local K_RDY = KEYS[6]
local K_ACT = KEYS[7]
local K_REL = KEYS[8]
local K_GONE = KEYS[9]
local K_GR = KEYS[10]
local K_CFG = KEYS[11]
local K_LS = KEYS[12]
local LANES = {K_LINE}
for i = 13, #KEYS do LANES[#LANES + 1] = KEYS[i] end

local out = {}
local all = {}
for i = 1, #LANES do
  for _, x in ipairs(redis.call('ZRANGE', LANES[i], 0, -1, 'WITHSCORES')) do all[#all + 1] = x end
end
out[1] = all
out[2] = redis.call('HGETALL', K_LS)
for _, k in ipairs({K_LEASE, K_RDY, K_ACT, K_REL, K_GONE}) do
  out[#out + 1] = redis.call('ZRANGE', k, 0, -1, 'WITHSCORES')
end
for _, k in ipairs({K_CS, K_HOLD, K_GR}) do out[#out + 1] = redis.call('HGETALL', k) end
out[#out + 1] = redis.call('GET', K_SEQ) or '0'
out[#out + 1] = redis.call('HGET', K_CFG, 'capo_set') or ''
return out
