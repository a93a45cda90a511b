local K_CFG = KEYS[1]

redis.call('HSET', K_CFG, 'cartotal', ARGV[1], 'cartotal_at', ARGV[2])
redis.call('HDEL', K_CFG, 'cartotal_claim')
return 1
