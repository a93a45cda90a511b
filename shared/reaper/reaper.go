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
	"log/slog"
	"math"
	"time"

	"github.com/carqueue/carqueue/shared/admission"
	"github.com/carqueue/carqueue/shared/queue"
	"github.com/redis/go-redis/v9"
)

// bookkeepingTimeout bounds queue updates made after the run's context ended.
const bookkeepingTimeout = 5 * time.Second

// Options tune a run. Zero values take the defaults in brackets.
type Options struct {
	Batch    int           // users per Reap batch and per Releasing listing [50: each batch holds Redis under 2 ms at 1M users, see BENCHMARKS.md]
	Lease    time.Duration // reaper lease; a run stops working before it ends [50s]
	MaxAdmit int           // admissions attempted per run [0: as many as free capacity allows]
	Parallel int           // concurrent CAR calls (releases, admissions) [8]
	// MaxReapBatches bounds the Reap loop per run, so a huge backlog cannot stall the other
	// steps; the next run continues [200: 10,000 users at the default batch].
	MaxReapBatches int
	Logger         *slog.Logger
	Now            func() time.Time
}

func (o Options) withDefaults() Options {
	if o.Batch <= 0 {
		o.Batch = 50
	}
	if o.Lease <= 0 {
		o.Lease = 50 * time.Second
	}
	if o.MaxAdmit <= 0 {
		o.MaxAdmit = math.MaxInt // queue.Claim stops at the free capacity; the run's deadline bounds it too
	}
	if o.Parallel <= 0 {
		o.Parallel = 8
	}
	if o.MaxReapBatches <= 0 {
		o.MaxReapBatches = 200
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	return o
}

// Reaper runs the timer work for one queue.
type Reaper struct {
	rdb  *redis.Client
	key  string
	q    queue.Interface
	a    *admission.Admitter
	opts Options
}

// New returns a reaper for the queue queueID. rdb holds the lease (same Redis as the queue).
func New(rdb *redis.Client, queueID string, q queue.Interface, a *admission.Admitter, opts Options) *Reaper {
	return &Reaper{rdb: rdb, key: leaseKey(queueID), q: q, a: a, opts: opts.withDefaults()}
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
	value, ok, err := acquire(ctx, r.rdb, r.key, start, r.opts.Lease)
	if err != nil {
		return rep, err
	}
	if !ok {
		rep.Skipped = true
		r.opts.Logger.Info("reaper run skipped: another run holds the lease")
		return rep, nil
	}
	defer func() {
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), bookkeepingTimeout)
		defer cancel()
		if err := release(rctx, r.rdb, r.key, value); err != nil {
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
