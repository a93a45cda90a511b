local K_CFG = KEYS[1]

if ARGV[1] == 'capo' then redis.call('HSET', K_CFG, 'capo_set', 1) end
if ARGV[2] == '' then return redis.call('HDEL', K_CFG, ARGV[1]) end
return redis.call('HSET', K_CFG, ARGV[1], ARGV[2])
