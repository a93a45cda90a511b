package httpapi

import (
	"context"
	"math"
	"time"

	"github.com/carqueue/carqueue/shared/queue"
)

// rateTTL is how long one instance reuses the admission rate it read, so that ETAs cost a
// Stats call per instance every few seconds rather than one per poll.
const rateTTL = 5 * time.Second

// view maps a queue status to the contract's Data.
//
//	Queued                  → Queued: Position, QueueLength, EtaSeconds (when the rate is known), NextPollMs
//	Admitting               → Admitting: NextPollMs
//	Ready, Active           → Ready: ServerSession
//	None, Releasing         → Expired (Reason when the queue remembers one)
func (a *API) view(ctx context.Context, st queue.Status) Data {
	switch st.State {
	case queue.StateQueued:
		d := Data{Status: StatusQueued, Position: st.Position, QueueLength: st.Length,
			NextPollMs: a.nextPoll(st.Position)}
		if rate := a.admissionRate(ctx); rate > 0 && st.Position > 0 {
			eta := int64(math.Ceil(float64(st.Position) * 60 / rate))
			d.EtaSeconds = &eta
		}
		return d
	case queue.StateAdmitting:
		return Data{Status: StatusAdmitting, NextPollMs: a.nextPoll(1)}
	case queue.StateReady, queue.StateActive:
		return Data{Status: StatusReady, ServerSession: st.ServerSession}
	default:
		return Data{Status: StatusExpired, Reason: string(st.Reason)}
	}
}

// nextPoll is NextPollMs for a position:
//
//	PollMin × √position, capped at PollMax, then ±20% uniform jitter
//
// With the defaults (1s, 30s): the head polls every ~1s, position 100 every ~10s, and from
// position 900 on every ~30s. Polls of a line of N users then cost about 2√N + N/30 requests
// per second (about 3,400/s for 100,000 users), and no two clients stay in lock step.
func (a *API) nextPoll(position int64) int64 {
	if position < 1 {
		position = 1
	}
	d := time.Duration(float64(a.d.PollMin) * math.Sqrt(float64(position)))
	if d > a.d.PollMax || d <= 0 {
		d = a.d.PollMax
	}
	j := 0.8 + 0.4*a.d.Jitter()
	ms := int64(float64(d.Milliseconds()) * j)
	if ms < 1 {
		ms = 1
	}
	return ms
}

// admissionRate returns AdmissionsPerMinute, re-read from the queue at most every rateTTL.
// 0 means unknown (no admission in the window yet, or Redis did not answer).
func (a *API) admissionRate(ctx context.Context) float64 {
	now := a.d.Now()
	a.rateMu.Lock()
	if !a.rateAt.IsZero() && now.Sub(a.rateAt) < rateTTL && now.Sub(a.rateAt) >= 0 {
		r := a.rate
		a.rateMu.Unlock()
		return r
	}
	a.rateMu.Unlock()

	st, err := a.d.Queue.Stats(ctx)
	a.rateMu.Lock()
	defer a.rateMu.Unlock()
	if err != nil {
		return a.rate // keep the last known value; the ETA is an estimate anyway
	}
	a.rateAt, a.rate = now, st.AdmissionsPerMinute
	return a.rate
}
