package queue

import (
	"context"
	"fmt"
	"regexp"
	"strings"

	"github.com/redis/go-redis/v9"
)

// luaHelpers are the Lua functions the scripts share, in dependency order. A script gets only
// the helpers it calls and only the keys its code names (see assemble): every helper and key
// costs a closure or a KEYS entry on each call, and poll and heartbeat run at tens of
// thousands per second.
//
// Scripts never read the clock: "now" and every deadline come in ARGV as Unix milliseconds.
// They only use commands of Redis 5.0 that miniredis (gopher-lua) runs too.
var luaHelpers = []struct{ name, code string }{
	{"holder_state", `
local function holder_state(u)
  return redis.call('HGET', K_HOLD, 's:' .. u)
end`},
	{"state_zset", `
local function state_zset(st)
  if st == 'Admitting' then return K_LEASE end
  if st == 'Ready' then return K_RDY end
  if st == 'Active' then return K_ACT end
  if st == 'Releasing' then return K_REL end
  return nil
end`},
	{"drop_holder", `
local function drop_holder(u)
  redis.call('HDEL', K_HOLD, 's:' .. u, 't:' .. u, 'q:' .. u, 'ss:' .. u, 'r:' .. u, 'd:' .. u, 'y:' .. u, 'a:' .. u, 'l:' .. u, 'ad:' .. u)
  redis.call('ZREM', K_ST, u)
end`},
	// the lane (index into LANES) and join score of a queued user, or nil
	{"find_lane", `
local function find_lane(u)
  for i = 1, #LANES do
    local s = redis.call('ZSCORE', LANES[i], u)
    if s then return i, s end
  end
  return nil
end`},
	// a lane's name from its key: line is the default lane, line:<name> the others
	{"lane_name", `
local function lane_name(i)
  if i == 1 then return 'default' end
  return string.sub(LANES[i], #K_LINE + 2)
end`},
	// the key of the lane named name ('' or unknown: the default lane)
	{"lane_key", `
local function lane_key(name)
  if name and name ~= '' then
    for i = 2, #LANES do
      if lane_name(i) == name then return LANES[i] end
    end
  end
  return K_LINE
end`},
	// every queued user, all lanes
	{"line_length", `
local function line_length()
  local n = 0
  for i = 1, #LANES do n = n + redis.call('ZCARD', LANES[i]) end
  return n
end`},
	// the 1-based position of the user at rank r (0-based) of lane li: 1 + everyone admitted
	// before it if nobody joins, following the admission cycle from its pointer (lanes.go)
	{"lane_position", `
local function lane_position(li, r, cycle)
  if #LANES == 1 then return r + 1 end
  local w, p = #cycle, tonumber(redis.call('HGET', K_CFG, 'lanep') or '0') % #cycle
  local per, offs = {}, {}
  for o = 0, w - 1 do
    local l = string.byte(cycle, (p + o) % w + 1) - 48
    per[l] = (per[l] or 0) + 1
    if l == li then offs[#offs + 1] = o end
  end
  local k, j = math.floor(r / #offs), r % #offs
  local before = {}
  for o = 0, offs[j + 1] - 1 do
    local l = string.byte(cycle, (p + o) % w + 1) - 48
    before[l] = (before[l] or 0) + 1
  end
  local pos = r + 1
  for m = 1, #LANES do
    if m ~= li then
      local t = k * (per[m] or 0) + (before[m] or 0)
      if t > 0 then pos = pos + math.min(t, redis.call('ZCARD', LANES[m])) end
    end
  end
  return pos
end`},
	// the join sequence and first ETA (s) a join score holds (score.go)
	{"decode_score", `
local function decode_score(score)
  score = tonumber(score)
  if score >= 4503599627370496 then
    local x = score - 4503599627370496
    return math.floor(x / 65536), x % 65536
  end
  return score % 134217728, 0
end`},
	// when the join of sequence seq happened (ms), from the checkpoints, or nil
	{"joined_at", `
local function joined_at(seq)
  local r = redis.call('ZREVRANGEBYSCORE', K_JT, seq, '-inf', 'LIMIT', 0, 1)
  return r[1]
end`},
	// n more records written, and n more departures this minute
	{"count_records", `
local function count_records(n, now)
  redis.call('HINCRBY', K_CNT, 'records', n)
  redis.call('HINCRBY', K_HIST, math.floor(now / 60000) .. ':l', n)
end`},
	// the record of a departure (records.go); score is the user's join score, adm and started
	// are ms or nil; many: the caller counts a batch itself (count_records)
	{"write_record", `
local function write_record(u, reason, now, score, lane, adm, started, many)
  local j, k = '', 0
  if score then
    local seq
    seq, k = decode_score(score)
    j = joined_at(seq) or ''
  end
  redis.call('XADD', K_REC, '*', 'u', u, 'l', lane or 'default', 'j', j, 'a', adm or '', 's', started or '', 'e', now, 'y', reason, 'k', k)
  if not many then count_records(1, now) end
end`},
	// the record of a holder's departure, from its details
	{"record_holder", `
local function record_holder(u, reason, now)
  write_record(u, reason, now, redis.call('HGET', K_HOLD, 'q:' .. u), redis.call('HGET', K_HOLD, 'l:' .. u),
    redis.call('HGET', K_HOLD, 'ad:' .. u), redis.call('ZSCORE', K_ST, u))
end`},
	// the id of the user's current join: what its ticket must name (see Proof)
	{"join_id", `
local function join_id(u)
  local _, score = find_lane(u)
  return redis.call('HGET', K_TKG, u) or score or redis.call('HGET', K_HOLD, 'q:' .. u)
end`},
	// whether a caller's proof (ARGV form of Proof) shows it may act for the known user u
	{"proof_ok", `
local function proof_ok(u, proof)
  if proof == '*' or proof == 'G' then return true end
  if proof == '' then return false end
  local j = join_id(u)
  return j and tonumber(j) == tonumber(proof)
end`},
	{"set_gone", `
local function set_gone(u, reason, now, retention)
  redis.call('ZADD', K_GONE, now + retention, u)
  redis.call('HSET', K_GR, u, reason)
  redis.call('HDEL', K_TKG, u)
end`},
	{"count_left", `
local function count_left(reason)
  redis.call('HINCRBY', K_CNT, 'left:' .. reason, 1)
end`},
	// a queued user leaves the line (its client too)
	{"leave_line", `
local function leave_line(u)
  for i = 1, #LANES do redis.call('ZREM', LANES[i], u) end
  redis.call('HDEL', K_LS, u)
  redis.call('HDEL', K_CS, u)
end`},
	// a holder (Admitting, Ready or Active) starts releasing; it keeps its slot
	{"to_releasing", `
local function to_releasing(u, st, reason, now)
  redis.call('ZREM', state_zset(st), u)
  redis.call('HDEL', K_HOLD, 't:' .. u, 'r:' .. u, 'd:' .. u)
  redis.call('HSET', K_HOLD, 's:' .. u, 'Releasing', 'y:' .. u, reason)
  redis.call('ZADD', K_REL, now, u)
  count_left(reason)
  record_holder(u, reason, now)
  redis.call('ZREM', K_ST, u)
end`},
	// an Admitting user whose claim ends without admission: a reattach goes back to the state
	// and deadline it had, anyone else to its old place in line (its original sequence number)
	{"unclaim", `
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
end`},
	// bulk runs one variadic command over a long argument list, in chunks Lua can unpack
	{"bulk", `
local function bulk(cmd, key, args)
  for i = 1, #args, 1000 do
    redis.call(cmd, key, unpack(args, i, math.min(i + 999, #args)))
  end
end`},
	{"held", `
local function held()
  return redis.call('ZCARD', K_LEASE) + redis.call('ZCARD', K_RDY) + redis.call('ZCARD', K_ACT) + redis.call('ZCARD', K_REL)
end`},
	// status reply: {state, position, length, serverSession, client, reason}
	{"gone_status", `
local function gone_status(u, now)
  local exp = redis.call('ZSCORE', K_GONE, u)
  if exp and tonumber(exp) > now then
    return {'', 0, 0, '', '', redis.call('HGET', K_GR, u) or ''}
  end
  return {'', 0, 0, '', '', ''}
end`},
	{"holder_status", `
local function holder_status(u, st, cs)
  local ss = ''
  if st == 'Ready' or st == 'Active' then ss = redis.call('HGET', K_HOLD, 'ss:' .. u) or '' end
  return {st, 0, 0, ss, cs, ''}
end`},
}

// keyRef matches a key's Lua name (K_LINE …) in script code.
var keyRef = regexp.MustCompile(`\bK_([A-Z]+)\b`)

// helpersHere marks where in a script body the helpers go: a hot path placed before it runs
// without paying for their closures (it must not call them).
const helpersHere = "--[[helpers]]"

// assemble inserts into body the helpers it needs (transitively; at helpersHere, else first)
// and local names for the keys the whole text uses, and returns the text with those keys in
// KEYS order.
func assemble(body string) (string, []keyID, bool) {
	fast, body, ok := strings.Cut(body, helpersHere)
	if !ok {
		fast, body = "", fast
	}
	need := make([]bool, len(luaHelpers))
	for changed := true; changed; {
		changed = false
		text := body
		for i, h := range luaHelpers {
			if need[i] {
				text += h.code
			}
		}
		for i, h := range luaHelpers {
			if !need[i] && regexp.MustCompile(`\b`+h.name+`\(`).MatchString(text) {
				need[i], changed = true, true
			}
		}
	}
	var code strings.Builder
	code.WriteString(fast)
	helpers := false
	for i, h := range luaHelpers {
		if need[i] {
			code.WriteString(h.code)
			helpers = true
		}
	}
	if helpers {
		code.WriteString("\n") // a blank line between the helpers and the body
	}
	code.WriteString(body)
	used := map[string]bool{}
	for _, m := range keyRef.FindAllStringSubmatch(code.String(), -1) {
		used[strings.ToLower(m[1])] = true
	}
	lanes := lanesRef.MatchString(code.String())
	if lanes {
		used["line"] = true
	}
	var head strings.Builder
	var keys []keyID
	for id, n := range keyNames {
		if used[n] {
			keys = append(keys, keyID(id))
			fmt.Fprintf(&head, "local K_%s = KEYS[%d]\n", strings.ToUpper(n), len(keys))
		}
	}
	if lanes {
		// The lines of the other lanes follow the fixed keys (Queue.run adds them).
		fmt.Fprintf(&head, "local LANES = {K_LINE}\nfor i = %d, #KEYS do LANES[#LANES + 1] = KEYS[i] end\n", len(keys)+1)
	}
	return head.String() + code.String(), keys, lanes
}

// lanesRef matches a script's use of LANES, the lines of every lane (lanes.go).
var lanesRef = regexp.MustCompile(`\bLANES\b`)

// script is one Lua script, run with EVALSHA and loaded on NOSCRIPT.
type script struct {
	name string
	src  string // the text Redis runs (testdata/<name>.lua holds a reviewed copy)
	s    *redis.Script
	keys []keyID // the queue keys the script uses, in KEYS order; nil when the caller gives them
	// lanes: the script also gets the lines of the queue's other lanes, after keys
	lanes bool
}

// scripts is every script the package runs, in declaration order, for TestScriptsGolden.
var scripts []*script

// newScript assembles body (see assemble) into a script of the queue's fixed keys.
func newScript(name, body string) *script {
	return register(assembleScript(name, body))
}

// assembleScript is newScript without registering the script: for scripts only tests run.
func assembleScript(name, body string) *script {
	src, keys, lanes := assemble(body)
	return &script{name: name, src: src, s: redis.NewScript(src), keys: keys, lanes: lanes}
}

// newKeyedScript is a script whose keys the caller passes (the per-user lock, whose key is
// not one of the fixed queue keys). Its text is run as written.
func newKeyedScript(name, src string) *script {
	return register(&script{name: name, src: src, s: redis.NewScript(src)})
}

func register(sc *script) *script {
	scripts = append(scripts, sc)
	return sc
}

// run executes a script of the queue's fixed keys. Its error is Redis's or the network's,
// unwrapped: the caller adds the operation and user, which it alone knows. A nil reply
// (redis.Nil) is no error.
func (q *Queue) run(ctx context.Context, sc *script, args ...any) (any, error) {
	keys := make([]string, len(sc.keys), len(sc.keys)+len(q.laneKeys))
	for i, k := range sc.keys {
		keys[i] = q.keys[k]
	}
	if sc.lanes {
		keys = append(keys, q.laneKeys...)
	}
	return q.runKeys(ctx, sc, keys, args...)
}

// runKeys executes a script with the keys given: EVALSHA sent with the other calls in flight
// (pipeline.go), so a busy server's heartbeats, joins and lane polls share round trips too;
// a script Redis does not know yet (NOSCRIPT) is then run on its own, which loads it.
func (q *Queue) runKeys(ctx context.Context, sc *script, keys []string, args ...any) (any, error) {
	{
		var cmd *redis.Cmd
		if err := q.batch.do(ctx, firstKey(keys), func(p redis.Pipeliner) { cmd = p.EvalSha(ctx, sc.s.Hash(), keys, args...) }); err != nil {
			return nil, err
		}
		v, err := cmd.Result()
		if err == redis.Nil {
			return nil, nil
		}
		if err == nil || !redis.HasErrorPrefix(err, "NOSCRIPT") {
			return v, err
		}
	}
	v, err := sc.s.Run(ctx, q.rdb, keys, args...).Result()
	if err == redis.Nil {
		return nil, nil
	}
	return v, err
}

// firstKey is the key that places a script's call on a cluster ("" for none: any node).
func firstKey(keys []string) string {
	if len(keys) == 0 {
		return ""
	}
	return keys[0]
}
