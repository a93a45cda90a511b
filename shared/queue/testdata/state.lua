local K_LINE = KEYS[1]
local K_HOLD = KEYS[2]
local LANES = {K_LINE}
for i = 3, #KEYS do LANES[#LANES + 1] = KEYS[i] end

local function find_lane(u)
  for i = 1, #LANES do
    local s = redis.call('ZSCORE', LANES[i], u)
    if s then return i, s end
  end
  return nil
end

local st = redis.call('HGET', K_HOLD, 's:' .. ARGV[1])
if st then return st end
if find_lane(ARGV[1]) then return 'Queued' end
return ''
