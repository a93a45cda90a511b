local K_ETAERR = KEYS[1]

return redis.call('LRANGE', K_ETAERR, 0, -1)
