// Package reaper is the timer-triggered run that keeps the line moving when no request does:
// it drops users who went quiet, destroys the CAR sessions of users who left (freeing their
// slots only once CAR confirmed), and admits users from the head while slots are free.
//
// Every step is safe to repeat and to abandon halfway: a run that dies after ApplyConcurrent
// leaves its user Admitting under a claim lease, which the next run's Reap returns to the front.
package reaper

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"time"

	"github.com/carqueue/carqueue/shared/queue"
	"github.com/carqueue/carqueue/shared/session"
)

// Queue is what a run needs of the queue: its lease, the sweep, the releasing list and the
// claims. *queue.Queue satisfies it.
type Queue interface {
	TakeLease(ctx context.Context, ttl time.Duration) (*queue.Lease, bool, error)
	Reap(ctx context.Context, batch int) (queue.ReapResult, error)
	Releasing(ctx context.Context, max int) ([]string, error)
	Claim(ctx context.Context, max int) ([]queue.Claim, error)
	Requeue(ctx context.Context, c queue.Claim) error
}

// Sessions is the admission and release path, shared with the HTTP routes;
// *session.Service satisfies it.
type Sessions interface {
	Admit(ctx context.Context, c queue.Claim) (session.Admission, error)
	Release(ctx context.Context, userID string) error
}

// Options tune a run. The settings are required (their defaults live in shared/config).
type Options struct {
	Batch    int           // users per Reap batch and per Releasing listing (REAPER_BATCH)
	Lease    time.Duration // reaper lease; a run stops working before it ends (REAPER_LEASE)
	MaxAdmit int           // admissions attempted per run; 0: as many as free capacity allows (REAPER_MAX_ADMIT)
	Parallel int           // concurrent CAR calls, releases and admissions (REAPER_PARALLEL)
	// MaxReapBatches bounds the Reap loop per run, so a huge backlog cannot stall the other
	// steps; the next run continues (REAPER_MAX_BATCHES).
	MaxReapBatches int
	Logger         *slog.Logger     // [slog.Default()]
	Now            func() time.Time // [time.Now]
}

// Reaper runs the timer work for one queue.
type Reaper struct {
	q    Queue
	s    Sessions
	opts Options
}

// New returns a reaper for a queue and its sessions.
func New(q Queue, s Sessions, opts Options) (*Reaper, error) {
	switch {
	case q == nil || s == nil:
		return nil, errors.New("new reaper: queue and sessions are required")
	case opts.Batch < 1 || opts.Batch > queue.MaxBatch:
		return nil, fmt.Errorf("new reaper: Options.Batch must be 1-%d, got %d", queue.MaxBatch, opts.Batch)
	case opts.Lease <= 0:
		return nil, fmt.Errorf("new reaper: Options.Lease must be > 0, got %v", opts.Lease)
	case opts.MaxAdmit < 0:
		return nil, fmt.Errorf("new reaper: Options.MaxAdmit must be >= 0, got %d", opts.MaxAdmit)
	case opts.Parallel < 1:
		return nil, fmt.Errorf("new reaper: Options.Parallel must be >= 1, got %d", opts.Parallel)
	case opts.MaxReapBatches < 1:
		return nil, fmt.Errorf("new reaper: Options.MaxReapBatches must be >= 1, got %d", opts.MaxReapBatches)
	}
	if opts.MaxAdmit == 0 {
		opts.MaxAdmit = math.MaxInt // queue.Claim stops at the free capacity; the run's deadline bounds it too
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	return &Reaper{q: q, s: s, opts: opts}, nil
}

// Report says what one run did; it is also logged as one line.
type Report struct {
	Skipped       bool // another run held the lease; nothing was done
	Reaped        map[queue.Reason]int
	ExpiredClaims int // admissions whose claim lease ran out, returned to the front
	Released      int // sessions CAR confirmed destroyed, slots freed
	Admitted      int
	Requeued      int
	Refused       int
	LeaseLost     int
	CARErrors     map[string]int // by CAR error code
	OtherErrors   int            // failures that were not CAR answers (Redis, timeouts, busy user)
	Duration      time.Duration
}

// Run does one timer run: lease, reap, release, admit. It returns an error only when the queue
// itself (Redis) failed; CAR trouble is in the report and handled by keeping users in place.
func (r *Reaper) Run(ctx context.Context) (Report, error) {
	start := r.opts.Now()
	rep := Report{Reaped: map[queue.Reason]int{}, CARErrors: map[string]int{}}
	lease, ok, err := r.q.TakeLease(ctx, r.opts.Lease)
	if err != nil {
		return rep, err
	}
	if !ok {
		rep.Skipped = true
		r.opts.Logger.Info("reaper run skipped: another run holds the lease")
		return rep, nil
	}
	defer func() {
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), session.BookkeepingTimeout)
		defer cancel()
		if err := lease.Release(rctx); err != nil {
			r.opts.Logger.Warn("reaper lease not released; it will expire", "err", err)
		}
	}()
	// Finish well inside the lease so that the next run never overlaps this one.
	ctx, cancel := context.WithTimeout(ctx, r.opts.Lease*9/10)
	defer cancel()

	t := &tally{rep: &rep}
	err = errors.Join(r.reap(ctx, &rep), r.release(ctx, t), r.admit(ctx, t))
	rep.Duration = r.opts.Now().Sub(start)
	r.log(rep, err)
	return rep, err
}

// log writes the run's one line: warn when the queue failed, info otherwise.
func (r *Reaper) log(rep Report, err error) {
	reaped := make(map[string]int, len(rep.Reaped))
	for k, v := range rep.Reaped {
		reaped[string(k)] = v
	}
	level, errText := slog.LevelInfo, ""
	if err != nil {
		level, errText = slog.LevelWarn, err.Error()
	}
	r.opts.Logger.Log(context.Background(), level, "reaper run",
		"reaped", reaped, "expired_claims", rep.ExpiredClaims, "released", rep.Released,
		"admitted", rep.Admitted, "requeued", rep.Requeued, "refused", rep.Refused,
		"lease_lost", rep.LeaseLost, "car_errors", rep.CARErrors, "other_errors", rep.OtherErrors,
		"duration_ms", rep.Duration.Milliseconds(), "err", errText)
}
