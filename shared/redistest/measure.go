package redistest

import (
	"context"
	"net"
	"strconv"
	"strings"
	"sync/atomic"

	"github.com/redis/go-redis/v9"
)

// RoundTrips is a client hook that counts what the client sends: one per command, one per
// pipeline (a pipeline is one round trip per node). Benchmarks add it with AddHook.
type RoundTrips struct{ n atomic.Int64 }

// N is the count so far.
func (h *RoundTrips) N() int64 { return h.n.Load() }

// Reset sets the count to zero.
func (h *RoundTrips) Reset() { h.n.Store(0) }

func (h *RoundTrips) DialHook(next redis.DialHook) redis.DialHook {
	return func(ctx context.Context, network, addr string) (net.Conn, error) { return next(ctx, network, addr) }
}

func (h *RoundTrips) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error { h.n.Add(1); return next(ctx, cmd) }
}

func (h *RoundTrips) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error { h.n.Add(1); return next(ctx, cmds) }
}

// ServerCPU is the server's used_cpu_sys + used_cpu_user in seconds (INFO cpu): a delta of
// two readings is what the server spent, scripts and all, in between.
func ServerCPU(ctx context.Context, c redis.Cmdable) (float64, error) {
	info, err := c.Info(ctx, "cpu").Result()
	if err != nil {
		return 0, err
	}
	total := 0.0
	for _, line := range strings.Split(info, "\n") {
		k, v, ok := strings.Cut(strings.TrimSpace(line), ":")
		if ok && (k == "used_cpu_sys" || k == "used_cpu_user") {
			f, _ := strconv.ParseFloat(v, 64)
			total += f
		}
	}
	return total, nil
}
