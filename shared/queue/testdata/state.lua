local K_LINE = KEYS[1]
local K_HOLD = KEYS[2]

local st = redis.call('HGET', K_HOLD, 's:' .. ARGV[1])
if st then return st end
if redis.call('ZSCORE', K_LINE, ARGV[1]) then return 'Queued' end
return ''
