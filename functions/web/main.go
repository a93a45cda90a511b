// Command web is carqueue's server mode: one long-running HTTP server serving every route
// (the same handlers as the event functions) and running the reaper's timer in-process, for
// an SCF web function (it listens on 0.0.0.0:$PORT, 9000 by default, as SCF expects) and for
// containers or VMs. SIGTERM or SIGINT stops it gracefully: no new requests, those in flight
// finish, the reaper's current run ends.
//
// Besides the functions' variables (README's configuration table) it reads PORT (default
// 9000), REAPER_TICK (period of the in-process reaper, default 1s; runs may overlap, the
// reaper's lease makes that safe) and REDIS_POOL_SIZE (default 64: one process serves many
// requests at once, unlike an SCF instance).
package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"os/signal"
	"strconv"
	"syscall"
	"time"

	"github.com/carqueue/carqueue/shared/app"
	"github.com/carqueue/carqueue/shared/config"
	"github.com/carqueue/carqueue/shared/httpapi"
	"github.com/redis/go-redis/v9"
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
	port := envOr(getenv, "PORT", "9000")
	if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
		return fmt.Errorf("PORT: want 1–65535, got %q", port)
	}
	tick, err := time.ParseDuration(envOr(getenv, "REAPER_TICK", "1s"))
	if err != nil || tick <= 0 {
		return fmt.Errorf("REAPER_TICK: want a positive duration such as 1s, got %q", getenv("REAPER_TICK"))
	}
	pool, err := strconv.Atoi(envOr(getenv, "REDIS_POOL_SIZE", "64"))
	if err != nil || pool < 1 || pool > 10_000 {
		return fmt.Errorf("REDIS_POOL_SIZE: want 1–10000, got %q", getenv("REDIS_POOL_SIZE"))
	}
	cfg, err := config.FromEnv(getenv, getenv(app.LocalEnv) == "1")
	if err != nil {
		return err
	}
	rdb := redis.NewClient(&redis.Options{
		Addr: cfg.RedisAddr, Password: cfg.RedisPassword, DB: cfg.RedisDB, Protocol: 2,
		PoolSize: pool, DialTimeout: 2 * time.Second, ReadTimeout: 2 * time.Second,
		WriteTimeout: 2 * time.Second, PoolTimeout: 2 * time.Second, ContextTimeoutEnabled: true,
	})
	a, err := app.BuildFrom(cfg, getenv, rdb)
	if err != nil {
		return err
	}
	defer a.Close()
	log := slog.New(slog.NewJSONHandler(os.Stdout, &slog.HandlerOptions{Level: cfg.LogLevel})).With("component", "web")

	srv := httpapi.NewServer("0.0.0.0:"+port, a.API)
	served := make(chan error, 1)
	go func() { served <- srv.ListenAndServe() }()
	reaped := make(chan struct{})
	reapCtx, stopReaper := context.WithCancel(context.WithoutCancel(ctx))
	go func() { defer close(reaped); reapEvery(reapCtx, a, tick, log) }()
	log.Info("serving", "addr", srv.Addr, "reaper_tick", tick.String())

	select {
	case err = <-served:
	case <-ctx.Done():
		log.Info("shutting down")
		sctx, cancel := context.WithTimeout(context.Background(), httpapi.DefaultRequestTimeout)
		err = srv.Shutdown(sctx)
		cancel()
		<-served
	}
	stopReaper()
	<-reaped
	if errors.Is(err, http.ErrServerClosed) {
		err = nil
	}
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

func envOr(getenv func(string) string, k, def string) string {
	if v := getenv(k); v != "" {
		return v
	}
	return def
}
