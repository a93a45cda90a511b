package main

import (
	"context"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/tencentyun/scf-go-lib/events"
)

// maxTimerRuns bounds reaper runs in flight. SCF lets timer invocations overlap (the reaper's
// lease copes); the bound only keeps a stuck Redis from piling up goroutines here.
const maxTimerRuns = 16

// timer fires the reaper function every period, each run in its own goroutine as SCF may run
// timer invocations concurrently, until ctx ends; wait blocks until the runs in flight end.
type timer struct {
	fns      functions
	period   time.Duration
	log      *slog.Logger
	inFlight atomic.Int32
	runs     sync.WaitGroup
	done     chan struct{}
	fired    atomic.Int64
	failed   atomic.Int64
	skipped  atomic.Int64
}

func startTimer(ctx context.Context, fns functions, period time.Duration, log *slog.Logger) *timer {
	t := &timer{fns: fns, period: period, log: log, done: make(chan struct{})}
	go t.loop(ctx)
	return t
}

func (t *timer) loop(ctx context.Context) {
	defer close(t.done)
	tk := time.NewTicker(t.period)
	defer tk.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-tk.C:
			t.fire(ctx, now)
		}
	}
}

// fire starts one reaper run with the event SCF's timer trigger sends.
func (t *timer) fire(ctx context.Context, now time.Time) {
	if t.inFlight.Load() >= maxTimerRuns {
		t.skipped.Add(1)
		t.log.Warn("reaper runs pile up; skipping a tick", "in_flight", t.inFlight.Load())
		return
	}
	t.inFlight.Add(1)
	t.runs.Add(1)
	ev := events.TimerEvent{Type: "Timer", TriggerName: "reaper", Time: now.UTC().Format(time.RFC3339), Message: ""}
	go func() {
		defer t.runs.Done()
		defer t.inFlight.Add(-1)
		t.fired.Add(1)
		id := newRequestID()
		if err := t.fns.Timer(ctx, id, ev); err != nil && ctx.Err() == nil {
			t.failed.Add(1)
			t.log.Warn("reaper run failed", "request_id", id, "err", err)
		}
	}()
}

// wait returns once the loop stopped (ctx ended) and every run finished.
func (t *timer) wait() {
	<-t.done
	t.runs.Wait()
}
