package caremu

import (
	"cmp"
	"fmt"
	"math/rand/v2"
	"reflect"
	"slices"
	"testing"
	"time"
)

// The nextDue shortcut must never change what sweep decides: random
// operation sequences give the same state, and the same session events, as a
// slots that rescans every time.
func TestSweepShortcutMatchesFullScan(t *testing.T) {
	for seed := range uint64(20) {
		rng := rand.New(rand.NewPCG(seed, 7))
		fast := newSlots(map[string]int{"": 5}, 30*time.Second, 2*time.Second, 90*time.Second)
		full := newSlots(map[string]int{"": 5}, 30*time.Second, 2*time.Second, 90*time.Second)
		now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
		for step := range 400 {
			user := fmt.Sprintf("u%d", rng.IntN(8))
			op := rng.IntN(7)
			ss := fmt.Sprintf("ss-%d", step)
			// A page attaches to, or leaves, one of the sessions created so far (or an unknown one).
			target := fmt.Sprintf("ss-%d", rng.IntN(step+1))
			noClient := rng.IntN(4) == 0
			var a, b string
			for i, s := range []*slots{fast, full} {
				if i == 1 {
					s.nextDue = time.Time{} // force a full scan
				}
				var code string
				switch op {
				case 0:
					code = s.apply(user, "", now)
				case 1:
					code = s.create(user, ss, "cs-"+user, noClient, now)
				case 2:
					code = s.destroy(user, now)
				case 3:
					s.disconnect(user, now)
				case 4:
					if _, err := s.attach(target, "cs-"+user, now); err != nil {
						code = err.Error()
					}
				case 5:
					s.detach(target, now)
				}
				if i == 0 {
					a = code
				} else {
					b = code
				}
			}
			if a != b {
				t.Fatalf("seed %d step %d op %d: codes %q vs %q", seed, step, op, a, b)
			}
			full.nextDue = time.Time{}
			if sf, sl := fast.state(now, "", true), full.state(now, "", true); !reflect.DeepEqual(sf, sl) {
				t.Fatalf("seed %d step %d: state %+v vs %+v", seed, step, sf, sl)
			}
			// One sweep may end several sessions, in map order: compare as sets.
			if ef, el := sortedEvents(fast.takeEvents()), sortedEvents(full.takeEvents()); !reflect.DeepEqual(ef, el) {
				t.Fatalf("seed %d step %d: events %+v vs %+v", seed, step, ef, el)
			}
			for _, s := range []*slots{fast, full} {
				if err := s.checkIndex(); err != nil {
					t.Fatalf("seed %d step %d: %v", seed, step, err)
				}
			}
			now = now.Add(time.Duration(rng.IntN(40)) * time.Second)
		}
	}
}

func sortedEvents(evs []SessionEvent) []SessionEvent {
	slices.SortFunc(evs, func(a, b SessionEvent) int {
		return cmp.Or(cmp.Compare(a.Session.ServerSession, b.Session.ServerSession), cmp.Compare(a.Ended, b.Ended))
	})
	return evs
}

// checkIndex reports a ServerSession index that does not list exactly the sessions.
func (s *slots) checkIndex() error {
	n := 0
	for user, h := range s.users {
		if !h.session {
			continue
		}
		n++
		if got := s.byServerSession[h.serverSession]; got != user {
			return fmt.Errorf("session %s of %s indexed as %q", h.serverSession, user, got)
		}
	}
	if n != len(s.byServerSession) {
		return fmt.Errorf("%d sessions, %d indexed: %v", n, len(s.byServerSession), s.byServerSession)
	}
	return nil
}
