package main

import (
	"context"
	"testing"
	"time"

	"github.com/carqueue/carqueue/local/loadgen"
)

// TestLoadWithCARFaults runs 40 simulated users (local/loadgen) against the real harness with
// 4 emulated slots, 10% InternalError on every CAR action plus a little latency, and short
// timeouts: some vanish (the reaper must reclaim their slots), some reconnect mid-play, some
// quit while queued. It asserts what loadgen checks: capacity never exceeded (queue and
// emulator), FIFO admission, nobody lost, and nothing left held or queued at the end.
//
// The harness is a real process, so this takes real time (about 15 s); every wait has a
// deadline and nothing asserts on elapsed time. Redis is the one the harness picks (REDIS_ADDR
// when set, else a redis-server from PATH, else the embedded one), and again on the Redis
// Cluster of REDIS_CLUSTER_ADDRS when that is set.
func TestLoadWithCARFaults(t *testing.T) {
	if testing.Short() {
		t.Skip("load test: about 15 s of real time")
	}
	// 2.4 × POLL_MAX_INTERVAL ≤ QUEUE_IDLE_TIMEOUT, as shared/config requires.
	env := []string{"HEARTBEAT_TIMEOUT=2s", "READY_TIMEOUT=3s", "QUEUE_IDLE_TIMEOUT=10s",
		"POLL_MIN_INTERVAL=200ms", "POLL_MAX_INTERVAL=1s"}
	t.Run("harness-redis", func(t *testing.T) { loadWithCARFaults(t, env...) })
	t.Run("redis-cluster", func(t *testing.T) {
		loadWithCARFaults(t, append(env, clusterRedisAddr(t))...)
	})
}

func loadWithCARFaults(t *testing.T, env ...string) {
	h := startLocal(t,
		[]string{"-capacity", "4", "-tick", "200ms", "-cleanup-delay", "200ms",
			"-emulator-faults", "*:InternalError=0.1,*:latency=2ms~8ms"},
		env...)

	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	r, err := loadgen.Run(ctx, loadgen.Config{
		BaseURL:          h.Base,
		AdminToken:       h.AdminToken,
		Users:            40,
		Vanish:           0.1,
		Reconnect:        0.1,
		QuitQueued:       0.1,
		Play:             600 * time.Millisecond,
		HeartbeatTimeout: 2 * time.Second,
		Timeout:          45 * time.Second,
		DrainTimeout:     20 * time.Second,
		UserPrefix:       "u" + h.Queue,
		Logf:             t.Logf,
	})
	t.Logf("report:\n%s", r)
	if err != nil {
		t.Fatalf("loadgen: %v", err)
	}
	if r.Capacity != 4 || r.EmulatorTotal != 4 {
		t.Errorf("Capacity %d, emulator Total %d: want 4 and 4 (did the sampler see the harness?)", r.Capacity, r.EmulatorTotal)
	}
	if !r.Drained || r.Admitted == 0 || r.Outcomes["stopped"] == 0 || r.Outcomes["vanished"] == 0 {
		t.Errorf("Drained %v, Admitted %d, Outcomes %v: want a drained run that admitted users, some stopping and some vanishing",
			r.Drained, r.Admitted, r.Outcomes)
	}
}
