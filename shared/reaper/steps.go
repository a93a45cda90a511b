package reaper

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"

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

// countErr files an error under its CAR code, or as another error.
func (t *tally) countErr(err error) {
	if err == nil {
		return
	}
	var ce *car.Error
	t.add(func(r *Report) {
		if errors.As(err, &ce) && ce.Code != "" {
			r.CARErrors[ce.Code]++
		} else {
			r.OtherErrors++
		}
	})
}

// reap drops stale users in batches until Reap says there is no more, bounded per run.
func (r *Reaper) reap(ctx context.Context, rep *Report) error {
	for range r.opts.MaxReapBatches {
		res, err := r.q.Reap(ctx, r.opts.Batch)
		if err != nil {
			return err // the queue names the script
		}
		for reason, n := range res.Dropped {
			rep.Reaped[reason] += n
		}
		rep.ExpiredClaims += res.ExpiredClaims
		if !res.More {
			return nil
		}
	}
	return nil
}

// release destroys the sessions of Releasing users, Parallel at a time. A failed release leaves
// the user Releasing (its slot held) for the next run.
func (r *Reaper) release(ctx context.Context, t *tally) error {
	users, err := r.q.Releasing(ctx, r.opts.Batch)
	if err != nil {
		return err
	}
	parallel(r.opts.Parallel, len(users), func(i int) {
		if ctx.Err() != nil {
			return
		}
		if err := r.s.Release(ctx, users[i]); err != nil {
			t.countErr(err)
			return
		}
		t.add(func(r *Report) { r.Released++ })
	})
	return nil
}

// admit claims users from the head while slots are free and admits them, Parallel at a time.
// An admission that says Halt stops admitting for this run (a requeued user is back at the
// front, so the next claim would only retry it at once and hammer CAR; a credentials problem
// fails every call the same way); the next timer run tries again. Claims already taken when
// it stops go back to the front untried.
func (r *Reaper) admit(ctx context.Context, t *tally) error {
	var stop atomic.Bool
	for done := 0; done < r.opts.MaxAdmit && !stop.Load() && ctx.Err() == nil; {
		claims, err := r.q.Claim(ctx, min(r.opts.Parallel, r.opts.MaxAdmit-done))
		if err != nil {
			return err
		}
		if len(claims) == 0 {
			return nil
		}
		done += len(claims)
		parallel(r.opts.Parallel, len(claims), func(i int) {
			c := claims[i]
			if stop.Load() {
				r.giveBack(ctx, t, c)
				return
			}
			res, err := r.s.Admit(ctx, c)
			if res.Halt {
				stop.Store(true)
			}
			t.countErr(res.Cause)
			t.countErr(err)
			t.add(func(r *Report) {
				switch res.Outcome {
				case session.Admitted:
					r.Admitted++
				case session.Requeued:
					r.Requeued++
				case session.Refused:
					r.Refused++
				case session.LeaseLost:
					r.LeaseLost++
				}
			})
		})
	}
	return nil
}

// giveBack returns an untried claim to the front.
func (r *Reaper) giveBack(ctx context.Context, t *tally, c queue.Claim) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), session.BookkeepingTimeout)
	defer cancel()
	if err := r.q.Requeue(ctx, c); err != nil {
		// The claim lease will return the user anyway.
		t.countErr(err)
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
