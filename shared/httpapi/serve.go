package httpapi

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"runtime/debug"
	"strings"
	"time"

	"github.com/tencentyun/scf-go-lib/events"
	"github.com/tencentyun/scf-go-lib/functioncontext"
)

// request is one call as the route code sees it; userID and outcome are filled in as the
// request is understood, for the log line.
type request struct {
	route   string
	method  string
	header  map[string]string // lower-case names
	query   map[string]string // the query string's first values (/stats?QueueId=)
	f       fields
	queue   *Queue // the queue the request is for, once picked
	ip      string
	userID  string
	rid     string // the RequestId, for the route's own log lines
	outcome string // Data.Status of the answer
	note    string // extra log detail (an admission outcome), never secret
	joinID  string // the join the use case proved, for the answer's ticket
}

type routeFunc func(ctx context.Context, rq *request) (any, error)

type routeSpec struct {
	fn      routeFunc
	methods []string // besides OPTIONS
}

// allow is the route's Allow header: its methods and OPTIONS.
func (s routeSpec) allow() string {
	return strings.Join(append(append([]string{}, s.methods...), http.MethodOptions), ", ")
}

func (a *API) buildRoutes() map[string]routeSpec {
	post := []string{http.MethodPost}
	routes := map[string]routeSpec{
		"start":     {a.start, post},
		"poll":      {a.poll, post},
		"heartbeat": {a.heartbeat, post},
		"reconnect": {a.reconnect, post},
		"stop":      {a.stop, post},
		"stats":     {a.stats, []string{http.MethodGet, http.MethodPost}},
	}
	for name, spec := range a.adminRoutes() {
		routes[name] = spec
	}
	return routes
}

// serve runs one request through the contract: route and method, CORS preflight, body size,
// JSON, RequestId, the route, the envelope, one log line. It never panics and never returns a
// Go error: everything the client should see is in the response.
//
// lowered says ev.Headers already has lower-case names only (ServeHTTP builds it so), so the
// map is used as it is rather than copied.
func (a *API) serve(ctx context.Context, fixedRoute string, ev events.APIGatewayRequest, lowered bool) (resp reply) {
	start := a.d.Now()
	rq := &request{header: ev.Headers, query: firstValues(ev.QueryString)}
	if !lowered {
		rq.header = headers(ev)
	}
	rid := ""
	var status int
	var code Code
	var cause error
	defer func() {
		if p := recover(); p != nil {
			if rid == "" {
				rid = newRequestID(ctx)
			}
			status, code, cause = http.StatusInternalServerError, CodeInternal, fmt.Errorf("panic: %v\n%s", p, debug.Stack())
			resp = a.response(status, Envelope{Code: code, Msg: "internal error", RequestId: rid}, 0, nil)
		}
		a.logRequest(ctx, rq, rid, status, code, a.d.Now().Sub(start), cause)
	}()

	answer := func(data any, err error, extra map[string]string) reply {
		if rid == "" {
			rid = newRequestID(ctx)
		}
		if err == nil {
			status, code = http.StatusOK, CodeOK
			return a.response(status, Envelope{Code: CodeOK, Msg: "OK", RequestId: rid, Data: data}, 0, extra)
		}
		var ae *apiError
		if !errors.As(err, &ae) {
			// Input was validated before any call, so what is left is infrastructure.
			ae = unavailable("service", err)
		}
		status, code, cause = ae.status, ae.code, ae.cause
		if cause == nil && ae.status >= 500 {
			cause = err
		}
		return a.response(ae.status, Envelope{Code: ae.code, Msg: ae.msg, RequestId: rid}, ae.retryAfter, extra)
	}

	method := strings.ToUpper(ev.Method)
	if method == "" {
		method = strings.ToUpper(ev.Context.Method)
	}
	if method == "" {
		method = http.MethodPost // a direct invocation without an HTTP method
	}
	rq.method = method

	routes := a.routes
	rq.route = fixedRoute
	if fixedRoute == "" {
		rq.route = routeOf(ev.Path)
	} else if p := strings.TrimRight(ev.Path, "/"); p != "" && routeOf(p) != fixedRoute {
		rq.route = routeOf(p)
		return answer(nil, &apiError{status: http.StatusNotFound, code: CodeUnknownPath, msg: "path: unknown; this function serves /" + fixedRoute}, nil)
	}
	spec, ok := routes[rq.route]
	if !ok {
		return answer(nil, &apiError{status: http.StatusNotFound, code: CodeUnknownPath,
			msg: "path: unknown; routes are /start /poll /heartbeat /reconnect /stop /stats and /admin/*"}, nil)
	}
	if method == http.MethodOptions {
		return answer(struct{}{}, nil, a.preflight(spec.allow()))
	}
	if !contains(spec.methods, method) {
		return answer(nil, &apiError{status: http.StatusMethodNotAllowed, code: CodeMethod,
			msg: fmt.Sprintf("method: %s not allowed on /%s; use %s", method, rq.route, strings.Join(spec.methods, " or "))},
			map[string]string{"Allow": spec.allow()})
	}

	b, aerr := body(ev.Body)
	if aerr != nil {
		return answer(nil, aerr, nil)
	}
	// /stats and the operator's routes need no field, so an empty body is fine there.
	f, aerr := parseFields(b, rq.route == "stats" || strings.HasPrefix(rq.route, "admin/"))
	if aerr != nil && rq.route == "stats" {
		f = fields{} // /stats reads no field: whatever a monitoring tool sends is fine
	} else if aerr != nil {
		return answer(nil, aerr, nil)
	}
	rq.f = f
	callerID, err := f.requestID()
	if err != nil {
		return answer(nil, err, nil)
	}
	rid = callerID
	if rid == "" {
		rid = newRequestID(ctx)
	}
	rq.rid = rid
	rq.ip = clientIP(ev, rq.header)

	data, err := spec.fn(ctx, rq)
	if d, ok := data.(Data); ok {
		rq.outcome = d.Status
	}
	return answer(data, err, nil)
}

// preflight answers a CORS preflight: any method the route takes and the headers browsers
// ask for are allowed.
func (a *API) preflight(allow string) map[string]string {
	return map[string]string{
		"Access-Control-Allow-Methods": allow,
		"Access-Control-Allow-Headers": "Content-Type, Authorization, X-Requested-With",
		"Access-Control-Max-Age":       "600",
		"Allow":                        allow,
	}
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// newRequestID prefers the SCF invocation's id (so our log line joins the platform's), else
// 12 random bytes.
func newRequestID(ctx context.Context) string {
	if fc, ok := functioncontext.FromContext(ctx); ok && fc.RequestID != "" {
		return fc.RequestID
	}
	b := make([]byte, 12)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// logRequest writes the one line per request. It names no ticket, session, token or secret.
func (a *API) logRequest(ctx context.Context, rq *request, rid string, status int, code Code, d time.Duration, cause error) {
	level := slog.LevelInfo
	switch {
	case status >= 500 && status != http.StatusServiceUnavailable:
		level = slog.LevelError
	case status >= 500:
		level = slog.LevelWarn
	}
	if !a.log.Enabled(ctx, level) { // at LOG_LEVEL=warn a poll's line costs nothing
		return
	}
	attrs := []slog.Attr{
		slog.String("route", rq.route),
		slog.String("method", rq.method),
		slog.Int("status", status),
		slog.Int("code", int(code)),
		slog.Float64("duration_ms", float64(d.Microseconds())/1000),
		slog.String("user_id", rq.userID),
		slog.String("request_id", rid),
	}
	if rq.outcome != "" {
		attrs = append(attrs, slog.String("outcome", rq.outcome))
	}
	if rq.note != "" {
		attrs = append(attrs, slog.String("note", rq.note))
	}
	if cause != nil {
		attrs = append(attrs, slog.String("err", cause.Error()))
	}
	a.log.LogAttrs(ctx, level, "request", attrs...)
}

// firstValues keeps the first value of each query parameter.
func firstValues(qs map[string][]string) map[string]string {
	if len(qs) == 0 {
		return nil
	}
	out := make(map[string]string, len(qs))
	for k, v := range qs {
		if len(v) > 0 {
			out[k] = v[0]
		}
	}
	return out
}
