package car_test

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"

	"github.com/carqueue/carqueue/local/caremu"
	"github.com/carqueue/carqueue/shared/car"
)

// BenchmarkApplyConcurrent measures one signed ApplyConcurrent round trip
// through the SDK common client to the emulator over loopback HTTP.
func BenchmarkApplyConcurrent(b *testing.B) {
	high := map[string]float64{car.ActionApplyConcurrent: 1e9}
	e := newEnv(b, setup{emu: caremu.Options{Slots: 1 << 30}, cfg: car.Config{Rates: high, MaxRetries: -1}})
	var n atomic.Int64
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			user := fmt.Sprintf("bench-%d", n.Add(1))
			if err := e.client.ApplyConcurrent(context.Background(), applyIn(user)); err != nil {
				b.Error(err)
				return
			}
		}
	})
}
