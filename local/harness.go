package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path"
	"strings"
	"time"

	"github.com/carqueue/carqueue/local/relay"
	"github.com/carqueue/carqueue/local/web"
	"github.com/carqueue/carqueue/shared/app"
	"github.com/carqueue/carqueue/shared/config"
	"github.com/carqueue/carqueue/shared/httpapi"
)

// shutdownGrace is how long requests and CAR calls in flight get to finish on Ctrl-C.
const shutdownGrace = 5 * time.Second

// harness is one running local system. Its parts start in dependency order and close in reverse.
type harness struct {
	addrs  Addrs
	queues []config.Queue // the functions' queues, for the pages' pickers
	log    *slog.Logger
	redis  *redisBackend
	emu    *emulatorServer
	relay  *relay.Relay // data channels of the emulator's sessions; nil with a real CAR
	fns    functions
	server *app.App // -functions=server: the server mode's app, which serves every route itself
	timer  *timer
	reaped chan struct{}      // closed when the server mode's reaper timer has stopped
	cancel context.CancelFunc // stops the timer
	srv    *http.Server
	served chan error
}

// startHarness starts Redis, the emulator, the functions, the HTTP server and the timer, then
// prints the banner. The functions' configuration is checked as soon as it is known (it holds
// the Redis and emulator addresses), before any of them starts. On error, whatever had started
// is stopped again.
func startHarness(ctx context.Context, s settings, getenv func(string) string, stdout io.Writer) (_ *harness, err error) {
	base := slog.New(slog.NewJSONHandler(stdout, &slog.HandlerOptions{Level: logLevel(getenv("LOG_LEVEL"))}))
	h := &harness{log: base.With("component", "local")}
	defer func() {
		if err != nil {
			h.close()
		}
	}()

	if h.redis, err = openRedis(ctx, s.redisMode, getenv); err != nil {
		return nil, err
	}
	var emuLn net.Listener
	if getenv("CAR_ENDPOINT") == "" {
		if emuLn, err = net.Listen("tcp", s.emulatorAddr); err != nil {
			return nil, fmt.Errorf("flag -emulator-addr: listen: %w", err)
		}
		h.addrs.Emulator = emuLn.Addr().String()
	}
	vars, err := functionEnv(s, getenv, h.redis.Addr, h.addrs.Emulator)
	var cfg config.Config
	if err == nil {
		cfg, err = checkConfig(s, vars, getenv)
	}
	if err == nil && h.redis.Kind == "REDIS_ADDR" {
		err = pingRedis(ctx, cfg)
	}
	if err != nil {
		if emuLn != nil {
			emuLn.Close()
		}
		return nil, err
	}
	h.addrs.Redis = lookup(vars, "REDIS_ADDR")
	h.queues = cfg.Queues
	if emuLn != nil {
		h.emu, err = startEmulator(emuLn, s, cfg, lookup(vars, "TENCENTCLOUD_SECRETID"), lookup(vars, "TENCENTCLOUD_SECRETKEY"), base)
		if err != nil {
			emuLn.Close()
			return nil, err
		}
	}
	h.relay = startRelay(h.emu, base)

	switch s.functions {
	case modeServer:
		// The server mode (functions/web) in this process: its Redis client and app, its handler
		// (httpapi.API's ServeHTTP, every route by path) behind the harness's routes, and its
		// in-process reaper timer instead of the timer trigger's invocations. Only the transport
		// differs: the harness serves net/http, for the pages and the data channel's WebSockets.
		rdb, err := app.ConnectServer(cfg)
		if err != nil {
			return nil, fmt.Errorf("server mode: %w", err)
		}
		if h.server, err = app.BuildFrom(cfg, functionGetenv(vars, getenv), rdb); err != nil {
			_ = rdb.Close()
			return nil, fmt.Errorf("server mode: %w", err)
		}
	case modeBinaries:
		b, err := startBinaries(ctx, s.moduleDir, vars, s.functionTimeout, s.reaperTimeout, stdout)
		if err != nil {
			return nil, err
		}
		h.fns = b
	default:
		// shared/app builds its clients from the process environment on first use, as on a warm
		// SCF instance, so the variables must be in place before the first handler call.
		for _, v := range vars {
			if err := os.Setenv(v.Name, v.Value); err != nil {
				return nil, fmt.Errorf("set %s for the functions: %w", v.Name, err)
			}
		}
		h.fns = newInProcess(s.functionTimeout, s.reaperTimeout)
	}

	ln, err := net.Listen("tcp", s.addr)
	if err != nil {
		return nil, fmt.Errorf("flag -addr: listen: %w", err)
	}
	h.addrs.HTTP = ln.Addr().String()
	if admin := lookup(vars, "ADMIN_TOKEN"); admin == config.LocalAdminToken {
		h.addrs.AdminToken = admin
	}
	h.srv = &http.Server{Handler: h.routes(), ReadHeaderTimeout: 10 * time.Second}
	h.served = make(chan error, 1)
	go func() { h.served <- h.srv.Serve(ln) }()

	timerCtx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	h.cancel = cancel
	if h.server != nil {
		h.reaped = make(chan struct{})
		go func() { defer close(h.reaped); h.server.ReapEvery(timerCtx, s.tick, h.log) }()
	} else {
		h.timer = startTimer(timerCtx, h.fns, s.tick, h.log)
	}

	printBanner(stdout, s, h.addrs, h.redis, vars, cfg)
	return h, nil
}

// routes is the harness's one HTTP surface: the functions, the emulator's state, the pages.
func (h *harness) routes() http.Handler {
	mux := http.NewServeMux()
	for _, r := range routes {
		if r == adminFunction {
			mux.Handle("/"+r+"/", h.function(r))
			continue
		}
		mux.Handle("/"+r, h.function(r))
	}
	if h.emu != nil {
		mux.Handle("GET /emulator/state", h.emu.emu.StateHandler())
	}
	mux.Handle("GET /harness/queues", h.queuesHandler())
	mountRelay(mux, h.relay)
	pages := web.Handler()
	// Any other path goes to the handler that routes by path, which answers the contract's 404.
	fallback := h.function("")
	mux.Handle("/", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if (r.Method == http.MethodGet || r.Method == http.MethodHead) && web.Has(r.URL.Path) {
			pages.ServeHTTP(w, r)
			return
		}
		fallback.ServeHTTP(w, r)
	}))
	// ServeMux would answer an unclean path (//start, /a/../start) with a 307 redirect outside
	// the envelope: such paths go to the function that routes by path, as in the server mode.
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if p := r.URL.Path; p == "" || path.Clean(p) != p && p != "/"+strings.Trim(path.Clean(p), "/")+"/" {
			fallback.ServeHTTP(w, r)
			return
		}
		mux.ServeHTTP(w, r)
	})
}

// function serves one route by handing its event to the function, exactly as SCF would.
// In the server mode, every route goes to the server mode's own handler instead.
func (h *harness) function(route string) http.Handler {
	if h.server != nil {
		return h.server.API
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		ev, err := httpapi.EventFromHTTP(r)
		if err != nil {
			writePlatformError(w, http.StatusBadRequest, err.Error())
			return
		}
		id := newRequestID()
		// SCF runs an invocation to its end even when the caller hangs up: a closed tab must not
		// abort an admission halfway through its CAR calls.
		resp, err := h.fns.HTTP(context.WithoutCancel(r.Context()), route, id, ev)
		if err != nil {
			h.log.Error("function failed", "function", route, "request_id", id, "err", err)
			writePlatformError(w, http.StatusBadGateway, "function "+route+" failed; see the harness log for request "+id)
			return
		}
		httpapi.WriteResponse(w, resp)
		h.log.Debug("request", "function", route, "request_id", id, "status", resp.StatusCode, "ms", time.Since(start).Milliseconds())
	})
}

// wait serves until ctx ends or the server fails.
func (h *harness) wait(ctx context.Context) error {
	select {
	case <-ctx.Done():
		return nil
	case err := <-h.served:
		h.served = nil
		return fmt.Errorf("serve %s: %w", h.addrs.HTTP, err)
	}
}

// close stops everything that started, in reverse order, each part bounded by shutdownGrace.
func (h *harness) close() {
	ctx, cancel := context.WithTimeout(context.Background(), shutdownGrace)
	defer cancel()
	closeRelay(ctx, h.relay, h.log) // WebSockets are hijacked: Shutdown would not wait for them
	if h.srv != nil {
		if err := h.srv.Shutdown(ctx); err != nil {
			h.log.Warn("stop HTTP server", "err", err)
		}
		if h.served != nil {
			<-h.served
		}
	}
	if h.cancel != nil {
		h.cancel()
		if h.timer != nil {
			h.timer.wait()
		}
		if h.reaped != nil {
			<-h.reaped
		}
	}
	if h.server != nil {
		if err := h.server.Close(); err != nil {
			h.log.Warn("stop server mode", "err", err)
		}
	}
	if h.fns != nil {
		if err := h.fns.Close(); err != nil {
			h.log.Warn("stop functions", "err", err)
		}
	}
	if h.emu != nil {
		if err := h.emu.close(ctx); err != nil {
			h.log.Warn("stop emulator", "err", err)
		}
	}
	if h.redis != nil {
		h.redis.close()
	}
}

// logLevel reads LOG_LEVEL as the functions do (debug, info, warn, error); anything else is info.
func logLevel(s string) slog.Level {
	var l slog.Level
	if err := l.UnmarshalText([]byte(s)); err != nil {
		return slog.LevelInfo
	}
	return l
}

// queuesHandler serves the configured queues for the pages (the demo page's project picker,
// the dashboard's queue picker): what a business's own site would know from its
// configuration. Only ids and capacities: nothing secret is in a queue's configuration.
func (h *harness) queuesHandler() http.Handler {
	type item struct {
		QueueId, ProjectId              string
		ApplicationId                   string `json:",omitempty"`
		Capacity                        int
		CapacityFromCAR                 bool `json:",omitempty"`
		QueueIdleTimeoutMs, HeartbeatMs int64
	}
	out := make([]item, 0, len(h.queues))
	for _, q := range h.queues {
		out = append(out, item{QueueId: q.ID, ProjectId: q.ProjectID, ApplicationId: q.ApplicationID, Capacity: q.Capacity,
			CapacityFromCAR: q.Capacity == 0, QueueIdleTimeoutMs: q.QueueIdleTimeout.Milliseconds(), HeartbeatMs: q.HeartbeatTimeout.Milliseconds()})
	}
	body, _ := json.Marshal(map[string]any{"Queues": out})
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Access-Control-Allow-Origin", "*")
		_, _ = w.Write(body)
	})
}
