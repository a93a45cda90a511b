local K_HIST = KEYS[1]

local out = {}
for m = tonumber(ARGV[1]), tonumber(ARGV[2]) do
  local f = redis.call('HMGET', K_HIST, m .. ':a', m .. ':l', m .. ':q', m .. ':h')
  for i = 1, 4 do out[#out + 1] = f[i] or '' end
end
return out
