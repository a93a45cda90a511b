// Package reaper is the timer-triggered run that keeps the line moving when no request does:
// it drops users who went quiet, destroys the CAR sessions of users who left (freeing their
// slots only once CAR confirmed), and admits users from the head while slots are free.
//
// A run works in rounds: reap, release, admit, again and again, pausing (Options.Pause) when
// a round found nothing to do, until its run time ends (Options.RunTime) or a round finds
// nothing to do while nobody waits in line (then the next timer run is soon enough). So while
// people wait, a slot freed in the middle of a run is handed on within a round or a pause, and
// a user whose deadline passes mid-run is reaped then, not at the next run.
//
// One run works at a time, under a short lease (Options.Lease) that the run extends every
// third of it while it works, and checks before every change it makes (each reap batch, each
// release, each claim). A run whose lease is lost (its renewal failed, or found the lease
// taken, or came too late) stops before its next change; a run that dies (a crashed
// invocation, kill -9, a Redis restart) holds up the next one only until its short lease runs
// out. Overlapping runs after a lost lease would still be safe, only wasteful: the claim
// script never admits beyond the capacity, whoever calls it, and every CAR call of a user runs
// under its per-user lock. The lease is about not doing the same work twice.
//
// Every step is safe to repeat and to abandon halfway: a run that dies after ApplyConcurrent
// leaves its user Admitting under a claim lease, which a later run's Reap returns to the front.
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

// Queue is what a run needs of the queue: its lease, the sweep, the releasing list, the
// claims, and whether anyone waits (Stats). *queue.Queue satisfies it.
type Queue interface {
	Stats(ctx context.Context) (queue.Stats, error)
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

// Options tune a run. The settings are required (their defaults live in shared/config), except
// RunTime and Pause, whose zero values make a run one pass over the work (what the tests of
// other packages use).
type Options struct {
	Batch int // users per Reap batch and per Releasing listing (REAPER_BATCH)
	// Lease is the ttl of the reaper lease (REAPER_LEASE). A run extends it every Lease/3
	// while it works, so it need only outlast a slow Redis round trip, not a run.
	Lease time.Duration
	// RunTime is how long one run works at most (REAPER_RUN_TIME); the invocation's deadline
	// bounds it too. 0: no bound but ctx (only without a Pause, when a run ends at its first
	// round with nothing to do).
	RunTime time.Duration
	// Pause is how long a run waits before its next round when a round found nothing to do
	// while someone waits in line (with nobody waiting, the run ends), and how long it stops
	// admitting after an admission said Halt for a transient reason (CAR had no idle slot, was
	// unavailable, the user was busy) (REAPER_PAUSE). 0: the run ends at the first round with
	// nothing to do, and a Halt stops admitting for the run.
	Pause    time.Duration
	MaxAdmit int // admissions attempted per run; 0: as many as free capacity allows (REAPER_MAX_ADMIT)
	// Parallel is how many CAR calls, releases and admissions run at once, and the most users
	// one round claims (REAPER_PARALLEL).
	Parallel int
	// MaxReapBatches bounds the Reap batches of one round, so a huge backlog cannot stall
	// the other steps; the next round goes on (REAPER_MAX_BATCHES).
	MaxReapBatches int
	Logger         *slog.Logger     // [slog.Default()]
	Now            func() time.Time // the clock of the run time and of the renewals' spacing [time.Now]
}

// Reaper runs the timer work for one queue.
type Reaper struct {
	q    Queue
	s    Sessions
	opts Options

	// Tests replace these: the timer between two lease renewals, and the wait between rounds
	// (false when ctx ended first).
	after func(time.Duration) <-chan time.Time
	sleep func(ctx context.Context, d time.Duration) bool
}

// minLease is the shortest lease New accepts, so that a third of it is at least a millisecond.
// In production it must be far longer, since a renewal every third of it must fit a slow
// Redis round trip: shared/config requires REAPER_LEASE ≥ 3s.
const minLease = 3 * time.Millisecond

// New returns a reaper for a queue and its sessions.
func New(q Queue, s Sessions, opts Options) (*Reaper, error) {
	switch {
	case q == nil || s == nil:
		return nil, errors.New("new reaper: queue and sessions are required")
	case opts.Batch < 1 || opts.Batch > queue.MaxBatch:
		return nil, fmt.Errorf("new reaper: Options.Batch must be 1-%d, got %d", queue.MaxBatch, opts.Batch)
	case opts.Lease < minLease:
		return nil, fmt.Errorf("new reaper: Options.Lease must be at least %v, got %v", minLease, opts.Lease)
	case opts.RunTime < 0:
		return nil, fmt.Errorf("new reaper: Options.RunTime must be >= 0, got %v", opts.RunTime)
	case opts.Pause < 0:
		return nil, fmt.Errorf("new reaper: Options.Pause must be >= 0, got %v", opts.Pause)
	case opts.Pause > 0 && opts.RunTime == 0:
		return nil, fmt.Errorf("new reaper: Options.RunTime must be set when Options.Pause is (%v), or a run would never end", opts.Pause)
	case opts.MaxAdmit < 0:
		return nil, fmt.Errorf("new reaper: Options.MaxAdmit must be >= 0, got %d", opts.MaxAdmit)
	case opts.Parallel < 1 || opts.Parallel > queue.MaxClaim:
		return nil, fmt.Errorf("new reaper: Options.Parallel must be 1-%d, got %d", queue.MaxClaim, opts.Parallel)
	case opts.MaxReapBatches < 1:
		return nil, fmt.Errorf("new reaper: Options.MaxReapBatches must be >= 1, got %d", opts.MaxReapBatches)
	}
	if opts.MaxAdmit == 0 {
		opts.MaxAdmit = math.MaxInt // queue.Claim stops at the free capacity; the run time bounds it too
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	return &Reaper{q: q, s: s, opts: opts, after: time.After, sleep: sleep}, nil
}

// Why a run ended (Report.Ended).
const (
	EndedIdle      = "idle"         // a round found nothing to do, and nobody waits (or there is no Pause)
	EndedRunTime   = "run_time"     // RunTime passed
	EndedLeaseLost = "lease_lost"   // a renewal found the lease taken over or gone, or it ran out
	EndedRenewal   = "renew_failed" // a renewal failed (Redis): the lease may be lost, so the run stopped
	EndedCancelled = "cancelled"    // the invocation's context ended
	EndedError     = "queue_error"  // a queue call failed (the run's error)
)

// Causes of the run context's cancellation, told apart in Report.Ended.
var (
	errRunTime   = errors.New("the run time is over")
	errLeaseLost = errors.New("the reaper lease was lost")
	errRenewal   = errors.New("the reaper lease could not be renewed")
)

// Report says what one run did; it is also logged as one line.
type Report struct {
	Skipped       bool // another run held the lease; nothing was done
	Rounds        int  // reap–release–admit rounds
	Ended         string
	Reaped        map[queue.Reason]int
	ExpiredClaims int // admissions whose claim lease ran out, returned to the front
	Released      int // sessions CAR confirmed destroyed, slots freed
	Admitted      int
	Requeued      int
	Refused       int
	LeaseLost     int // admissions whose claim was taken over (not the reaper lease: see Ended)
	Pauses        int // times admission paused after a Halt
	Renewals      int // extensions of the reaper lease
	// ReapHeldUntil is set when reaping was held this run: the system had been down (the
	// lease's outage watch, queue/outage.go) and users get a full timeout to show up again.
	ReapHeldUntil time.Time
	CARErrors     map[string]int // by CAR error code
	OtherErrors   int            // failures that were not CAR answers (Redis, timeouts, busy user)
	Duration      time.Duration
}

// Run does one timer run: take the lease, then rounds of reap, release and admit until the
// run time ends or nothing is left to do while nobody waits. It returns an error only when the
// queue itself (Redis) failed; CAR trouble is in the report and handled by keeping users in
// place, and a lost lease only ends the run.
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

	work, cancelWork := context.WithCancelCause(ctx)
	defer cancelWork(nil)
	if r.opts.RunTime > 0 {
		var cancelTime context.CancelFunc
		work, cancelTime = context.WithTimeoutCause(work, r.opts.RunTime, errRunTime)
		defer cancelTime()
	}
	rep.ReapHeldUntil = lease.ReapHeldUntil()
	if !rep.ReapHeldUntil.After(start) {
		rep.ReapHeldUntil = time.Time{}
	}
	k := &keeper{r: r, lease: lease, cancel: cancelWork, last: start, done: make(chan struct{})}
	go k.loop(work)

	t := &tally{rep: &rep}
	err = r.rounds(work, k, t, start)
	cancelWork(nil)
	<-k.done // no renewal after the lease is given back
	if err == nil && k.err != nil {
		err = k.err
	}
	rep.Ended = ended(ctx, work, err, rep.Ended)
	rep.Renewals = k.renewals
	rep.Duration = r.opts.Now().Sub(start)
	r.log(rep, err)
	return rep, err
}

// ended names why the run stopped: the cause of the work context's end, else what rounds said.
func ended(parent, work context.Context, err error, byRounds string) string {
	switch cause := context.Cause(work); {
	case err != nil && !errors.Is(cause, errRenewal):
		return EndedError
	case errors.Is(cause, errLeaseLost):
		return EndedLeaseLost
	case errors.Is(cause, errRenewal):
		return EndedRenewal
	case parent.Err() != nil:
		return EndedCancelled
	case errors.Is(cause, errRunTime):
		return EndedRunTime
	}
	return byRounds
}

// log writes the run's one line: warn when the queue failed or the lease was lost, info
// otherwise.
func (r *Reaper) log(rep Report, err error) {
	reaped := make(map[string]int, len(rep.Reaped))
	for k, v := range rep.Reaped {
		reaped[string(k)] = v
	}
	level, errText := slog.LevelInfo, ""
	if err != nil {
		level, errText = slog.LevelWarn, err.Error()
	}
	if rep.Ended == EndedLeaseLost {
		level = slog.LevelWarn
	}
	r.opts.Logger.Log(context.Background(), level, "reaper run",
		"ended", rep.Ended, "rounds", rep.Rounds, "renewals", rep.Renewals,
		"reaped", reaped, "expired_claims", rep.ExpiredClaims, "released", rep.Released,
		"admitted", rep.Admitted, "requeued", rep.Requeued, "refused", rep.Refused,
		"lease_lost", rep.LeaseLost, "pauses", rep.Pauses, "car_errors", rep.CARErrors, "other_errors", rep.OtherErrors,
		"duration_ms", rep.Duration.Milliseconds(), "reap_held_s", heldSeconds(rep, r.opts.Now()), "err", errText)
}

// heldSeconds is how long reaping stays held after the run (0: not held).
func heldSeconds(rep Report, now time.Time) float64 {
	if rep.ReapHeldUntil.IsZero() {
		return 0
	}
	return max(rep.ReapHeldUntil.Sub(now).Round(time.Second).Seconds(), 0)
}

// sleep waits d, or until ctx ends (false).
func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}
