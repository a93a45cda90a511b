local K_LINE = KEYS[1]
local K_SEEN = KEYS[2]
local K_CS = KEYS[3]
local K_HOLD = KEYS[4]
local K_GONE = KEYS[5]
local K_GR = KEYS[6]

local u, cs = ARGV[1], ARGV[3]
local r = redis.call('ZRANK', K_LINE, u)
if r then
  redis.call('ZADD', K_SEEN, ARGV[2], u)
  if cs ~= '' then redis.call('HSET', K_CS, u, cs) end
  return {'Queued', r + 1, redis.call('ZCARD', K_LINE)}
end

local function holder_state(u)
  return redis.call('HGET', K_HOLD, 's:' .. u)
end
local function gone_status(u, now)
  local exp = redis.call('ZSCORE', K_GONE, u)
  if exp and tonumber(exp) > now then
    return {'', 0, 0, '', '', redis.call('HGET', K_GR, u) or ''}
  end
  return {'', 0, 0, '', '', ''}
end
local function holder_status(u, st, cs)
  local ss = ''
  if st == 'Ready' or st == 'Active' then ss = redis.call('HGET', K_HOLD, 'ss:' .. u) or '' end
  return {st, 0, 0, ss, cs, ''}
end

local now = tonumber(ARGV[2])
local st = holder_state(u)
if st then
  if cs ~= '' then redis.call('HSET', K_CS, u, cs) end
  return holder_status(u, st, '')
end
return gone_status(u, now)
