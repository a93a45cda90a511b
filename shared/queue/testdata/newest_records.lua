local K_REC = KEYS[1]

local r = redis.call('XREVRANGE', K_REC, '+', '-', 'COUNT', tonumber(ARGV[1]))
local out = {}
for i = #r, 1, -1 do out[#out + 1] = r[i] end
return out
