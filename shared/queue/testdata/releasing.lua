local K_REL = KEYS[1]

return redis.call('ZRANGE', K_REL, 0, tonumber(ARGV[1]) - 1)
