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

	"github.com/carqueue/carqueue/shared/app"
	"github.com/carqueue/carqueue/shared/config"
	"github.com/carqueue/carqueue/shared/httpapi"
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
	rdb, err := app.ConnectServer(cfg)
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
	go func() { defer close(reaped); a.ReapEvery(reapCtx, tick, log) }()
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
