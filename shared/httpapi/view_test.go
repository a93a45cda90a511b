package httpapi

import (
	"context"
	"testing"

	"github.com/carqueue/carqueue/shared/queue"
	"github.com/carqueue/carqueue/shared/redistest"
)

func TestNextPoll(t *testing.T) {
	e := newEnv(t, redistest.Embedded(t), envOpts{})
	cases := []struct {
		position int64
		jitter   float64
		want     int64
	}{
		{1, 0.5, 1000}, {0, 0.5, 1000}, {4, 0.5, 2000}, {100, 0.5, 10000}, {900, 0.5, 30000},
		{100_000, 0.5, 30000}, {1, 0, 800}, {1, 0.999999, 1199}, {100_000, 0, 24000}, {100_000, 0.999999, 35999},
	}
	for _, c := range cases {
		e.api.d.Jitter = func() float64 { return c.jitter }
		if got := e.api.nextPoll(c.position); got != c.want {
			t.Errorf("nextPoll(%d) with jitter %v = %d, want %d", c.position, c.jitter, got, c.want)
		}
	}
}

func TestViewMapping(t *testing.T) {
	e := newEnv(t, redistest.Embedded(t), envOpts{})
	ctx := context.Background()
	cases := []struct {
		st   queue.Status
		want Data
	}{
		{queue.Status{State: queue.StateQueued, Position: 4, Length: 9}, Data{Status: StatusQueued, Position: 4, QueueLength: 9, NextPollMs: 2000}},
		{queue.Status{State: queue.StateAdmitting}, Data{Status: StatusAdmitting, NextPollMs: 1000}},
		{queue.Status{State: queue.StateReady, ServerSession: "ss"}, Data{Status: StatusReady, ServerSession: "ss"}},
		{queue.Status{State: queue.StateActive, ServerSession: "ss"}, Data{Status: StatusReady, ServerSession: "ss"}},
		{queue.Status{State: queue.StateReleasing}, Data{Status: StatusExpired}},
		{queue.Status{State: queue.StateNone, Reason: queue.ReasonIdle}, Data{Status: StatusExpired, Reason: "idle"}},
		{queue.Status{}, Data{Status: StatusExpired}},
	}
	for _, c := range cases {
		got := e.api.view(ctx, c.st)
		if got.EtaSeconds != nil {
			t.Fatalf("ETA without any admission: %d", *got.EtaSeconds)
		}
		if got != c.want {
			t.Errorf("view(%+v) = %+v, want %+v", c.st, got, c.want)
		}
	}
}
