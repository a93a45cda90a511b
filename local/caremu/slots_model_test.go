package caremu

import (
	"fmt"
	"math/rand/v2"
	"reflect"
	"testing"
	"time"
)

// The nextDue shortcut must never change what sweep decides: random
// operation sequences give the same state as a slots that rescans every time.
func TestSweepShortcutMatchesFullScan(t *testing.T) {
	for seed := range uint64(20) {
		rng := rand.New(rand.NewPCG(seed, 7))
		fast := newSlots(5, 30*time.Second, 2*time.Second, 90*time.Second)
		full := newSlots(5, 30*time.Second, 2*time.Second, 90*time.Second)
		now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
		for step := range 400 {
			user := fmt.Sprintf("u%d", rng.IntN(8))
			op := rng.IntN(6)
			noClient := rng.IntN(4) == 0
			var a, b string
			for i, s := range []*slots{fast, full} {
				if i == 1 {
					s.nextDue = time.Time{} // force a full scan
				}
				var code string
				switch op {
				case 0:
					code = s.apply(user, now)
				case 1:
					code = s.create(user, "ss", noClient, now)
				case 2:
					code = s.destroy(user, now)
				case 3:
					s.disconnect(user, now)
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
			if sf, sl := fast.state(now), full.state(now); !reflect.DeepEqual(sf, sl) {
				t.Fatalf("seed %d step %d: state %+v vs %+v", seed, step, sf, sl)
			}
			now = now.Add(time.Duration(rng.IntN(40)) * time.Second)
		}
	}
}
