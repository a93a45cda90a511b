package queue

import (
	"context"
	"fmt"
)

// statsScript reads every counter in one round trip.
// ARGV: rateFrom (admissions after this time count). Reply: {queued, admitting, ready, active,
// releasing, recentAdmissions, field, value, ...} (fields of the counters hash).
var statsScript = newScript("stats", `
local out = {redis.call('ZCARD', K_LINE), redis.call('ZCARD', K_LEASE), redis.call('ZCARD', K_RDY),
  redis.call('ZCARD', K_ACT), redis.call('ZCARD', K_REL), redis.call('ZCOUNT', K_RATE, '(' .. ARGV[1], '+inf')}
for _, x in ipairs(redis.call('HGETALL', K_CNT)) do out[#out + 1] = x end
return out
`)

// reaperReasons are the departures the reaper causes; they make up Stats.ReapedTotal.
var reaperReasons = []Reason{ReasonIdle, ReasonHeartbeatTimeout, ReasonNeverStarted}

// Stats implements Interface. ReapedByReason counts every departure by reason (stopped and
// car_refused too), counted when the reason is decided (a holder: when it starts releasing);
// ReapedTotal sums the reaper's reasons (idle, heartbeat_timeout, never_started). Reattaches
// are not admissions: AdmittedTotal and the rate count users who came from the line.
func (q *Queue) Stats(ctx context.Context) (Stats, error) {
	v, err := q.run(ctx, statsScript, q.nowMS()-ms(q.opts.RateWindow))
	if err != nil {
		return Stats{}, fmt.Errorf("stats: %w", err)
	}
	a, err := replySlice(v, 6)
	if err != nil {
		return Stats{}, fmt.Errorf("stats: %w", err)
	}
	s := Stats{
		Queued: replyInt(a[0]), Admitting: replyInt(a[1]), Ready: replyInt(a[2]), Active: replyInt(a[3]),
		Releasing: replyInt(a[4]), Capacity: int64(q.opts.Capacity), ReapedByReason: map[Reason]int64{},
	}
	s.AdmissionsPerMinute = float64(replyInt(a[5])) / q.opts.RateWindow.Minutes()
	for _, r := range Reasons {
		s.ReapedByReason[r] = 0
	}
	for i := 6; i+1 < len(a); i += 2 {
		f, n := replyString(a[i]), replyInt(a[i+1])
		switch {
		case f == "admitted":
			s.AdmittedTotal = n
		case len(f) > 5 && f[:5] == "left:":
			s.ReapedByReason[Reason(f[5:])] = n
		}
	}
	for _, r := range reaperReasons {
		s.ReapedTotal += s.ReapedByReason[r]
	}
	return s, nil
}
