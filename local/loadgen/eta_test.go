package loadgen

import (
	"testing"
	"time"
)

func TestETAAccuracy(t *testing.T) {
	t0 := time.Date(2026, 12, 5, 10, 0, 0, 0, time.UTC)
	mk := func(start, ready time.Duration, eta time.Duration, told, queued bool) *user {
		u := &user{startRecv: t0.Add(start), readyAt: t0.Add(ready), firstETA: eta, told: told}
		if queued {
			u.waits = []waitObs{{Position: 1}}
		}
		return u
	}
	users := []*user{
		mk(0, 0, 0, false, false),                                                // admitted at once: not judged
		mk(0, 10*time.Second, 0, false, true),                                    // queued without an ETA; first Ready at 10 s
		mk(5*time.Second, 65*time.Second, 30*time.Second, true, true),            // waited 60 s, told 30: 50%
		mk(80*time.Second, 180*time.Second, 110*time.Second, true, true),         // waited 100, told 110: 10%
		mk(90*time.Second, 140*time.Second, 50*time.Second, true, true),          // exact: 0%
		{startRecv: t0, told: true, firstETA: time.Second, waits: []waitObs{{}}}, // never admitted
	}
	all := etaAccuracy(users, false)
	if all.Told != 3 || all.Untold != 1 || all.MedianPct != 10 || all.P90Pct != 50 {
		t.Fatalf("all: %+v", all)
	}
	// With history: only who started at least a minute after the first Ready (at 10 s).
	h := etaAccuracy(users, true)
	if h.Told != 2 || h.Untold != 0 || h.MedianPct != 5 {
		t.Fatalf("with history: %+v", h)
	}
}
