// Package app builds, once per warm SCF instance, everything a function needs from the
// environment (config, Redis client, queue, CAR client, admission path, HTTP API) and hands
// out the SCF handlers. Building is lazy, on the first invocation, and retried on the next
// invocation if it failed, so a fixed configuration heals without a redeploy.
package app

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"sync"

	"github.com/carqueue/carqueue/shared/config"
	"github.com/carqueue/carqueue/shared/httpapi"
	"github.com/carqueue/carqueue/shared/reaper"
	"github.com/tencentyun/scf-go-lib/events"
)

// HTTPHandler is the SCF HTTP handler shape.
type HTTPHandler = func(context.Context, events.APIGatewayRequest) (events.APIGatewayResponse, error)

// TimerHandler is the SCF timer handler shape.
type TimerHandler = func(context.Context, events.TimerEvent) error

// LocalEnv is the variable that selects the local harness's dev defaults ("1").
const LocalEnv = "CARQUEUE_LOCAL"

// instance is the one global: the lazily built App of this warm instance.
var instance lazy

type lazy struct {
	mu  sync.Mutex
	app *App
}

// get returns the built App, building it on first use and again after a failure.
func (l *lazy) get() (*App, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.app != nil {
		return l.app, nil
	}
	a, err := Build(os.Getenv, os.Getenv(LocalEnv) == "1")
	if err != nil {
		return nil, err
	}
	l.app = a
	return a, nil
}

// reset forgets the built App (tests only).
func (l *lazy) reset() {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.app != nil {
		_ = l.app.Close()
	}
	l.app = nil
}

// bootLogger logs before the configuration (and so LOG_LEVEL) is known.
func bootLogger() *slog.Logger { return slog.New(slog.NewJSONHandler(os.Stdout, nil)) }

// HTTP returns the handler of one route ("start", "poll", "heartbeat", "reconnect", "stop",
// "stats"; "" routes by path). A configuration error answers 503 (code 5032) naming the
// variables, and is logged with the full detail.
func HTTP(route string) HTTPHandler {
	return func(ctx context.Context, ev events.APIGatewayRequest) (events.APIGatewayResponse, error) {
		a, err := instance.get()
		if err != nil {
			log := bootLogger()
			log.ErrorContext(ctx, "instance not built", "err", err.Error())
			return httpapi.Failing(httpapi.CodeNotConfigured, unavailableMsg(err), log)(ctx, ev)
		}
		return a.API.Handler(route)(ctx, ev)
	}
}

// Reaper returns the timer handler: one reaper run per trigger (the reaper logs its report).
// An error makes SCF retry the invocation, which the reaper's lease makes safe.
func Reaper() TimerHandler {
	return func(ctx context.Context, _ events.TimerEvent) error {
		a, err := instance.get()
		if err != nil {
			bootLogger().ErrorContext(ctx, "instance not built", "err", err.Error())
			return err
		}
		_, err = a.RunReaper(ctx)
		return err
	}
}

// RunReaper is one timer invocation over every queue (the fleet's errors name their queues).
func (a *App) RunReaper(ctx context.Context) (reaper.FleetReport, error) {
	rep, err := a.Fleet.Run(ctx)
	if err != nil {
		return rep, fmt.Errorf("reaper: %w", err)
	}
	return rep, nil
}

// unavailableMsg names the bad variables without echoing their values to clients.
func unavailableMsg(err error) string {
	if names := config.Variables(err); len(names) > 0 {
		return "server misconfigured: check " + strings.Join(names, ", ")
	}
	return "server not ready, retry later"
}
