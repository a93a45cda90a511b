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
local K_TKG = KEYS[12]
local K_CFG = KEYS[13]
local K_REC = KEYS[14]
local K_JT = KEYS[15]
local K_ST = KEYS[16]
local K_HIST = KEYS[17]
local K_LS = KEYS[18]
local LANES = {K_LINE}
for i = 19, #KEYS do LANES[#LANES + 1] = KEYS[i] end

local function holder_state(u)
  return redis.call('HGET', K_HOLD, 's:' .. u)
end
local function state_zset(st)
  if st == 'Admitting' then return K_LEASE end
  if st == 'Ready' then return K_RDY end
  if st == 'Active' then return K_ACT end
  if st == 'Releasing' then return K_REL end
  return nil
end
local function drop_holder(u)
  redis.call('HDEL', K_HOLD, 's:' .. u, 't:' .. u, 'q:' .. u, 'ss:' .. u, 'r:' .. u, 'd:' .. u, 'y:' .. u, 'a:' .. u, 'l:' .. u, 'ad:' .. u)
  redis.call('ZREM', K_ST, u)
end
local function find_lane(u)
  for i = 1, #LANES do
    local s = redis.call('ZSCORE', LANES[i], u)
    if s then return i, s end
  end
  return nil
end
local function lane_name(i)
  if i == 1 then return 'default' end
  return string.sub(LANES[i], #K_LINE + 2)
end
local function lane_key(name)
  if name and name ~= '' then
    for i = 2, #LANES do
      if lane_name(i) == name then return LANES[i] end
    end
  end
  return K_LINE
end
local function line_length()
  local n = 0
  for i = 1, #LANES do n = n + redis.call('ZCARD', LANES[i]) end
  return n
end
local function decode_score(score)
  score = tonumber(score)
  if score >= 4503599627370496 then
    local x = score - 4503599627370496
    return math.floor(x / 65536), x % 65536
  end
  return score % 134217728, 0
end
local function joined_at(seq)
  local r = redis.call('ZREVRANGEBYSCORE', K_JT, seq, '-inf', 'LIMIT', 0, 1)
  return r[1]
end
local function count_records(n, now)
  redis.call('HINCRBY', K_CNT, 'records', n)
  redis.call('HINCRBY', K_HIST, math.floor(now / 60000) .. ':l', n)
end
local function write_record(u, reason, now, score, lane, adm, started, many)
  local j, k = '', 0
  if score then
    local seq
    seq, k = decode_score(score)
    j = joined_at(seq) or ''
  end
  redis.call('XADD', K_REC, '*', 'u', u, 'l', lane or 'default', 'j', j, 'a', adm or '', 's', started or '', 'e', now, 'y', reason, 'k', k)
  if not many then count_records(1, now) end
end
local function record_holder(u, reason, now)
  write_record(u, reason, now, redis.call('HGET', K_HOLD, 'q:' .. u), redis.call('HGET', K_HOLD, 'l:' .. u),
    redis.call('HGET', K_HOLD, 'ad:' .. u), redis.call('ZSCORE', K_ST, u))
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
  record_holder(u, reason, now)
  redis.call('ZREM', K_ST, u)
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
    local lane = lane_key(redis.call('HGET', K_HOLD, 'l:' .. u))
    drop_holder(u)
    redis.call('ZADD', lane, seq, u)
    redis.call('HSET', K_LS, u, now)
  end
end
local function bulk(cmd, key, args)
  for i = 1, #args, 1000 do
    redis.call(cmd, key, unpack(args, i, math.min(i + 999, #args)))
  end
end
local function held()
  return redis.call('ZCARD', K_LEASE) + redis.call('ZCARD', K_RDY) + redis.call('ZCARD', K_ACT) + redis.call('ZCARD', K_REL)
end

local now, batch, cutoff, ret = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4])
local maxs, recmax = tonumber(ARGV[5]), tonumber(ARGV[6])
local out = {0, 0, 0, 0, 0, 0}
-- idle: the candidates of a step of the last-seen sweep (lastseen.go; the HSCAN is the
-- caller's), each dropped if still unseen since cutoff and queued; an entry of a user who is
-- not queued is removed. The sweep's state: ARGV[7] the cursor to keep ('-': the sweep is
-- through, '': no step), ARGV[8] when a sweep started ('': unchanged). Then the last-seen zset
-- of an earlier version is drained: an entry there is idle unless ls has seen the user since.
local idle, where = {}, {}
if ARGV[8] ~= '' then redis.call('HSET', K_CFG, 'lss', ARGV[8]) end
if ARGV[7] == '-' then
  redis.call('HDEL', K_CFG, 'lsc')
elseif ARGV[7] ~= '' then
  redis.call('HSET', K_CFG, 'lsc', ARGV[7])
  out[5] = 1
end
for i = 9, #ARGV do
  local u = ARGV[i]
  local t = tonumber(redis.call('HGET', K_LS, u) or '')
  if t and t <= cutoff and #idle < batch then
    local li, score = find_lane(u)
    if li then
      idle[#idle + 1] = u
      where[u] = {li, score}
    else
      redis.call('HDEL', K_LS, u)
    end
  end
end
if #idle < batch then
  local old = redis.call('ZRANGEBYSCORE', K_SEEN, '-inf', cutoff, 'LIMIT', 0, batch - #idle)
  bulk('ZREM', K_SEEN, old)
  for _, u in ipairs(old) do
    local t = tonumber(redis.call('HGET', K_LS, u) or '0')
    local li, score = find_lane(u)
    if t <= cutoff and li and not where[u] then
      idle[#idle + 1] = u
      where[u] = {li, score}
    end
  end
  if #old > 0 and #idle == batch then out[5] = 1 end
end
if #idle > 0 then
  local gone, reasons = {}, {}
  for i, u in ipairs(idle) do
    gone[2 * i - 1] = now + ret
    gone[2 * i] = u
    reasons[2 * i - 1] = u
    reasons[2 * i] = 'idle'
    write_record(u, 'idle', now, where[u][2], lane_name(where[u][1]), nil, nil, true)
  end
  count_records(#idle, now)
  for i = 1, #LANES do bulk('ZREM', LANES[i], idle) end
  bulk('HDEL', K_LS, idle)
  bulk('HDEL', K_CS, idle)
  bulk('HDEL', K_TKG, idle)
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
local lim = {}
if maxs > 0 then
  local over = redis.call('ZRANGEBYSCORE', K_ST, '-inf', now - maxs, 'LIMIT', 0, batch)
  for _, u in ipairs(over) do
    if holder_state(u) == 'Active' then
      to_releasing(u, 'Active', 'time_limit', now)
      lim[#lim + 1] = u
      out[#out + 1] = u
    end
  end
end
local gone = redis.call('ZRANGEBYSCORE', K_GONE, '-inf', now, 'LIMIT', 0, 2 * batch)
bulk('ZREM', K_GONE, gone)
bulk('HDEL', K_GR, gone)
redis.call('XTRIM', K_REC, 'MAXLEN', '~', recmax)
redis.call('ZREMRANGEBYRANK', K_JT, 0, -86402)
local m = math.floor(now / 60000)
redis.call('HSET', K_HIST, m .. ':q', line_length(), m .. ':h', held())
local lo = tonumber(redis.call('HGET', K_CFG, 'histlo') or m)
if lo <= m - 1440 then
  local upto = math.min(m - 1440, lo + 60)
  for x = lo, upto do redis.call('HDEL', K_HIST, x .. ':a', x .. ':l', x .. ':q', x .. ':h') end
  lo = upto + 1
end
redis.call('HSET', K_CFG, 'histlo', lo)
out[1], out[2], out[3], out[4], out[6] = #idle, #rdy, #act, #lease, #lim
if #idle == batch or #rdy == batch or #act == batch or #lease == batch or #lim == batch then out[5] = 1 end
return out
