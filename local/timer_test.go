package main

import (
	"context"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/tencentyun/scf-go-lib/events"
)

// blockingFunctions is a fake whose reaper runs block until released, to observe overlap.
type blockingFunctions struct {
	entered chan events.TimerEvent
	release chan struct{}
}

func (f *blockingFunctions) HTTP(context.Context, string, string, events.APIGatewayRequest) (events.APIGatewayResponse, error) {
	return events.APIGatewayResponse{}, nil
}

func (f *blockingFunctions) Timer(ctx context.Context, _ string, ev events.TimerEvent) error {
	f.entered <- ev
	<-f.release
	return nil
}

func (f *blockingFunctions) Close() error { return nil }

// Runs overlap, as SCF timer invocations may: a second tick starts while the first still runs.
// The bound keeps a stuck backend from piling up runs.
func TestTimerRunsOverlapUpToTheBound(t *testing.T) {
	f := &blockingFunctions{entered: make(chan events.TimerEvent, maxTimerRuns+1), release: make(chan struct{})}
	tm := &timer{fns: f, log: slog.New(slog.NewTextHandler(io.Discard, nil)), done: make(chan struct{})}
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	for range maxTimerRuns {
		tm.fire(context.Background(), now)
	}
	for range maxTimerRuns {
		ev := <-f.entered // all of them run at once
		if ev.Type != "Timer" || ev.Time != "2026-01-02T03:04:05Z" {
			t.Fatalf("timer event = %+v, want SCF's Timer shape", ev)
		}
	}
	tm.fire(context.Background(), now)
	if got := tm.skipped.Load(); got != 1 {
		t.Errorf("skipped = %d, want 1 beyond %d runs in flight", got, maxTimerRuns)
	}
	close(f.release)
	tm.runs.Wait()
	if got := tm.fired.Load(); got != maxTimerRuns {
		t.Errorf("fired = %d, want %d", got, maxTimerRuns)
	}
}
