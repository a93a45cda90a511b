local K_REAPER = KEYS[1]

local v = redis.call('GET', K_REAPER)
if not v then return 0 end
local exp, tok = string.match(v, '^(%d+):(%x+)$')
if tok ~= ARGV[1] or tonumber(exp) <= tonumber(ARGV[2]) then return 0 end
redis.call('SET', K_REAPER, ARGV[3], 'PX', ARGV[4])
return 1
