local K_REAPER = KEYS[1]
local K_UP = KEYS[2]

local v = redis.call('GET', K_REAPER)
if not v then return 0 end
local exp, tok = string.match(v, '^(%d+):(%x+)$')
if tok ~= ARGV[1] or tonumber(exp) <= tonumber(ARGV[2]) then return 0 end
redis.call('SET', K_REAPER, ARGV[3], 'PX', ARGV[4])
if ARGV[5] == '1' then redis.call('HSET', K_UP, 'seen', ARGV[2]) end
return 1
