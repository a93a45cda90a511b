local K_LINE = KEYS[1]
local K_SEEN = KEYS[2]
local K_CS = KEYS[3]
local K_HOLD = KEYS[4]
local K_LEASE = KEYS[5]
local K_RDY = KEYS[6]
local K_ACT = KEYS[7]
local K_REL = KEYS[8]
local K_GONE = KEYS[9]
local K_GR = KEYS[10]
local K_CNT = KEYS[11]

local function state_zset(st)
  if st == 'Admitting' then return K_LEASE end
  if st == 'Ready' then return K_RDY end
  if st == 'Active' then return K_ACT end
  if st == 'Releasing' then return K_REL end
  return nil
end
local function drop_holder(u)
  redis.call('HDEL', K_HOLD, 's:' .. u, 't:' .. u, 'q:' .. u, 'ss:' .. u, 'r:' .. u, 'd:' .. u, 'y:' .. u, 'a:' .. u)
end
local function count_left(reason)
  redis.call('HINCRBY', K_CNT, 'left:' .. reason, 1)
end
local function to_releasing(u, st, reason, now)
  redis.call('ZREM', state_zset(st), u)
  redis.call('HDEL', K_HOLD, 't:' .. u, 'r:' .. u, 'd:' .. u)
  redis.call('HSET', K_HOLD, 's:' .. u, 'Releasing', 'y:' .. u, reason)
  redis.call('ZADD', K_REL, now, u)
  count_left(reason)
end
local function unclaim(u, now)
  redis.call('ZREM', K_LEASE, u)
  local prev = redis.call('HGET', K_HOLD, 'r:' .. u)
  if prev then
    local d = redis.call('HGET', K_HOLD, 'd:' .. u)
    redis.call('HDEL', K_HOLD, 't:' .. u, 'r:' .. u, 'd:' .. u)
    redis.call('HSET', K_HOLD, 's:' .. u, prev)
    redis.call('ZADD', state_zset(prev), d, u)
  else
    local seq = redis.call('HGET', K_HOLD, 'q:' .. u)
    drop_holder(u)
    redis.call('ZADD', K_LINE, seq, u)
    redis.call('ZADD', K_SEEN, now, u)
  end
end
local function bulk(cmd, key, args)
  for i = 1, #args, 1000 do
    redis.call(cmd, key, unpack(args, i, math.min(i + 999, #args)))
  end
end

local now, batch, cutoff, ret = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4])
local out = {0, 0, 0, 0, 0}
local idle = redis.call('ZRANGEBYSCORE', K_SEEN, '-inf', cutoff, 'LIMIT', 0, batch)
if #idle > 0 then
  local gone, reasons = {}, {}
  for i, u in ipairs(idle) do
    gone[2 * i - 1] = now + ret
    gone[2 * i] = u
    reasons[2 * i - 1] = u
    reasons[2 * i] = 'idle'
  end
  bulk('ZREM', K_LINE, idle)
  bulk('ZREM', K_SEEN, idle)
  bulk('HDEL', K_CS, idle)
  bulk('ZADD', K_GONE, gone)
  bulk('HSET', K_GR, reasons)
  redis.call('HINCRBY', K_CNT, 'left:idle', #idle)
end
local rdy = redis.call('ZRANGEBYSCORE', K_RDY, '-inf', now, 'LIMIT', 0, batch)
for _, u in ipairs(rdy) do
  to_releasing(u, 'Ready', 'never_started', now)
  out[#out + 1] = u
end
local act = redis.call('ZRANGEBYSCORE', K_ACT, '-inf', now, 'LIMIT', 0, batch)
for _, u in ipairs(act) do
  to_releasing(u, 'Active', 'heartbeat_timeout', now)
  out[#out + 1] = u
end
local lease = redis.call('ZRANGEBYSCORE', K_LEASE, '-inf', now, 'LIMIT', 0, batch)
for _, u in ipairs(lease) do
  unclaim(u, now)
end
local gone = redis.call('ZRANGEBYSCORE', K_GONE, '-inf', now, 'LIMIT', 0, 2 * batch)
bulk('ZREM', K_GONE, gone)
bulk('HDEL', K_GR, gone)
out[1], out[2], out[3], out[4] = #idle, #rdy, #act, #lease
if #idle == batch or #rdy == batch or #act == batch or #lease == batch then out[5] = 1 end
return out
