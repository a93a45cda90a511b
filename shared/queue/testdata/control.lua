local K_RATE = KEYS[1]
local K_CFG = KEYS[2]

if ARGV[1] == 'capo' then redis.call('HSET', K_CFG, 'capo_set', 1) end
if ARGV[1] == 'paused' and ARGV[2] == '' and redis.call('HGET', K_CFG, 'paused') == '1' then
  redis.call('DEL', K_RATE)
end
if ARGV[2] == '' then return redis.call('HDEL', K_CFG, ARGV[1]) end
return redis.call('HSET', K_CFG, ARGV[1], ARGV[2])
