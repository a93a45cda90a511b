// Command loadtest drives a running carqueue system over HTTP with many simulated users
// (local/loadgen): they queue, play, heartbeat, reconnect, vanish and stop while /stats and
// /emulator/state are sampled. It prints a report (capacity, FIFO, outcomes, slots held on
// average and while users wait, idle CAR slots while users wait, the release lag of vanished
// users, HTTP statuses, latency percentiles per route) and exits 1 if any promise of the
// contract was broken. takeover.sh, beside it, measures how long the reaper stalls when the
// instance running it is killed.
//
// Against the local harness with 8 emulated slots and 10% CAR faults, in two terminals:
//
//	REDIS_ADDR=127.0.0.1:6379 QUEUE_ID=load-$RANDOM go run ./local -capacity 8 \
//	    -addr 127.0.0.1:18080 -emulator-addr 127.0.0.1:18081 -emulator-faults '*:InternalError=0.1'
//	go run ./scripts/loadtest -url http://127.0.0.1:18080 -admin-token local-admin-token \
//	    -users 500 -vanish 0.1 -reconnect 0.1 -quit-queued 0.1 -play 2s \
//	    -heartbeat-timeout 20s -timeout 20m -drain 2m -seed 42
//
// Vanished users are reclaimed after the harness's HEARTBEAT_TIMEOUT (20s) or READY_TIMEOUT
// (30s), so -drain must exceed those. With the harness's defaults (-tick 1s, -cleanup-delay
// 2s) 500 users take about ten minutes (about 46 admissions a minute on 8 slots). Shorter
// timeouts speed it up: HEARTBEAT_TIMEOUT=4s READY_TIMEOUT=5s POLL_MAX_INTERVAL=2s
// QUEUE_IDLE_TIMEOUT=10s in the harness's environment, -tick 200ms -cleanup-delay 200ms on its
// command line, and -heartbeat-timeout 4s here. Give -ready-timeout too (the harness's
// READY_TIMEOUT, 30s) to see how far releases of users who vanished right after Ready ran past it. A run longer than the harness's GONE_RETENTION
// (10m) accepts a plain Expired (no Reason) for users who left that long before the end.
// Stop the harness with Ctrl-C; on a shared Redis delete only the keys containing your QUEUE_ID.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"time"

	"github.com/carqueue/carqueue/local/loadgen"
)

func main() {
	var c loadgen.Config
	flag.StringVar(&c.BaseURL, "url", "http://127.0.0.1:8080", "base URL of the routes")
	flag.StringVar(&c.AdminToken, "admin-token", os.Getenv("ADMIN_TOKEN"), "Bearer token of /stats (default $ADMIN_TOKEN; the local harness prints its own)")
	flag.IntVar(&c.Users, "users", 100, "simulated users")
	flag.Float64Var(&c.Vanish, "vanish", 0.1, "fraction that go silent after Ready (the reaper must reclaim them)")
	flag.Float64Var(&c.Reconnect, "reconnect", 0.1, "fraction that drop once mid-play and /reconnect")
	flag.Float64Var(&c.QuitQueued, "quit-queued", 0.1, "fraction that /stop while still queued")
	flag.DurationVar(&c.Play, "play", 2*time.Second, "mean play time (each user: uniform in [play/2, 3·play/2])")
	flag.Float64Var(&c.PollScale, "poll-scale", 1, "multiply NextPollMs by this (never faster than 50ms)")
	flag.DurationVar(&c.Stagger, "stagger", 5*time.Millisecond, "pause between consecutive users' first /start")
	flag.DurationVar(&c.HeartbeatTimeout, "heartbeat-timeout", 0, "the server's HEARTBEAT_TIMEOUT, to judge reconnects (0: 4 × NextHeartbeatMs)")
	flag.DurationVar(&c.ReadyTimeout, "ready-timeout", 0, "the server's READY_TIMEOUT, to report how far releases ran past it (0: unknown)")
	flag.DurationVar(&c.GoneRetention, "gone-retention", 10*time.Minute, "the server's GONE_RETENTION: users who left longer ago may end without a Reason")
	flag.DurationVar(&c.Timeout, "timeout", 10*time.Minute, "time limit of the users' run")
	flag.DurationVar(&c.DrainTimeout, "drain", 2*time.Minute, "time to wait afterwards for the reaper and the emulator's clean-up")
	flag.Uint64Var(&c.Seed, "seed", 0, "seed of roles and play times (0: random)")
	flag.Parse()
	c.Logf = func(format string, args ...any) {
		fmt.Fprintf(os.Stderr, time.Now().Format("15:04:05 ")+format+"\n", args...)
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	r, err := loadgen.Run(ctx, c)
	if err != nil && !errors.Is(err, loadgen.ErrViolations) {
		fmt.Fprintln(os.Stderr, "loadtest:", err)
		os.Exit(2)
	}
	r.WriteTable(os.Stdout)
	if err != nil {
		os.Exit(1)
	}
}
