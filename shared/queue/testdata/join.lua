local K_LINE = KEYS[1]
local K_SEEN = KEYS[2]
local K_CS = KEYS[3]
local K_SEQ = KEYS[4]
local K_HOLD = KEYS[5]
local K_GONE = KEYS[6]
local K_GR = KEYS[7]

local function holder_state(u)
  return redis.call('HGET', K_HOLD, 's:' .. u)
end
local function holder_status(u, st, cs)
  local ss = ''
  if st == 'Ready' or st == 'Active' then ss = redis.call('HGET', K_HOLD, 'ss:' .. u) or '' end
  return {st, 0, 0, ss, cs, ''}
end

local u, now, cs = ARGV[1], tonumber(ARGV[2]), ARGV[3]
local r = redis.call('ZRANK', K_LINE, u)
if not r then
  local st = holder_state(u)
  if st then
    if cs ~= '' then redis.call('HSET', K_CS, u, cs) else cs = redis.call('HGET', K_CS, u) or '' end
    return holder_status(u, st, cs)
  end
  local seq = redis.call('INCR', K_SEQ)
  redis.call('ZADD', K_LINE, seq, u)
  redis.call('ZREM', K_GONE, u)
  redis.call('HDEL', K_GR, u)
  r = redis.call('ZCARD', K_LINE) - 1
end
redis.call('ZADD', K_SEEN, now, u)
if cs ~= '' then redis.call('HSET', K_CS, u, cs) else cs = redis.call('HGET', K_CS, u) or '' end
return {'Queued', r + 1, redis.call('ZCARD', K_LINE), '', cs, ''}
