local K_CFG = KEYS[1]

return redis.call('HMGET', K_CFG, 'paused', 'notice', 'capo')
