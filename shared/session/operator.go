package session

import (
	"context"
	"fmt"
	"math"
	"time"

	"github.com/carqueue/carqueue/shared/queue"
)

// The operator's use cases (API.md "Operator routes"): pause and resume admission, change the
// capacity live, kick a user, tell everyone something, list the holders and the records. Every
// control is one change in Redis that the claim script reads, so every instance acts on it at
// once; the notice and the paused flag reach users' answers through a cache of at most
// controlsTTL per instance, so a poll stays one round trip.

// Operator is what the operator's use cases need of the queue; *queue.Queue satisfies it.
type Operator interface {
	Controls(ctx context.Context) (queue.Controls, error)
	SetPaused(ctx context.Context, paused bool) error
	SetNotice(ctx context.Context, notice string) error
	SetCapacity(ctx context.Context, n int) error
	ResetCapacity(ctx context.Context) error
	Kick(ctx context.Context, userID string) (queue.State, error)
	Holders(ctx context.Context, limit int) ([]queue.Holder, error)
	Records(ctx context.Context, after string, limit int) ([]queue.Record, string, error)
	Newest(ctx context.Context, limit int) ([]queue.Record, error)
	History(ctx context.Context, since time.Time) ([]queue.Minute, error)
	ETAError(ctx context.Context, since time.Time) (pct float64, n int, err error)
}

// controlsTTL is how long one instance reuses the controls it read for users' answers.
const controlsTTL = time.Second

// Pause stops admission (queued users keep their places and keep polling); notice, when not
// nil, is set at the same time.
func (s *Service) Pause(ctx context.Context, notice *string) error {
	if notice != nil {
		if err := s.op.SetNotice(ctx, *notice); err != nil {
			return err
		}
	}
	if err := s.op.SetPaused(ctx, true); err != nil {
		return err
	}
	s.controls.forget()
	return nil
}

// Resume admits again.
func (s *Service) Resume(ctx context.Context) error {
	if err := s.op.SetPaused(ctx, false); err != nil {
		return err
	}
	s.controls.forget()
	return nil
}

// SetNotice shows notice to every user of the queue; "" clears it.
func (s *Service) SetNotice(ctx context.Context, notice string) error {
	if err := s.op.SetNotice(ctx, notice); err != nil {
		return err
	}
	s.controls.forget()
	return nil
}

// SetCapacity changes the capacity live; lowering it ends no session, it only stops admitting
// until fewer hold a slot.
func (s *Service) SetCapacity(ctx context.Context, n int) error { return s.op.SetCapacity(ctx, n) }

// ResetCapacity drops the live capacity: the configured one applies again.
func (s *Service) ResetCapacity(ctx context.Context) error { return s.op.ResetCapacity(ctx) }

// Kick removes a user: a queued one leaves; a holder's session is destroyed as after a stop
// (reason kicked). It returns the state the user was in (queue.StateNone: not in this queue).
func (s *Service) Kick(ctx context.Context, userID string) (queue.State, Stopped, error) {
	prev, err := s.op.Kick(ctx, userID)
	if err != nil || !prev.Holds() {
		return prev, Stopped{}, err
	}
	return prev, s.releaseNow(ctx, userID), nil
}

// SessionInfo is one holder as /admin/sessions shows it.
type SessionInfo struct {
	UserID string
	Status queue.State
	Lane   string
	// Waited is from joining to admission; Played from the first heartbeat to now (0 before).
	Waited, Played time.Duration
}

// Sessions lists up to limit holders, the longest playing first.
func (s *Service) Sessions(ctx context.Context, limit int) ([]SessionInfo, error) {
	hs, err := s.op.Holders(ctx, limit)
	if err != nil {
		return nil, err
	}
	now := s.opts.Now()
	out := make([]SessionInfo, 0, len(hs))
	for _, h := range hs {
		si := SessionInfo{UserID: h.UserID, Status: h.State, Lane: h.Lane}
		if !h.JoinedAt.IsZero() && !h.AdmittedAt.IsZero() {
			si.Waited = h.AdmittedAt.Sub(h.JoinedAt)
		}
		if !h.StartedAt.IsZero() {
			si.Played = max(now.Sub(h.StartedAt), 0)
		}
		out = append(out, si)
	}
	return out, nil
}

// Records pages the finished sessions, oldest first (see queue.Queue.Records).
func (s *Service) Records(ctx context.Context, after string, limit int) ([]queue.Record, string, error) {
	return s.op.Records(ctx, after, limit)
}

// NewestRecords are the newest limit finished sessions, oldest first.
func (s *Service) NewestRecords(ctx context.Context, limit int) ([]queue.Record, error) {
	return s.op.Newest(ctx, limit)
}

// History is the queue's per-minute counters of the last day.
func (s *Service) History(ctx context.Context) ([]queue.Minute, error) {
	return s.op.History(ctx, s.opts.Now().Add(-queue.HistoryWindow))
}

// OperatorStats is Stats for /stats: the counts, with the ETA's measured error over the last
// hour, which costs a read of the recent admissions and so is left out of the per-instance
// rate cache.
func (s *Service) OperatorStats(ctx context.Context) (queue.Stats, error) {
	st, err := s.line.Stats(ctx)
	if err != nil {
		return st, err
	}
	st.ETAErrorPct, st.ETASamples, err = s.op.ETAError(ctx, s.opts.Now().Add(-time.Hour))
	return st, err
}

// ShuffleSeed is the seed of a scheduled opening's shuffle once the queue has opened (it is
// secret before), else "".
func (s *Service) ShuffleSeed() string {
	if s.opts.OpensAt.IsZero() || s.opts.Now().Before(s.opts.OpensAt) {
		return ""
	}
	return s.opts.ShuffleSeed
}

// annotate adds to an answer what the operator says to everyone: the notice and whether
// admission is paused.
func (s *Service) annotate(ctx context.Context) func(View, error) (View, error) {
	return func(v View, err error) (View, error) {
		if err == nil {
			c := s.controls.get(ctx)
			v.Notice, v.Paused = c.Notice, c.Paused
		}
		return v, err
	}
}

// limit adds the session limit to a heartbeat answer: the time left, and a warning during the
// last SessionWarning.
func (s *Service) limit(v *View, started time.Time) {
	if s.opts.MaxSession <= 0 || started.IsZero() {
		return
	}
	left := max(s.opts.MaxSession-s.opts.Now().Sub(started), 0)
	v.Remaining, v.Limited = left, true
	if left <= s.opts.SessionWarning {
		in := fmt.Sprintf("%d min", int(math.Ceil(left.Minutes())))
		if left < time.Minute {
			in = "less than a minute"
		}
		v.Warning = "Your session ends in " + in + " because of its time limit. Save your progress."
	}
}

// opening fills in a Queued answer before a scheduled opening: how long until it, and no
// place (the order is drawn at the opening); polls spread over the last seconds before it.
func (s *Service) opening(v *View) {
	if v.Status != StatusQueued || s.opts.OpensAt.IsZero() {
		return
	}
	until := s.opts.OpensAt.Sub(s.opts.Now())
	if until <= 0 {
		return
	}
	v.OpensIn, v.Position, v.ETA = until, 0, 0
	spread := time.Duration(float64(s.opts.PollMin) * 5 * s.opts.Jitter())
	v.NextPoll = min(s.opts.PollMax, until+spread)
}
