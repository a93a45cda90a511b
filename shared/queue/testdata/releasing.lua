local K_REL = KEYS[1]

return redis.call('ZRANGEBYSCORE', K_REL, '-inf', ARGV[1], 'LIMIT', 0, tonumber(ARGV[2]))
