package session

import (
	"context"
	"math"
	"sync"
	"time"

	"github.com/carqueue/carqueue/shared/queue"
)

// view maps a queue status to what the user is told:
//
//	Queued           → Queued: Position, Length, ETA (when the rate is known), NextPoll
//	Admitting        → Admitting: NextPoll
//	Ready, Active    → Ready: ServerSession, NextHeartbeat, ReconnectWindow
//	None, Releasing  → Expired (Reason when the queue remembers one)
func (s *Service) view(ctx context.Context, st queue.Status) View {
	switch st.State {
	case queue.StateQueued:
		v := View{Status: StatusQueued, Position: st.Position, Length: st.Length, NextPoll: s.nextPoll(st.Position), Lane: st.Lane}
		v.ETA = s.eta(ctx, st.Position)
		s.opening(&v)
		return v
	case queue.StateAdmitting:
		return View{Status: StatusAdmitting, NextPoll: s.nextPoll(1), Lane: st.Lane}
	case queue.StateReady, queue.StateActive:
		return View{Status: StatusReady, ServerSession: st.ServerSession, NextHeartbeat: s.opts.HeartbeatInterval,
			ReconnectWindow: s.opts.HeartbeatTimeout, Lane: st.Lane}
	default:
		return View{Status: StatusExpired, Reason: st.Reason}
	}
}

// nextPoll is NextPollMs for a position:
//
//	PollMin × √position, capped at PollMax, then ±20% uniform jitter
//
// With 1s and 30s: the head polls every ~1s, position 100 every ~10s, and from position 900
// on every ~30s. Polls of a line of N users then cost about 2√N + N/30 requests per second
// (about 3,400/s for 100,000 users), and no two clients stay in lock step.
func (s *Service) nextPoll(position int64) time.Duration {
	if position < 1 {
		position = 1
	}
	d := time.Duration(float64(s.opts.PollMin) * math.Sqrt(float64(position)))
	if d > s.opts.PollMax || d <= 0 {
		d = s.opts.PollMax
	}
	j := 0.8 + 0.4*s.opts.Jitter()
	ms := int64(float64(d.Milliseconds()) * j)
	return time.Duration(max(ms, 1)) * time.Millisecond
}

// MinETAAdmissions is how many admissions the rate must be measured over before an ETA is
// told: one or two admissions (the first users, admitted at once into empty slots) say
// nothing about how fast slots free up, and an ETA from them was the least accurate
// (BENCHMARKS.md, "ETA accuracy").
const MinETAAdmissions = 3

// rateTTL is how long one instance reuses the admission rate it read, so that ETAs cost a
// Stats call per instance every few seconds rather than one per poll.
const rateTTL = 5 * time.Second

// rateOf is the admission rate an ETA may be made of: admissions per minute, 0 (unknown)
// when too few were measured.
func rateOf(st queue.Stats) float64 {
	if st.RecentAdmissions < MinETAAdmissions {
		return 0 // too few admissions for a rate worth telling anyone
	}
	return st.AdmissionsPerMinute
}

// cached keeps a value read from the queue for ttl. When it goes stale, one caller refreshes
// it while the others keep answering with the stale value: a burst of polls at expiry reads
// Redis once, not once per request in flight. A failed read keeps the last value (the zero
// value before the first), and the next caller tries again: what is cached is an estimate or
// a banner, worth less than a poll's one round trip.
type cached[T any] struct {
	read func(ctx context.Context) (T, error)
	ttl  time.Duration
	now  func() time.Time

	mu      sync.Mutex
	at      time.Time // when v was read; zero: never (or forgotten)
	v       T
	filling bool // a caller is reading it now
}

func (c *cached[T]) get(ctx context.Context) T {
	now := c.now()
	c.mu.Lock()
	age := now.Sub(c.at)
	if c.filling || (!c.at.IsZero() && age >= 0 && age < c.ttl) {
		v := c.v
		c.mu.Unlock()
		return v
	}
	c.filling = true
	c.mu.Unlock()

	v, err := c.read(ctx)

	c.mu.Lock()
	defer c.mu.Unlock()
	c.filling = false
	if err == nil {
		c.at, c.v = now, v
	}
	return c.v
}

// forget drops the value: the next get reads afresh.
func (c *cached[T]) forget() {
	c.mu.Lock()
	c.at = time.Time{}
	c.mu.Unlock()
}
