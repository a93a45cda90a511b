package session

import (
	"context"
	"math"
	"sync"
	"time"

	"github.com/carqueue/carqueue/shared/queue"
)

// How an ETA is made, and when none is told (BENCHMARKS.md, "ETA accuracy"):
//
//	perPlace = 1 min / admissions per minute over the last RATE_WINDOW (queue.Stats, read by
//	           each instance at most every rateTTL)
//	ETA      = ⌈Position × perPlace⌉, in whole seconds
//
// No ETA (EtaSeconds absent, and a join stores none to be measured) while:
//   - fewer than MinETAAdmissions admissions were measured (rateOf);
//   - admission is paused by the operator: places do not move, any figure would be wrong;
//   - admission has stalled: no admission was seen for longer than max(StallMin,
//     StallGaps × perPlace) (CAR refusing, the capacity lowered, every holder staying): the
//     window's rate still remembers the admissions before the stall and would promise them.
//
// The stall is judged per instance from the queue's AdmittedTotal, which comes with the same
// Stats read as the rate, so a poll stays one round trip. An instance that has just started
// counts its first read as the last movement: it tells ETAs at once and stops after StallMin
// if nothing moves.

// StallMin is the shortest time without an admission after which no ETA is told.
const StallMin = time.Minute

// StallGaps is how many average gaps between admissions (perPlace) may pass without one
// before the ETA is withheld, when that is longer than StallMin: with admissions ~Poisson, a
// gap of 4 means happens about 2% of the time.
const StallGaps = 4

// pace remembers, per instance, when the queue's AdmittedTotal last moved.
type pace struct {
	mu       sync.Mutex
	seen     bool
	admitted int64     // AdmittedTotal at the last read
	movedAt  time.Time // the read that saw it change (the first read counts)
}

// observe takes one Stats read (the rate cache's refresh) at now and returns the rate an ETA
// may be made of (rateOf).
func (p *pace) observe(st queue.Stats, now time.Time) float64 {
	p.mu.Lock()
	defer p.mu.Unlock()
	if !p.seen || st.AdmittedTotal != p.admitted {
		p.seen, p.admitted, p.movedAt = true, st.AdmittedTotal, now
	}
	return rateOf(st)
}

// stalled says whether admission has not moved for too long at now, given the average gap
// between admissions.
func (p *pace) stalled(now time.Time, perPlace time.Duration) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.seen && now.Sub(p.movedAt) > max(StallMin, StallGaps*perPlace)
}

// etaRate is the admission rate (per minute) an ETA is made of now, 0 when no ETA is
// meaningful (see above).
func (s *Service) etaRate(ctx context.Context) float64 {
	rate := s.rate.get(ctx)
	if rate <= 0 {
		return 0
	}
	if s.controls.get(ctx).Paused || s.pace.stalled(s.opts.Now(), time.Duration(float64(time.Minute)/rate)) {
		return 0
	}
	return rate
}

// perPlace is the estimated wait per position ahead, 0 while unknown or not meaningful: what
// a new user's first ETA is made of, stored with its join.
func (s *Service) perPlace(ctx context.Context) time.Duration {
	rate := s.etaRate(ctx)
	if rate <= 0 {
		return 0
	}
	return time.Duration(float64(time.Minute) / rate)
}

// eta is EtaSeconds for a place in line, 0 when none is told.
func (s *Service) eta(ctx context.Context, position int64) time.Duration {
	rate := s.etaRate(ctx)
	if rate <= 0 || position <= 0 {
		return 0
	}
	return time.Duration(math.Ceil(float64(position)*60/rate)) * time.Second
}
