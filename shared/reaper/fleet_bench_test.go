package reaper

import (
	"context"
	"fmt"
	"testing"

	"github.com/carqueue/carqueue/shared/queue"
	"github.com/carqueue/carqueue/shared/redistest"
)

// BenchmarkFleetPass is one reaper invocation over a deployment of which only 10 queues have
// users (each one Ready holder, nobody waiting: the common shape of a quiet launch), with
// 10 queues in all (the peer) and with 1,000 (990 idle). The difference, divided by 990, is
// what an idle queue costs a pass; BENCHMARKS.md has the figures. On the real redis-server
// (REDIS_ADDR) only: miniredis builds a Lua VM per script and would measure itself.
//
//	REDIS_ADDR=127.0.0.1:6379 go test -run '^$' -bench FleetPass -benchtime 200x ./shared/reaper
func BenchmarkFleetPass(b *testing.B) {
	be, ok := redistest.Real(b)
	if !ok {
		b.Skip("needs REDIS_ADDR (a real redis-server)")
	}
	for _, n := range []int{10, 1000} {
		b.Run(fmt.Sprintf("queues=%d", n), func(b *testing.B) {
			e := newFleetEnv(b, be, n)
			for i := range 10 {
				busy := i * n / 10
				e.join(busy, fmt.Sprintf("u%d", i))
				if _, err := e.svcs[busy].Poll(context.Background(), fmt.Sprintf("u%d", i), queue.Client{}, queue.Trusted); err != nil {
					b.Fatal(err)
				}
			}
			hook := &redistest.RoundTrips{}
			be.Client.AddHook(hook)
			f := e.fleet(16)
			ctx := context.Background()
			if _, err := f.Run(ctx); err != nil { // warm: scripts loaded
				b.Fatal(err)
			}
			cpu0 := redisCPU(b, be)
			hook.Reset()
			b.ResetTimer()
			for range b.N {
				rep, err := f.Run(ctx)
				if err != nil {
					b.Fatal(err)
				}
				if rep.Busy != 10 {
					b.Fatalf("busy %d, want 10", rep.Busy)
				}
			}
			b.StopTimer()
			b.ReportMetric(float64(hook.N())/float64(b.N), "roundtrips/op")
			b.ReportMetric((redisCPU(b, be)-cpu0)*1e6/float64(b.N), "redis-cpu-µs/op")
		})
	}
}

func redisCPU(b *testing.B, be redistest.Backend) float64 {
	b.Helper()
	cpu, err := redistest.ServerCPU(context.Background(), be.Client)
	if err != nil {
		b.Fatal(err)
	}
	return cpu
}
