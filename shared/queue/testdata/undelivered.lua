local K_CFG = KEYS[1]
local K_REC = KEYS[2]

if tonumber(redis.call('HGET', K_CFG, 'whnext') or '0') > tonumber(ARGV[2]) then return {} end
local after, limit = redis.call('HGET', K_CFG, 'whid') or '-', tonumber(ARGV[1])
local r = redis.call('XRANGE', K_REC, after, '+', 'COUNT', limit + 1)
if #r > 0 and r[1][1] == after then table.remove(r, 1) elseif #r > limit then table.remove(r) end
return r
