package queue

import (
	"context"
	"errors"
	"fmt"
	"strings"
)

// dumpScript returns every structure of the queue, for CheckInvariants. O(N): tests only.
// Reply: {zset line, hash ls, zset lease, rdy, act, rel, gone (member, score pairs)..., hash cs, hold,
// gr (field, value pairs)..., seq}.
var dumpScript = newScript("dump", `
local out = {}
local all = {}
for i = 1, #LANES do
  for _, x in ipairs(redis.call('ZRANGE', LANES[i], 0, -1, 'WITHSCORES')) do all[#all + 1] = x end
end
out[1] = all
out[2] = redis.call('HGETALL', K_LS)
for _, k in ipairs({K_LEASE, K_RDY, K_ACT, K_REL, K_GONE}) do
  out[#out + 1] = redis.call('ZRANGE', k, 0, -1, 'WITHSCORES')
end
for _, k in ipairs({K_CS, K_HOLD, K_GR}) do out[#out + 1] = redis.call('HGETALL', k) end
out[#out + 1] = redis.call('GET', K_SEQ) or '0'
out[#out + 1] = redis.call('HGET', K_CFG, 'capo_set') or ''
return out
`)

// CheckInvariants reads the raw keys of the queue and reports every way they disagree: each
// user in exactly one state, holder details matching the state sets, at most Capacity slots
// held, no departed user still present. It reads the whole queue (O(N)), so it is meant for
// tests, including the tests of packages that use the queue; it changes nothing.
func (q *Queue) CheckInvariants(ctx context.Context) error {
	v, err := q.run(ctx, dumpScript)
	if err != nil {
		return fmt.Errorf("check invariants: %w", err)
	}
	a, err := replySlice(v, 12)
	if err != nil {
		return fmt.Errorf("check invariants: %w", err)
	}
	pairs := func(x any) (map[string]string, []string) {
		s, _ := x.([]any)
		m := make(map[string]string, len(s)/2)
		var order []string
		for i := 0; i+1 < len(s); i += 2 {
			m[replyString(s[i])] = replyString(s[i+1])
			order = append(order, replyString(s[i]))
		}
		return m, order
	}
	line, _ := pairs(a[0])
	seen, _ := pairs(a[1])
	lease, _ := pairs(a[2])
	rdy, _ := pairs(a[3])
	act, _ := pairs(a[4])
	rel, _ := pairs(a[5])
	gone, _ := pairs(a[6])
	cs, _ := pairs(a[7])
	hold, _ := pairs(a[8])
	gr, _ := pairs(a[9])
	seq := replyInt(a[10])

	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }

	// Where each user is, by the sets.
	where := map[string][]string{}
	for name, set := range map[string]map[string]string{"Queued": line, "Admitting": lease, "Ready": rdy, "Active": act, "Releasing": rel} {
		for u := range set {
			where[u] = append(where[u], name)
		}
	}
	for u, states := range where {
		if len(states) != 1 {
			bad("user %s is in %d states %v", u, len(states), states)
		}
	}
	// A Capacity-0 queue follows CAR's Total, which may shrink under its holders; so may an
	// operator's capacity override (lowering it ends no session), once one was ever set.
	if held := len(lease) + len(rdy) + len(act) + len(rel); q.opts.Capacity > 0 && replyString(a[11]) == "" && held > q.opts.Capacity {
		bad("%d slots held, capacity %d", held, q.opts.Capacity)
	}
	// line and seen agree; sequence numbers are unique and issued.
	seqs := map[string]string{}
	for u, s := range line {
		if _, ok := seen[u]; !ok {
			bad("queued user %s has no last-seen", u)
		}
		if o, dup := seqs[s]; dup {
			bad("users %s and %s share sequence %s", u, o, s)
		}
		seqs[s] = u
		if n := seqOf(s); n < 1 || n > seq {
			bad("queued user %s has score %s, sequence %d outside 1..%d", u, s, n, seq)
		}
	}
	for u := range seen {
		if _, ok := line[u]; !ok {
			bad("last-seen entry for %s, who is not queued", u)
		}
	}
	// Holder details: exactly the holders, with the fields their state needs.
	fields := map[string]map[string]string{}
	for f, val := range hold {
		kind, u, ok := strings.Cut(f, ":")
		if !ok {
			bad("hold field %q is malformed", f)
			continue
		}
		if fields[u] == nil {
			fields[u] = map[string]string{}
		}
		fields[u][kind] = val
	}
	for u, f := range fields {
		st := f["s"]
		if len(where[u]) != 1 || where[u][0] != st || st == "Queued" {
			bad("hold says %s is %q, the sets say %v", u, st, where[u])
		}
		switch st {
		case "Admitting":
			if f["t"] == "" {
				bad("admitting user %s has no claim token", u)
			}
			if _, re := f["r"]; re {
				if f["r"] != "Ready" && f["r"] != "Active" || f["d"] == "" {
					bad("reattaching user %s has bad previous state %q deadline %q", u, f["r"], f["d"])
				}
			} else if n := seqOf(f["q"]); n < 1 || n > seq {
				bad("admitting user %s has bad score %q", u, f["q"])
			}
		case "Ready", "Active":
			if f["t"] != "" || f["r"] != "" {
				bad("%s user %s still has claim fields", st, u)
			}
		case "Releasing":
			if !isReason(f["y"]) {
				bad("releasing user %s has reason %q", u, f["y"])
			}
		}
	}
	for u, states := range where {
		if states[0] != "Queued" && fields[u]["s"] == "" {
			bad("%s user %s has no holder details", states[0], u)
		}
	}
	// Clients only of present users, each as encodeClient wrote it; departures only of absent
	// ones.
	for u, v := range cs {
		if len(where[u]) == 0 {
			bad("client kept for %s, who is neither queued nor holding", u)
		}
		if c := decodeClient(v); encodeClient(c) != v || checkClient(c) != nil {
			bad("client of %s stored as %q, not as encodeClient writes one", u, v)
		}
	}
	for u := range gone {
		if len(where[u]) != 0 {
			bad("departed user %s is still %v", u, where[u])
		}
		if !isReason(gr[u]) {
			bad("departed user %s has reason %q", u, gr[u])
		}
	}
	for u := range gr {
		if _, ok := gone[u]; !ok {
			bad("reason kept for %s without a departure time", u)
		}
	}
	return errors.Join(errs...)
}

func isReason(s string) bool {
	for _, r := range Reasons {
		if string(r) == s {
			return true
		}
	}
	return false
}
