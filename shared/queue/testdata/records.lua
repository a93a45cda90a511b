local K_REC = KEYS[1]

local after, limit = ARGV[1], tonumber(ARGV[2])
if after == '' then after = '-' end
local r = redis.call('XRANGE', K_REC, after, '+', 'COUNT', limit + 1)
if #r > 0 and r[1][1] == after then table.remove(r, 1) elseif #r > limit then table.remove(r) end
return r
