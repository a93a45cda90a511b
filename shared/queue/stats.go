package queue

import (
	"context"
	"fmt"
	"strconv"
)

// statsScript reads every counter in one round trip.
// ARGV: rateFrom (admissions after this time count), now. Reply: {queued, admitting, ready,
// active, releasing, recentAdmissions, oldestRecentAdmission (ms; empty when none),
// releasesRetrying, carTotal, carTotalAt, reapHeldUntil (ms; empty when never held), paused,
// notice, capacity override, records delivered, records kept, {lane, queued, ...} (empty
// without lanes), field, value, ...} (fields of the counters hash).
var statsScript = newScript("stats", `
local from = '(' .. ARGV[1]
local oldest = redis.call('ZRANGEBYSCORE', K_RATE, from, '+inf', 'WITHSCORES', 'LIMIT', 0, 1)
local out = {line_length(), redis.call('ZCARD', K_LEASE), redis.call('ZCARD', K_RDY),
  redis.call('ZCARD', K_ACT), redis.call('ZCARD', K_REL), redis.call('ZCOUNT', K_RATE, from, '+inf'),
  oldest[2] or '', redis.call('ZCOUNT', K_REL, '(' .. ARGV[2], '+inf'),
  redis.call('HGET', K_CFG, 'cartotal') or '', redis.call('HGET', K_CFG, 'cartotal_at') or '',
  redis.call('HGET', K_UP, 'hold') or ''}
local ctl = redis.call('HMGET', K_CFG, 'paused', 'notice', 'capo', 'whn')
out[#out + 1] = ctl[1] or ''
out[#out + 1] = ctl[2] or ''
out[#out + 1] = ctl[3] or ''
out[#out + 1] = ctl[4] or '0'
out[#out + 1] = redis.call('XLEN', K_REC)
local lanes = {}
if #LANES > 1 then
  for i = 1, #LANES do
    lanes[#lanes + 1] = lane_name(i)
    lanes[#lanes + 1] = redis.call('ZCARD', LANES[i])
  end
end
out[#out + 1] = lanes
for _, x in ipairs(redis.call('HGETALL', K_CNT)) do out[#out + 1] = x end
return out
`)

// reaperReasons are the departures the reaper causes; they make up Stats.ReapedTotal.
var reaperReasons = []Reason{ReasonIdle, ReasonHeartbeatTimeout, ReasonNeverStarted, ReasonTimeLimit}

// Stats returns the counts /stats reports, in one round trip. ReapedByReason counts every
// departure by reason (stopped and car_refused too), counted when the reason is decided (a
// holder: when it starts releasing); ReapedTotal sums the reaper's reasons (idle,
// heartbeat_timeout, never_started). Reattaches are not admissions: AdmittedTotal and the rate
// count users who came from the line.
func (q *Queue) Stats(ctx context.Context) (Stats, error) {
	now := q.nowMS()
	v, err := q.run(ctx, statsScript, now-ms(q.opts.RateWindow), now)
	var a []any
	if err == nil {
		a, err = replySlice(v, 17)
	}
	if err != nil {
		return Stats{}, fmt.Errorf("stats: %w", err)
	}
	s := Stats{
		Queued: replyInt(a[0]), Admitting: replyInt(a[1]), Ready: replyInt(a[2]), Active: replyInt(a[3]),
		Releasing: replyInt(a[4]), ReleasesRetrying: replyInt(a[7]), Capacity: int64(q.opts.Capacity),
		ReapedByReason: map[Reason]int64{},
	}
	if q.opts.Capacity == 0 {
		s.Capacity, _ = strconv.ParseInt(replyString(a[8]), 10, 64)
		s.CARTotalAt, _ = strconv.ParseInt(replyString(a[9]), 10, 64)
	}
	if n := replyInt(a[5]); n > 0 {
		oldest, err := strconv.ParseFloat(replyString(a[6]), 64)
		if err != nil {
			return Stats{}, fmt.Errorf("stats: oldest admission %q: %w", replyString(a[6]), err)
		}
		s.AdmissionsPerMinute = admissionRate(n, int64(oldest), now, ms(q.opts.RateWindow))
		s.RecentAdmissions = n
	}
	for _, r := range Reasons {
		s.ReapedByReason[r] = 0
	}
	if h, _ := strconv.ParseInt(replyString(a[10]), 10, 64); h > now {
		s.ReapHeldUntil = h
	}
	s.Controls = readControls(replyString(a[11]), replyString(a[12]), replyString(a[13]))
	if s.Controls.CapacitySet {
		s.Capacity = int64(s.Controls.Capacity)
	}
	delivered := replyInt(a[14])
	s.RecordsKept = replyInt(a[15])
	if lanes, _ := a[16].([]any); len(lanes) > 0 {
		s.LaneQueued = map[string]int64{}
		for i := 0; i+1 < len(lanes); i += 2 {
			s.LaneQueued[replyString(lanes[i])] = replyInt(lanes[i+1])
		}
	}
	for i := 17; i+1 < len(a); i += 2 {
		f, n := replyString(a[i]), replyInt(a[i+1])
		switch {
		case f == "records":
			s.RecordsPending = min(max(n-delivered, 0), s.RecordsKept)
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

// admissionRate is n admissions per minute over the span observed: from the oldest of them
// (oldestMS) to now, clamped to [windowMS/30, windowMS]. Dividing by the whole window would
// make one admission on a fresh system read as 0.2/min (an ETA of 5 min a place) even when
// slots turn over in seconds; the floor keeps a burst of admissions within the same moment
// from reading as an absurd rate.
func admissionRate(n, oldestMS, nowMS, windowMS int64) float64 {
	if n <= 0 {
		return 0
	}
	span := min(max(nowMS-oldestMS, windowMS/30, 1), windowMS)
	return float64(n) * 60_000 / float64(span)
}
