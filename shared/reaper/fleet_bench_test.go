package reaper

import (
	"context"
	"fmt"
	"net"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/carqueue/carqueue/shared/queue"
	"github.com/carqueue/carqueue/shared/redistest"
	"github.com/redis/go-redis/v9"
)

// roundTrips counts what a client sends: one per command, one per pipeline.
type roundTrips struct{ n atomic.Int64 }

func (h *roundTrips) DialHook(next redis.DialHook) redis.DialHook {
	return func(ctx context.Context, network, addr string) (net.Conn, error) { return next(ctx, network, addr) }
}

func (h *roundTrips) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error { h.n.Add(1); return next(ctx, cmd) }
}

func (h *roundTrips) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error { h.n.Add(1); return next(ctx, cmds) }
}

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
			hook := &roundTrips{}
			be.Client.AddHook(hook)
			f := e.fleet(16)
			ctx := context.Background()
			if _, err := f.Run(ctx); err != nil { // warm: scripts loaded
				b.Fatal(err)
			}
			hook.n.Store(0)
			cpu0 := redisCPU(b, be)
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
			b.ReportMetric(float64(hook.n.Load())/float64(b.N), "roundtrips/op")
			b.ReportMetric((redisCPU(b, be)-cpu0)*1e6/float64(b.N), "redis-cpu-µs/op")
		})
	}
}

// redisCPU is the server's used_cpu_sys + used_cpu_user in seconds (INFO cpu).
func redisCPU(b *testing.B, be redistest.Backend) float64 {
	b.Helper()
	info, err := be.Client.Info(context.Background(), "cpu").Result()
	if err != nil {
		b.Fatal(err)
	}
	total := 0.0
	for _, line := range strings.Split(info, "\n") {
		k, v, ok := strings.Cut(strings.TrimSpace(line), ":")
		if ok && (k == "used_cpu_sys" || k == "used_cpu_user") {
			f, _ := strconv.ParseFloat(v, 64)
			total += f
		}
	}
	return total
}
