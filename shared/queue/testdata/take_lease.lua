local K_REAPER = KEYS[1]

local v = redis.call('GET', K_REAPER)
if v then
  local exp = tonumber(string.match(v, '^(%d+):'))
  if exp and exp > tonumber(ARGV[2]) then return 0 end
end
redis.call('SET', K_REAPER, ARGV[1], 'PX', ARGV[3])
return 1
