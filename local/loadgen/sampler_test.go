package loadgen

import (
	"testing"
	"time"
)

// The occupancy averages count only the phase asked for, and "while someone waited" only the
// samples with a queue.
func TestOccupancy(t *testing.T) {
	s := &sampler{}
	add := func(ms int, holders, queued int64, idle, cleaning, held int) {
		s.points = append(s.points, point{at: at(ms), statsOK: true, emuOK: true,
			holders: holders, queued: queued, emuIdle: idle, emuCleaning: cleaning, emuHeld: held})
	}
	add(0, 2, 5, 8, 0, 2) // before the phase
	add(100, 10, 5, 0, 0, 10)
	add(200, 8, 3, 1, 1, 8)
	add(300, 4, 0, 6, 0, 4)  // nobody waits
	add(900, 0, 0, 10, 0, 0) // after the phase
	o := s.occupancy(at(100), at(300))
	want := Occupancy{Samples: 3, Holders: 22.0 / 3, WaitingSamples: 2, HoldersWaiting: 9,
		EmuIdleWaiting: 0.5, EmuIdleMaxWait: 1, EmuCleaningWait: 0.5, EmuHeldWaiting: 9}
	if o != want {
		t.Fatalf("occupancy = %+v, want %+v", o, want)
	}
}

// A vanished user's release lag runs from its last sign of life (its last heartbeat, or Ready
// when it never heartbeated) to the first sample that saw its slot freed after it left.
func TestReleaseLags(t *testing.T) {
	s := &sampler{}
	sample := func(ms int, holding ...string) {
		s.emuOK = true
		s.trackHeld(emuState{Sessions: holding}, at(ms))
	}
	sample(0, "a", "b", "c")
	sample(1000, "b", "c") // a freed: it had only played and stopped
	sample(21500, "c")     // b freed
	sample(31000)          // c freed
	sample(40000, "b")     // b again, later (a new admission): not its release
	sample(45000)
	users := []*user{
		{id: "a", outcome: outStopped},
		{id: "b", outcome: outVanished, beats: 3, lastBeat: at(500), leftAt: at(600)},
		{id: "c", outcome: outVanished, readyAt: at(100), leftAt: at(100)},
		{id: "d", outcome: outVanished, readyAt: at(100), leftAt: at(100)}, // never seen freed
	}
	cfg := Config{HeartbeatTimeout: 20 * time.Second, ReadyTimeout: 30 * time.Second}
	lag, over, unseen := releaseLags(cfg, users, s)
	if got := lag["heartbeat_timeout"]; got.N != 1 || got.Max != 21*time.Second {
		t.Errorf("heartbeat_timeout lag %+v, want one of 21s", got)
	}
	if got := over["heartbeat_timeout"]; got.Max != time.Second {
		t.Errorf("heartbeat_timeout overrun %+v, want 1s", got)
	}
	if got := lag["never_started"]; got.N != 1 || got.Max != 30900*time.Millisecond {
		t.Errorf("never_started lag %+v, want one of 30.9s", got)
	}
	if got := over["never_started"]; got.Max != 900*time.Millisecond {
		t.Errorf("never_started overrun %+v, want 0.9s", got)
	}
	if unseen != 1 {
		t.Errorf("unseen = %d, want 1 (d)", unseen)
	}
}
