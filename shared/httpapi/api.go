// Package httpapi is the client contract of API.md as SCF HTTP handlers: the envelope, the
// stable codes, input validation, CORS, both event forms (API gateway and function URL), one
// log line per request, and the routes /start /poll /heartbeat /reconnect /stop /stats on top
// of the session service. Transport only: what happens to a user is package session's.
//
// Handlers are plain functions of (ctx, events.APIGatewayRequest); HTTP errors are status codes
// with a nil Go error, because SCF turns a Go error into a platform error instead of our JSON.
package httpapi

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/carqueue/carqueue/shared/queue"
	"github.com/carqueue/carqueue/shared/session"
	"github.com/carqueue/carqueue/shared/ticket"
	"github.com/tencentyun/scf-go-lib/events"
)

// HandlerFunc is the SCF HTTP handler shape (cloudfunction.Start accepts it).
type HandlerFunc = func(context.Context, events.APIGatewayRequest) (events.APIGatewayResponse, error)

// Sessions are the use cases the routes call; *session.Service satisfies it.
type Sessions interface {
	Start(ctx context.Context, userID string, c queue.Client, p queue.Proof) (session.View, error)
	Poll(ctx context.Context, userID string, c queue.Client, p queue.Proof) (session.View, error)
	Reconnect(ctx context.Context, userID string, c queue.Client, p queue.Proof) (session.View, error)
	Heartbeat(ctx context.Context, userID string, p queue.Proof) (session.View, error)
	Stop(ctx context.Context, userID string, p queue.Proof) (session.Stopped, error)
	Stats(ctx context.Context) (queue.Stats, error)
}

// Queue is one queue the routes serve: its id (tickets are bound to it), the CAR ids that
// select it, and its use cases.
type Queue struct {
	ID                                             string
	ProjectID, ApplicationID, ApplicationVersionID string
	Sessions                                       Sessions
	// Extra adds fields to this queue's /stats (CAR's own counts); optional.
	Extra func(ctx context.Context) map[string]any
	// Lanes names the queue's priority lanes besides the default, which a Grant may name.
	Lanes []string
	// Operator is the queue's operator use cases (/admin/*, and the operator's fields of
	// /stats); nil: taken from Sessions when it has them, else the routes answer 404.
	Operator Operator
}

// Deps are what the handlers are built on. Zero optional fields take the defaults in brackets.
type Deps struct {
	// Queues are the queues served, the first the default (QUEUES). Without them, Sessions,
	// QueueID, the CAR ids and Extra describe the one queue.
	Queues []Queue

	Sessions Sessions       // the one queue's, without Queues
	Tickets  *ticket.Signer // required
	QueueID  string         // the one queue's, without Queues
	// Grants verifies the Grant a business backend signs (GRANT_SECRET); nil accepts none.
	Grants *ticket.Grants
	// RequireGrant makes every /start need a valid Grant for its UserId (REQUIRE_GRANT).
	RequireGrant bool

	AdminToken string // /stats bearer token; "" turns /stats off (401)
	CORSOrigin string // Access-Control-Allow-Origin [*]

	// The CAR ids this queue serves; a request may repeat them but not ask for others.
	ProjectID, ApplicationID, ApplicationVersionID string

	Logger *slog.Logger                             // [slog.Default()]
	Now    func() time.Time                         // [time.Now]; times the request log line
	Extra  func(ctx context.Context) map[string]any // optional: more /stats fields (e.g. CAR's counts)
}

// API holds the dependencies and the route table.
type API struct {
	d          Deps
	queues     []Queue
	byID       map[string]*Queue
	corsOrigin string
	log        *slog.Logger
	routes     map[string]routeSpec
	plain      plainHeaders // the headers of most answers, built once
}

// plainHeaders are the headers of an answer with no Retry-After and no extra header (nearly
// every answer), built once and shared read-only: one map per answer was a tenth of a poll's
// allocations. Nothing writes to an answer's Headers after response builds it.
type plainHeaders struct {
	once sync.Once
	h    map[string]string
}

// New checks the dependencies and fills the defaults.
func New(d Deps) (*API, error) {
	if len(d.Queues) == 0 {
		d.Queues = []Queue{{ID: d.QueueID, ProjectID: d.ProjectID, ApplicationID: d.ApplicationID,
			ApplicationVersionID: d.ApplicationVersionID, Sessions: d.Sessions, Extra: d.Extra}}
	}
	if d.Tickets == nil {
		return nil, errors.New("httpapi: Deps.Tickets is required")
	}
	byID := map[string]*Queue{}
	for i := range d.Queues {
		q := &d.Queues[i]
		switch {
		case q.Sessions == nil:
			return nil, fmt.Errorf("httpapi: queue %d: Sessions is required", i+1)
		case q.ID == "":
			return nil, fmt.Errorf("httpapi: queue %d: ID is required", i+1)
		case byID[q.ID] != nil:
			return nil, fmt.Errorf("httpapi: queue %d: ID %q repeats", i+1, q.ID)
		}
		byID[q.ID] = q
		if op, ok := q.Sessions.(Operator); ok && q.Operator == nil {
			q.Operator = op
		}
	}
	if d.Now == nil {
		d.Now = time.Now
	}
	if d.Grants == nil {
		d.Grants = ticket.NewGrants("")
	}
	a := &API{d: d, queues: d.Queues, byID: byID, corsOrigin: d.CORSOrigin, log: d.Logger}
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
var Routes = []string{"start", "poll", "heartbeat", "reconnect", "stop", "stats",
	"admin/pause", "admin/resume", "admin/capacity", "admin/kick", "admin/notice", "admin/sessions", "admin/records"}

// Handler returns the SCF handler of one route ("start", "poll", ...), for one function per
// route: it answers the paths "", "/" and any path ending in "/<route>" (an API gateway may put
// a stage or service prefix in front); other paths are 404. Handler("") routes by the last
// path segment instead, for a single function serving every route. An unknown route name
// gives a handler that answers 404 to everything.
func (a *API) Handler(route string) HandlerFunc {
	return func(ctx context.Context, ev events.APIGatewayRequest) (events.APIGatewayResponse, error) {
		return a.serve(ctx, route, ev, false).event(), nil
	}
}
