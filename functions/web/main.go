// Command web is carqueue's server mode: one long-running HTTP server serving every route
// (the same handlers as the event functions) and running the reaper's timer in-process, for
// an SCF web function (it listens on 0.0.0.0:$PORT, 9000 by default, as SCF expects) and for
// containers or VMs. SIGTERM or SIGINT stops it gracefully: no new requests, those in flight
// finish, the reaper's current run ends.
//
// It reads the functions' variables (README's configuration table) and four of its own there:
// PORT, REAPER_TICK (the in-process reaper's period), REDIS_POOL_SIZE (one process serves
// many requests at once, unlike an SCF instance) and GOGC (the Go runtime's, with a default of
// the server's own).
package main

import (
	"context"
	"log/slog"
	"os"
	"os/signal"
	"runtime/debug"
	"strconv"
	"syscall"
	"time"

	"github.com/carqueue/carqueue/shared/app"
	"github.com/carqueue/carqueue/shared/config"
	"github.com/carqueue/carqueue/shared/httpapi"
	"github.com/carqueue/carqueue/shared/queue"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	if err := run(ctx, os.Getenv); err != nil {
		slog.New(slog.NewJSONHandler(os.Stdout, nil)).Error("web: stopped", "err", err.Error())
		os.Exit(1)
	}
}

func run(ctx context.Context, getenv func(string) string) error {
	cfg, err := config.FromEnv(getenv, getenv(app.LocalEnv) == "1")
	if err != nil {
		return err
	}
	port, tick := strconv.Itoa(cfg.Port), cfg.ReaperTick
	// The runtime read GOGC already; this gives the server its own default when it is unset.
	debug.SetGCPercent(cfg.GCPercent)
	// The same topologies as the functions (one node, a cluster, Sentinel), with the pool a
	// process serving many requests needs.
	rdb, err := queue.Connect(queue.ConnOptions{
		Addrs: cfg.RedisAddrs, MasterName: cfg.RedisMasterName, Username: cfg.RedisUsername,
		Password: cfg.RedisPassword, SentinelPassword: cfg.RedisSentinelPassword, DB: cfg.RedisDB, TLS: cfg.RedisTLS,
		PoolSize: cfg.RedisPoolSize, DialTimeout: 2 * time.Second, ReadTimeout: 2 * time.Second,
		WriteTimeout: 2 * time.Second, PoolTimeout: 2 * time.Second,
	})
	if err != nil {
		return err
	}
	a, err := app.BuildFrom(cfg, getenv, rdb)
	if err != nil {
		return err
	}
	defer a.Close()
	log := slog.New(slog.NewJSONHandler(os.Stdout, &slog.HandlerOptions{Level: cfg.LogLevel})).With("component", "web")

	srv := httpapi.NewServer("0.0.0.0:"+port, a.API)
	if err := srv.Start(); err != nil {
		return err
	}
	reaped := make(chan struct{})
	reapCtx, stopReaper := context.WithCancel(context.WithoutCancel(ctx))
	go func() { defer close(reaped); reapEvery(reapCtx, a, tick, log) }()
	log.Info("serving", "addr", srv.Addr, "reaper_tick", tick.String())

	<-ctx.Done()
	log.Info("shutting down")
	sctx, cancel := context.WithTimeout(context.Background(), httpapi.DefaultRequestTimeout)
	err = srv.Shutdown(sctx)
	cancel()
	stopReaper()
	<-reaped
	return err
}

// reapEvery starts a reaper run every tick, each in its own goroutine so a slow run does not
// delay the next (the reaper's lease lets only one of overlapping runs act), and waits for the
// runs in flight when ctx ends.
func reapEvery(ctx context.Context, a *app.App, tick time.Duration, log *slog.Logger) {
	t := time.NewTicker(tick)
	defer t.Stop()
	done := make(chan struct{}, 64)
	running := 0
	for {
		select {
		case <-ctx.Done():
			for ; running > 0; running-- {
				<-done
			}
			return
		case <-done:
			running--
		case <-t.C:
			running++
			go func() {
				rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 60*time.Second)
				defer cancel()
				if _, err := a.RunReaper(rctx); err != nil {
					log.Warn("reaper run failed", "err", err.Error())
				}
				done <- struct{}{}
			}()
		}
	}
}
