package reaper

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"github.com/carqueue/carqueue/shared/queue"
)

// Member is one queue of a Fleet.
type Member struct {
	ID     string
	Reaper *Reaper
	// SyncCARTotal re-reads CAR's Total of a Capacity-0 queue (session.Service.SyncCARTotal);
	// nil when the queue's capacity is configured.
	SyncCARTotal func(ctx context.Context) error
	// Deliver posts the queue's undelivered records to the webhook; nil without WEBHOOK_URL.
	// It runs after the queue's reaper run (or alone, for a queue with nobody in it), outside
	// the Parallel slots of the admission work (deliveries have their own Parallel slots), so
	// a slow endpoint never delays another queue's admissions; its failure (the endpoint is
	// down) never fails the invocation: the records wait.
	Deliver func(ctx context.Context) (int, error)
}

// Probe reports, in the order of the members, what each queue needs (queue.Due over the
// members' queues): one round trip per Redis primary for any number of queues.
type Probe func(ctx context.Context) ([]queue.Work, error)

// FleetOptions tune a Fleet.
type FleetOptions struct {
	// Parallel is how many queues one invocation works at once (REAPER_QUEUES).
	Parallel int
	Logger   *slog.Logger // [slog.Default()]
}

// Fleet is the timer run of a deployment of many queues. Each invocation probes every queue
// at once (Probe), then runs the Reaper of each queue that has users, Parallel at a time,
// starting at a different queue each time so that no queue waits behind the same others.
// Every queue's run takes that queue's own lease, so invocations that overlap (SCF timer runs
// can) share the busy queues instead of waiting for one another: a queue whose lease another
// invocation holds is skipped at the cost of one round trip.
type Fleet struct {
	members []Member
	probe   Probe
	opts    FleetOptions
	next    atomic.Uint64 // where the next invocation starts, with a random offset per instance
}

// NewFleet returns the fleet of members (at least one, each with a Reaper), probed by probe.
func NewFleet(members []Member, probe Probe, opts FleetOptions) (*Fleet, error) {
	switch {
	case len(members) == 0:
		return nil, errors.New("new fleet: no queues")
	case probe == nil:
		return nil, errors.New("new fleet: probe is nil")
	case opts.Parallel < 1:
		return nil, fmt.Errorf("new fleet: Options.Parallel must be >= 1, got %d", opts.Parallel)
	}
	for i, m := range members {
		if m.ID == "" || m.Reaper == nil {
			return nil, fmt.Errorf("new fleet: member %d needs an ID and a Reaper", i)
		}
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	f := &Fleet{members: members, probe: probe, opts: opts}
	f.next.Store(rand.Uint64N(uint64(len(members))))
	return f, nil
}

// FleetReport says what one invocation did.
type FleetReport struct {
	Probed    int               // queues probed
	Busy      int               // queues with users (or a departure to forget)
	Runs      map[string]Report // the runs, by queue id (Skipped: another invocation held the lease)
	CARTotals int               // CAR Totals re-read
	Delivered int               // records posted to the webhook
	// DeliveryFailures counts queues whose webhook delivery failed (the records wait for the
	// backoff; the hook logs why).
	DeliveryFailures int
	NotRun           int // busy queues left for the next invocation (this one ran out of time)
	Duration         time.Duration
}

// Run is one timer invocation over every queue. It returns the errors of the probe or of the
// queues that failed (joined, each naming its queue); the other queues' work stands.
func (f *Fleet) Run(ctx context.Context) (FleetReport, error) {
	start := time.Now()
	rep := FleetReport{Probed: len(f.members), Runs: map[string]Report{}}
	work, err := f.probe(ctx)
	if err == nil && len(work) != len(f.members) {
		err = fmt.Errorf("probe answered %d queues of %d", len(work), len(f.members))
	}
	if err != nil {
		err = fmt.Errorf("probe %d queues: %w", len(f.members), err)
		f.opts.Logger.Warn("reaper invocation", "probed", len(f.members), "err", err.Error())
		return rep, err
	}
	n := uint64(len(f.members))
	first := f.next.Add(1) % n

	var (
		mu   sync.Mutex
		errs []error
		wg   sync.WaitGroup
	)
	// sem bounds the queues whose admission work (CAR Total, reaper run) runs at once; dsem
	// bounds the webhook deliveries, apart: a delivery waits for a slow or hanging endpoint
	// (up to the hook's own budget), and it must not hold a slot that another queue's
	// admissions are waiting for.
	sem := make(chan struct{}, f.opts.Parallel)
	dsem := make(chan struct{}, f.opts.Parallel)
	fail := func(id string, err error) {
		mu.Lock()
		errs = append(errs, fmt.Errorf("queue %s: %w", id, err))
		mu.Unlock()
	}
	for k := range n {
		i := (first + k) % n
		m, w := f.members[i], work[i]
		deliver := w.Records && m.Deliver != nil
		if !w.Users && !(w.CARTotal && m.SyncCARTotal != nil) && !deliver {
			continue
		}
		if w.Users {
			rep.Busy++
		}
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
			if w.Users {
				rep.NotRun++
			}
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			if w.CARTotal && m.SyncCARTotal != nil {
				if err := m.SyncCARTotal(ctx); err != nil {
					fail(m.ID, err) // the stored Total stays; the next invocation tries again
				} else {
					mu.Lock()
					rep.CARTotals++
					mu.Unlock()
				}
			}
			if w.Users {
				r, err := m.Reaper.Run(ctx)
				mu.Lock()
				rep.Runs[m.ID] = r
				mu.Unlock()
				if err != nil {
					fail(m.ID, err)
				}
			}
			<-sem // the admission work is done: the next queue may start
			if !deliver {
				return
			}
			select {
			case dsem <- struct{}{}:
			case <-ctx.Done():
				return // the records wait for the next invocation
			}
			defer func() { <-dsem }()
			n, err := m.Deliver(ctx)
			mu.Lock()
			rep.Delivered += n
			if err != nil {
				rep.DeliveryFailures++
			}
			mu.Unlock()
		}()
	}
	wg.Wait()
	rep.Duration = time.Since(start)
	err = errors.Join(errs...)
	f.log(rep, err)
	return rep, err
}

// log writes the invocation's one line: what each queue that had work did.
func (f *Fleet) log(rep FleetReport, err error) {
	queues := make(map[string]string, len(rep.Runs))
	skipped := 0
	for id, r := range rep.Runs {
		if r.Skipped {
			skipped++
			queues[id] = "skipped: lease held"
			continue
		}
		reaped := 0
		for _, n := range r.Reaped {
			reaped += n
		}
		queues[id] = fmt.Sprintf("ended %s after %d rounds: reaped %d, released %d, admitted %d, requeued %d, refused %d",
			r.Ended, r.Rounds, reaped, r.Released, r.Admitted, r.Requeued, r.Refused)
	}
	level, errText := slog.LevelInfo, ""
	if err != nil {
		level, errText = slog.LevelWarn, err.Error()
	}
	f.opts.Logger.Log(context.Background(), level, "reaper invocation",
		"probed", rep.Probed, "busy", rep.Busy, "ran", len(rep.Runs)-skipped, "skipped", skipped,
		"not_run", rep.NotRun, "car_totals", rep.CARTotals, "delivered", rep.Delivered, "delivery_failures", rep.DeliveryFailures, "queues", queues,
		"duration_ms", rep.Duration.Milliseconds(), "err", errText)
}
