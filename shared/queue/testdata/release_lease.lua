local K_REAPER = KEYS[1]

if redis.call('GET', K_REAPER) == ARGV[1] then
  return redis.call('DEL', K_REAPER)
end
return 0
