local K_LINE = KEYS[1]
local K_SEEN = KEYS[2]
local K_CS = KEYS[3]
local K_HOLD = KEYS[4]
local K_LEASE = KEYS[5]
local K_RDY = KEYS[6]
local K_ACT = KEYS[7]
local K_REL = KEYS[8]
local K_CFG = KEYS[9]

local function held()
  return redis.call('ZCARD', K_LEASE) + redis.call('ZCARD', K_RDY) + redis.call('ZCARD', K_ACT) + redis.call('ZCARD', K_REL)
end

local now, cap, lease, only = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3]), ARGV[4]
if cap == 0 then cap = tonumber(redis.call('HGET', K_CFG, 'cartotal') or '0') end
local n = math.min(#ARGV - 4, cap - held())
if n <= 0 then return {} end
local head = redis.call('ZRANGE', K_LINE, 0, n - 1, 'WITHSCORES')
if only ~= '' and head[1] ~= only then return {} end
local out, k = {}, 4
for i = 1, #head, 2 do
  k = k + 1
  local u, seq, tok = head[i], head[i + 1], ARGV[k]
  redis.call('ZREM', K_LINE, u)
  redis.call('ZREM', K_SEEN, u)
  redis.call('ZADD', K_LEASE, now + lease, u)
  redis.call('HSET', K_HOLD, 's:' .. u, 'Admitting', 't:' .. u, tok, 'q:' .. u, seq)
  out[#out + 1] = u
  out[#out + 1] = redis.call('HGET', K_CS, u) or ''
  out[#out + 1] = tok
end
return out
