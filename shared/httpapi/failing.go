package httpapi

import (
	"context"
	"log/slog"
	"net/http"
	"time"

	"github.com/tencentyun/scf-go-lib/events"
)

// Failing returns a handler for an instance that could not be built (a bad configuration):
// every request gets the same 503 envelope with code and msg (CORS preflights still pass, so
// a browser can read the 503), and one log line at error level. msg must not hold secrets.
func Failing(code Code, msg string, logger *slog.Logger) HandlerFunc {
	if logger == nil {
		logger = slog.Default()
	}
	a := &API{d: Deps{Now: time.Now}, corsOrigin: "*", log: logger}
	return func(ctx context.Context, ev events.APIGatewayRequest) (events.APIGatewayResponse, error) {
		start := time.Now()
		rq := &request{route: routeOf(ev.Path), method: ev.Method}
		rid := newRequestID(ctx)
		if ev.Method == http.MethodOptions {
			a.logRequest(ctx, rq, rid, http.StatusOK, CodeOK, time.Since(start), nil)
			return a.response(http.StatusOK, Envelope{Code: CodeOK, Msg: "OK", RequestId: rid},
				0, a.preflight("GET, POST, OPTIONS")).event(), nil
		}
		ae := Unavailable(code, msg)
		a.logRequest(ctx, rq, rid, ae.status, code, time.Since(start), nil)
		return a.response(ae.status, Envelope{Code: code, Msg: msg, RequestId: rid}, ae.retryAfter, nil).event(), nil
	}
}
