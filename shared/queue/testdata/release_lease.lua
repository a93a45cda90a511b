local K_REAPER = KEYS[1]

local v = redis.call('GET', K_REAPER)
if v and string.match(v, ':(%x+)$') == ARGV[1] then
  return redis.call('DEL', K_REAPER)
end
return 0
