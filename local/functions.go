package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"runtime/debug"
	"time"

	"github.com/carqueue/carqueue/shared/app"
	"github.com/tencentyun/scf-go-lib/events"
	"github.com/tencentyun/scf-go-lib/functioncontext"
)

// routes are the HTTP functions, by path without the slash; each is also the name of its
// directory under functions/. Route "" is the handler that routes by path (used for unknown
// paths, so their 404 is the contract's own).
var routes = []string{"start", "poll", "heartbeat", "reconnect", "stop", "stats", adminFunction}

// adminFunction serves every operator route (/admin/*), routing by path as its binary does.
const adminFunction = "admin"

// handlerRoute is the route a function's handler is built for: its own, or "" (by path) for
// the admin function.
func handlerRoute(function string) string {
	if function == adminFunction {
		return ""
	}
	return function
}

// reaperFunction is the directory of the timer-triggered function under functions/.
const reaperFunction = "reaper-cron"

// functions invokes the SCF functions, in this process or as built binaries; both take the
// same events and give the same answers.
type functions interface {
	HTTP(ctx context.Context, route, requestID string, ev events.APIGatewayRequest) (events.APIGatewayResponse, error)
	Timer(ctx context.Context, requestID string, ev events.TimerEvent) error
	Close() error
}

// inProcess calls the shared/app handlers directly, as the function binaries' main would, with
// the deadline and function context the SCF runtime gives an invocation.
type inProcess struct {
	http          map[string]app.HTTPHandler
	reaper        app.TimerHandler
	timeout       time.Duration // of an HTTP invocation
	reaperTimeout time.Duration // of a reaper invocation
}

func newInProcess(timeout, reaperTimeout time.Duration) *inProcess {
	f := &inProcess{http: map[string]app.HTTPHandler{}, reaper: app.Reaper(), timeout: timeout, reaperTimeout: reaperTimeout}
	for _, r := range append([]string{""}, routes...) {
		f.http[r] = app.HTTP(handlerRoute(r))
	}
	return f
}

func (f *inProcess) HTTP(ctx context.Context, route, requestID string, ev events.APIGatewayRequest) (resp events.APIGatewayResponse, err error) {
	h, ok := f.http[route]
	if !ok {
		return resp, fmt.Errorf("no function %q", route)
	}
	ctx, cancel := f.invocation(ctx, route, requestID, f.timeout)
	defer cancel()
	defer recoverAsError(route, &err)
	return h(ctx, ev)
}

func (f *inProcess) Timer(ctx context.Context, requestID string, ev events.TimerEvent) (err error) {
	ctx, cancel := f.invocation(ctx, reaperFunction, requestID, f.reaperTimeout)
	defer cancel()
	defer recoverAsError(reaperFunction, &err)
	return f.reaper(ctx, ev)
}

func (f *inProcess) Close() error { return nil }

// invocation gives ctx the deadline and functioncontext an SCF invocation carries.
func (f *inProcess) invocation(ctx context.Context, name, requestID string, timeout time.Duration) (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	return functioncontext.NewContext(ctx, &functioncontext.FunctionContext{
		RequestID:     requestID,
		FunctionName:  name,
		Namespace:     "local",
		TimeLimitInMs: int32(timeout.Milliseconds()),
	}), cancel
}

// recoverAsError turns a handler panic into an invocation error, as the SCF runtime does,
// so one bad request cannot take the whole harness down.
func recoverAsError(name string, err *error) {
	if p := recover(); p != nil {
		*err = fmt.Errorf("function %s panicked: %v\n%s", name, p, debug.Stack())
	}
}

// newRequestID returns a random id in the shape of SCF's request ids.
func newRequestID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	h := hex.EncodeToString(b[:])
	return h[0:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:32]
}
