package reaper

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"time"

	"github.com/carqueue/carqueue/shared/car"
	"github.com/carqueue/carqueue/shared/queue"
	"github.com/carqueue/carqueue/shared/session"
)

// tally counts results from parallel workers into one report.
type tally struct {
	mu  sync.Mutex
	rep *Report
}

func (t *tally) add(f func(*Report)) {
	t.mu.Lock()
	defer t.mu.Unlock()
	f(t.rep)
}

// countErr files an error under its CAR code, or as another error. Once the run's context
// ended (run time over, lease lost), errors that are no CAR answer are its consequence, not
// news, and are not counted.
func (t *tally) countErr(ctx context.Context, err error) {
	if err == nil {
		return
	}
	var ce *car.Error
	isCAR := errors.As(err, &ce) && ce.Code != ""
	if ctx.Err() != nil && !isCAR {
		return
	}
	t.add(func(r *Report) {
		if isCAR {
			r.CARErrors[ce.Code]++
		} else {
			r.OtherErrors++
		}
	})
}

// admission is the admitting state of one run: how many users the next round may claim, and
// whether (or until when) admitting is stopped.
type admission struct {
	done        int       // claims taken this run (MaxAdmit bounds it)
	width       int       // the most users the next round claims: Parallel, 1 after a Halt until an admission succeeds
	pausedUntil time.Time // by the run's clock: no claim before
	stopped     bool      // no more claims this run (credentials refused, or a Halt without a Pause)
}

// rounds runs reap, release and admit over and over: at once again after a round that did
// something, after Pause after one that did not (or whose admissions halted), until the run
// time ends, or until a round finds nothing to do while nobody waits in line (without a
// Pause: until a round finds nothing to do). Each round checks the lease before each change
// it makes.
func (r *Reaper) rounds(ctx context.Context, k *keeper, t *tally, start time.Time) error {
	a := &admission{width: r.opts.Parallel}
	var end time.Time
	if r.opts.RunTime > 0 {
		end = start.Add(r.opts.RunTime)
	}
	for {
		if !k.renewIfDue(ctx) || !k.holding(ctx) {
			return nil
		}
		if !end.IsZero() && !r.opts.Now().Before(end) {
			// The run time, by the run's clock (the context's deadline is real time).
			t.add(func(rep *Report) { rep.Ended = EndedRunTime })
			return nil
		}
		t.add(func(rep *Report) { rep.Rounds++ })
		reaped, err := r.reap(ctx, k, t)
		if err != nil {
			return stepErr(ctx, err)
		}
		released, err := r.release(ctx, k, t)
		if err != nil {
			return stepErr(ctx, err)
		}
		tried, halted, err := r.admit(ctx, k, t, a)
		if err != nil {
			return stepErr(ctx, err)
		}
		if (reaped || released || tried) && !halted {
			continue
		}
		if r.opts.Pause > 0 && !halted {
			// Nothing to do now. Worth waiting for only while someone waits: then a slot that
			// frees must be handed on at once. Otherwise the next timer run is soon enough.
			st, err := r.q.Stats(ctx)
			if err != nil {
				return stepErr(ctx, err)
			}
			if st.Queued == 0 {
				t.add(func(rep *Report) { rep.Ended = EndedIdle })
				return nil
			}
		}
		if r.opts.Pause == 0 {
			t.add(func(rep *Report) { rep.Ended = EndedIdle })
			return nil
		}
		if !r.sleep(ctx, r.opts.Pause) {
			return nil
		}
	}
}

// stepErr is a step's error, unless the run's context ended (the lease was lost, the run time
// passed): then the failure is that ending's, already in the report, and no queue error.
func stepErr(ctx context.Context, err error) error {
	if ctx.Err() != nil {
		return nil
	}
	return err
}

// reap drops stale users in batches until Reap says there is no more, at most MaxReapBatches
// per round. It reports whether anything was dropped or returned.
func (r *Reaper) reap(ctx context.Context, k *keeper, t *tally) (bool, error) {
	did := false
	t.mu.Lock()
	held := t.rep.ReapHeldUntil
	t.mu.Unlock()
	if r.opts.Now().Before(held) {
		// The system was down: nobody is charged for it until everyone had a full timeout to
		// come back (queue/outage.go).
		return false, nil
	}
	for range r.opts.MaxReapBatches {
		if !k.holding(ctx) {
			return did, nil
		}
		res, err := r.q.Reap(ctx, r.opts.Batch)
		if err != nil {
			return did, err // the queue names the script
		}
		t.add(func(rep *Report) {
			for reason, n := range res.Dropped {
				rep.Reaped[reason] += n
				did = did || n > 0
			}
			rep.ExpiredClaims += res.ExpiredClaims
		})
		did = did || res.ExpiredClaims > 0
		if !res.More {
			return did, nil
		}
	}
	return did, nil
}

// release destroys the sessions of Releasing users whose attempt is due, Parallel at a time,
// and reports whether any slot was freed. A failed release leaves the user Releasing (its slot
// held) for a later round, after its backoff; a busy user (a /stop releasing it right now) is
// tried again after a pause.
func (r *Reaper) release(ctx context.Context, k *keeper, t *tally) (bool, error) {
	if !k.holding(ctx) {
		return false, nil
	}
	users, err := r.q.Releasing(ctx, r.opts.Batch)
	if err != nil {
		return false, err
	}
	var freed atomic.Bool
	parallel(r.opts.Parallel, len(users), func(i int) {
		if !k.holding(ctx) {
			return
		}
		if err := r.s.Release(ctx, users[i]); err != nil {
			t.countErr(ctx, err)
			return
		}
		freed.Store(true)
		t.add(func(r *Report) { r.Released++ })
	})
	return freed.Load(), nil
}

// admit claims users from the head while slots are free, at most a.width in this round, and
// admits them Parallel at a time. tried reports whether any claim was attempted; halted,
// whether an admission said Halt: then the claims not yet tried go back to the front untried
// (the next claim would only retry a requeued user at once and hammer CAR), and admitting
// stops for Pause (CAR had no idle slot, was unavailable, the user was busy) or, when CAR
// rejected our credentials (or there is no Pause), for the rest of the run. After a Halt the
// next round claims one user, and the width doubles back to Parallel with each round that
// admitted someone.
func (r *Reaper) admit(ctx context.Context, k *keeper, t *tally, a *admission) (tried, halted bool, err error) {
	if a.stopped || a.done >= r.opts.MaxAdmit || r.opts.Now().Before(a.pausedUntil) || !k.holding(ctx) {
		return false, false, nil
	}
	claims, err := r.q.Claim(ctx, min(a.width, r.opts.MaxAdmit-a.done))
	if err != nil || len(claims) == 0 {
		return false, false, err
	}
	a.done += len(claims)
	var halt, stopRun, admitted atomic.Bool
	parallel(r.opts.Parallel, len(claims), func(i int) {
		c := claims[i]
		if halt.Load() || ctx.Err() != nil {
			r.giveBack(ctx, t, c)
			return
		}
		res, err := r.s.Admit(ctx, c)
		if res.Halt {
			halt.Store(true)
			if res.Outcome == session.Refused {
				stopRun.Store(true) // credentials: every call would fail the same way
			}
		}
		t.countErr(ctx, res.Cause)
		t.countErr(ctx, err)
		t.add(func(r *Report) {
			switch res.Outcome {
			case session.Admitted:
				r.Admitted++
				admitted.Store(true)
			case session.Requeued:
				r.Requeued++
			case session.Refused:
				r.Refused++
			case session.LeaseLost:
				r.LeaseLost++
			}
		})
	})
	switch {
	case stopRun.Load() || (halt.Load() && r.opts.Pause == 0):
		a.stopped = true
	case halt.Load():
		a.pausedUntil, a.width = r.opts.Now().Add(r.opts.Pause), 1
		t.add(func(r *Report) { r.Pauses++ })
	case admitted.Load():
		a.width = min(2*a.width, r.opts.Parallel)
	}
	return true, halt.Load(), nil
}

// giveBack returns an untried claim to the front. It runs even when the lease is lost: it
// only undoes this run's own claim (Requeue checks the claim's token), which is better than
// leaving the user Admitting until its claim lease ends.
func (r *Reaper) giveBack(ctx context.Context, t *tally, c queue.Claim) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), session.BookkeepingTimeout)
	defer cancel()
	if err := r.q.Requeue(ctx, c); err != nil {
		// The claim lease will return the user anyway.
		t.countErr(ctx, err)
		return
	}
	t.add(func(r *Report) { r.Requeued++ })
}

// parallel runs f(0..n-1) on at most workers goroutines and waits for all.
func parallel(workers, n int, f func(i int)) {
	var wg sync.WaitGroup
	next := make(chan int)
	for range min(workers, n) {
		wg.Go(func() {
			for i := range next {
				f(i)
			}
		})
	}
	for i := range n {
		next <- i
	}
	close(next)
	wg.Wait()
}
