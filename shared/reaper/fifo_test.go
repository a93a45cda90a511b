package reaper

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/carqueue/carqueue/shared/car"
	"github.com/carqueue/carqueue/shared/queue"
	"github.com/carqueue/carqueue/shared/redistest"
)

// TestFIFOThroughFaults is issue 13's "FIFO through faults" end to end: a CAR error storm
// (every ApplyConcurrent failing) over several reaper runs, then a run that dies right after
// claiming (its claim is never finished), then normal service. Throughout, every waiting
// user keeps its exact place (requeued claims go back to their original place), and once CAR
// answers again the users are admitted in the order they joined: each run admits exactly the
// next ones in line, never a later user while an earlier one still waits.
func TestFIFOThroughFaults(t *testing.T) {
	for _, b := range redistest.Backends(t) {
		t.Run(b.Name, func(t *testing.T) {
			ctx := context.Background()
			const capacity = 2
			e := newEnv(t, b, envOpts{capacity: capacity, slots: capacity})
			e.r = e.newReaper(e.q, e.s, parallelism(capacity))
			var order []string
			for i := range 12 {
				order = append(order, fmt.Sprintf("u%02d", i))
			}
			e.join(order...)
			places := func(when string, waiting []string) {
				t.Helper()
				for i, u := range waiting {
					if st := e.status(u); st.State != queue.StateQueued || st.Position != int64(i+1) {
						t.Fatalf("%s: %s is %s at %d, want Queued at %d", when, u, st.State, st.Position, i+1)
					}
				}
			}

			// The storm: claims fail and go back to the front, nobody is admitted, nobody moves.
			e.emu.SetErrorRate(car.ActionApplyConcurrent, "InternalError", 1)
			for range 4 {
				rep := e.run()
				if rep.Admitted != 0 {
					t.Fatalf("admitted %d during the storm", rep.Admitted)
				}
				places("during the storm", order)
				e.clk.Advance(time.Second)
			}
			e.emu.ResetFaults()

			// A run dies after claiming the head: its claim lease runs out, and the user is
			// back at its own place, in front.
			cs, err := e.q.Claim(ctx, 1)
			if err != nil || len(cs) != 1 || cs[0].UserID != order[0] {
				t.Fatalf("claim of the dying run: %v %v", cs, err)
			}
			e.clk.Advance(testClaimLease + time.Second)
			for _, u := range order[1:] { // the others kept polling meanwhile
				e.status(u)
			}
			if rep := e.run(); rep.Admitted != capacity {
				t.Fatalf("after the dead run: admitted %d, want %d", rep.Admitted, capacity)
			}

			// Normal service: every run admits exactly the next ones in line.
			var admitted []string
			for len(admitted) < len(order) {
				var now []string
				for _, u := range order {
					if st := e.status(u); st.State == queue.StateReady && !slices.Contains(admitted, u) {
						now = append(now, u)
					}
				}
				want := order[len(admitted):min(len(admitted)+len(now), len(order))]
				if len(now) == 0 || !slices.Equal(now, want) {
					t.Fatalf("admitted %v after %v, want the next in line %v", now, admitted, want)
				}
				admitted = append(admitted, now...)
				places("between admissions", order[len(admitted):])
				for _, u := range now { // they play and leave
					if _, err := e.s.Stop(ctx, u, queue.Trusted); err != nil {
						t.Fatal(err)
					}
				}
				e.clk.Advance(10 * time.Second) // the emulator cleans a slot before it is idle again
				e.run()
			}
		})
	}
}
