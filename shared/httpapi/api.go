// Package httpapi is the client contract of API.md as SCF HTTP handlers: the envelope, the
// stable codes, input validation, CORS, both event forms (API gateway and function URL), one
// log line per request, and the routes /start /poll /heartbeat /reconnect /stop /stats on top
// of the queue and the admission path.
//
// Handlers are plain functions of (ctx, events.APIGatewayRequest); HTTP errors are status codes
// with a nil Go error, because SCF turns a Go error into a platform error instead of our JSON.
package httpapi

import (
	"context"
	"errors"
	"log/slog"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/carqueue/carqueue/shared/admission"
	"github.com/carqueue/carqueue/shared/queue"
	"github.com/carqueue/carqueue/shared/ticket"
	"github.com/tencentyun/scf-go-lib/events"
)

// HandlerFunc is the SCF HTTP handler shape (cloudfunction.Start accepts it).
type HandlerFunc = func(context.Context, events.APIGatewayRequest) (events.APIGatewayResponse, error)

// Admitter is the admission path: *admission.Admitter satisfies it.
type Admitter interface {
	Admit(ctx context.Context, c queue.Claim) (admission.Outcome, string, error)
	Release(ctx context.Context, userID string) error
}

// Deps are what the handlers are built on. Zero optional fields take the defaults in brackets.
type Deps struct {
	Queue    queue.Interface // required
	Admitter Admitter        // required
	Tickets  *ticket.Signer  // required
	QueueID  string          // required; tickets are bound to it

	AdminToken string // /stats bearer token; "" turns /stats off (401)
	CORSOrigin string // Access-Control-Allow-Origin [*]

	// The CAR ids this queue serves; a request may repeat them but not ask for others.
	ProjectID, ApplicationID, ApplicationVersionID string

	HeartbeatInterval time.Duration // NextHeartbeatMs [15s]
	PollMin, PollMax  time.Duration // NextPollMs at the head / cap far back [1s, 30s]

	Logger *slog.Logger                             // [slog.Default()]
	Now    func() time.Time                         // [time.Now]
	Jitter func() float64                           // uniform in [0,1), spreads NextPollMs [math/rand/v2.Float64]
	Extra  func(ctx context.Context) map[string]any // optional: more /stats fields (e.g. CAR's counts)
}

// API holds the dependencies and the small per-instance cache of the admission rate.
type API struct {
	d          Deps
	corsOrigin string
	log        *slog.Logger
	routes     map[string]routeSpec

	rateMu sync.Mutex
	rateAt time.Time // when rate was read; zero: never
	rate   float64   // admissions per minute; 0: unknown
}

// New checks the dependencies and fills the defaults.
func New(d Deps) (*API, error) {
	switch {
	case d.Queue == nil:
		return nil, errors.New("httpapi: Deps.Queue is required")
	case d.Admitter == nil:
		return nil, errors.New("httpapi: Deps.Admitter is required")
	case d.Tickets == nil:
		return nil, errors.New("httpapi: Deps.Tickets is required")
	case d.QueueID == "":
		return nil, errors.New("httpapi: Deps.QueueID is required")
	}
	if d.HeartbeatInterval <= 0 {
		d.HeartbeatInterval = 15 * time.Second
	}
	if d.PollMin <= 0 {
		d.PollMin = time.Second
	}
	if d.PollMax <= 0 {
		d.PollMax = 30 * time.Second
	}
	if d.PollMax < d.PollMin {
		d.PollMax = d.PollMin
	}
	if d.Now == nil {
		d.Now = time.Now
	}
	if d.Jitter == nil {
		d.Jitter = rand.Float64
	}
	a := &API{d: d, corsOrigin: d.CORSOrigin, log: d.Logger}
	if a.corsOrigin == "" {
		a.corsOrigin = "*"
	}
	if a.log == nil {
		a.log = slog.Default()
	}
	a.routes = a.buildRoutes()
	return a, nil
}

// Routes lists the route names Handler accepts.
var Routes = []string{"start", "poll", "heartbeat", "reconnect", "stop", "stats"}

// Handler returns the SCF handler of one route ("start", "poll", ...), for one function per
// route: it answers the paths "", "/" and any path ending in "/<route>" (an API gateway may put
// a stage or service prefix in front); other paths are 404. Handler("") routes by the last
// path segment instead, for a single function serving every route. An unknown route name
// gives a handler that answers 404 to everything.
func (a *API) Handler(route string) HandlerFunc {
	return func(ctx context.Context, ev events.APIGatewayRequest) (events.APIGatewayResponse, error) {
		return a.serve(ctx, route, ev), nil
	}
}
