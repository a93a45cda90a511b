package reaper

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/carqueue/carqueue/shared/queue"
)

// keeper keeps a run's lease alive: it extends the lease every Lease/3 from its own goroutine
// (loop: the run may be inside CAR calls for a while), and before a round when half the lease
// has passed since the last extension (renewIfDue: the timer is late, or, in tests, the clock
// moved without it). The first renewal that fails or finds the lease lost cancels the run's
// context at once, so the run stops before its next change.
type keeper struct {
	r      *Reaper
	lease  *queue.Lease
	cancel context.CancelCauseFunc
	done   chan struct{} // closed when loop returns

	mu       sync.Mutex // one renewal at a time; guards the fields below
	last     time.Time  // by the run's clock: when the lease was last taken or extended
	renewals int
	err      error // the renewal's error that ended the run (Redis failed)
}

// every is the spacing of renewals: three in each lease, so that two may fail or be slow
// before it runs out.
func (k *keeper) every() time.Duration { return k.r.opts.Lease / 3 }

// loop renews the lease every Lease/3 until ctx ends or a renewal fails.
func (k *keeper) loop(ctx context.Context) {
	defer close(k.done)
	for {
		select {
		case <-ctx.Done():
			return
		case <-k.r.after(k.every()):
		}
		if ctx.Err() != nil || !k.renew(ctx, true) {
			return
		}
	}
}

// renewIfDue extends the lease if half of it has passed since the last extension.
func (k *keeper) renewIfDue(ctx context.Context) bool { return k.renew(ctx, false) }

// renew extends the lease (always, or only when due) and cancels ctx when that fails. A
// renewal slower than Lease/3 counts as failed: by then the lease may be close to its end.
func (k *keeper) renew(ctx context.Context, always bool) bool {
	k.mu.Lock()
	defer k.mu.Unlock()
	now := k.r.opts.Now()
	if !always && now.Sub(k.last) < k.r.opts.Lease/2 {
		return true
	}
	rctx, cancel := context.WithTimeout(ctx, k.every())
	defer cancel()
	ok, err := k.lease.Extend(rctx, k.r.opts.Lease)
	switch {
	case err != nil:
		if ctx.Err() == nil { // not just the run ending while it renewed
			k.err = err
			k.cancel(fmt.Errorf("%w: %v", errRenewal, err))
		}
		return false
	case !ok:
		k.cancel(errLeaseLost)
		return false
	}
	k.last = now
	k.renewals++
	return true
}

// holding reports whether the run may make its next change: its context is alive and, by the
// queue's clock, its lease has not run out since it was last extended (a renewal that comes
// too late, say after a long GC pause, must not let the run carry on). When the lease ran out
// it cancels the run.
func (k *keeper) holding(ctx context.Context) bool {
	if ctx.Err() != nil {
		return false
	}
	if !k.lease.Held() {
		k.cancel(errLeaseLost)
		return false
	}
	return true
}
