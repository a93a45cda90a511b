package httpapi

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"

	"github.com/carqueue/carqueue/shared/queue"
	"github.com/carqueue/carqueue/shared/session"
	"github.com/carqueue/carqueue/shared/ticket"
)

// The user routes: decode and validate, call the session service, render its answer. What
// happens to the user (joining, admission, re-attaching, releasing) is the service's business.

// userFields validates what every user route carries: UserId, and the Ticket when needed,
// whose join id becomes the proof the queue checks. Nothing has touched the queue yet, so a
// bad request changes nothing.
func (a *API) userFields(rq *request, q *Queue, needTicket bool) (string, queue.Proof, error) {
	user, err := rq.f.userID()
	if err != nil {
		return "", queue.Unproven, err
	}
	rq.userID = user
	if !needTicket {
		return user, queue.Unproven, nil
	}
	tk, err := rq.f.ticket()
	if err != nil {
		return "", queue.Unproven, err
	}
	join, ok := a.d.Tickets.Verify(q.ID, user, tk)
	if !ok {
		if len(a.queues) > 1 {
			return "", queue.Unproven, badTicket("Ticket: not valid for this UserId in this queue (send the QueueId it was issued for, or call /start)")
		}
		return "", queue.Unproven, badTicket("Ticket: not valid for this UserId (call /start to get one)")
	}
	return user, queue.Ticketed(join), nil
}

// startProof is what /start brings to prove it may act for a UserId the queue may already
// know: a Grant (verified here: 401 when bad, expired or foreign), else a Ticket (a forged one
// is 401; a genuine one of an earlier join the queue simply does not accept), else nothing.
// With REQUIRE_GRANT every /start needs a valid Grant.
func (a *API) startProof(rq *request, q *Queue, user string) (queue.Proof, error) {
	g, err := rq.f.str("Grant")
	if err != nil {
		return queue.Unproven, badTicket("Grant: must be a string")
	}
	if g != "" {
		grant, err := a.d.Grants.Verify(g, user, a.d.Now())
		if err != nil {
			return queue.Unproven, badTicket("Grant: " + strings.TrimPrefix(err.Error(), ticket.ErrGrant.Error()+": "))
		}
		if grant.Lane != "" && grant.Lane != queue.DefaultLane && !slices.Contains(q.Lanes, grant.Lane) {
			return queue.Unproven, badTicket(fmt.Sprintf("Grant: lane %q is not configured for this queue", truncate(grant.Lane, 32)))
		}
		return queue.GrantedIn(grant.Lane), nil
	}
	if a.d.RequireGrant {
		return queue.Unproven, badTicket("Grant: required by this queue (REQUIRE_GRANT): ask the site for one")
	}
	if _, ok := rq.f["Ticket"]; !ok {
		return queue.Unproven, nil
	}
	_, p, err := a.userFields(rq, q, true)
	return p, err
}

// client is what the queue keeps of the caller's client: its IP and the ClientSession.
func (rq *request) client(required bool) (queue.Client, error) {
	cs, err := rq.f.clientSession(required)
	if err != nil {
		return queue.Client{}, err
	}
	return queue.Client{IP: rq.ip, Session: cs}, nil
}

func (a *API) start(ctx context.Context, rq *request) (any, error) {
	user, err := rq.f.userID()
	if err != nil {
		return nil, err
	}
	rq.userID = user
	c, err := rq.client(true)
	if err != nil {
		return nil, err
	}
	q, err := a.pick(rq)
	if err != nil {
		return nil, err
	}
	p, err := a.startProof(rq, q, user)
	if err != nil {
		return nil, err
	}
	v, err := q.Sessions.Start(ctx, user, c, p)
	return a.withTicket(rq, user, "")(a.answer(rq)(v, err))
}

// ticketed validates what the routes after /start carry: the queue, UserId and Ticket.
func (a *API) ticketed(rq *request) (*Queue, string, queue.Proof, error) {
	q, err := a.pick(rq)
	if err != nil {
		return nil, "", queue.Unproven, err
	}
	user, p, err := a.userFields(rq, q, true)
	return q, user, p, err
}

func (a *API) poll(ctx context.Context, rq *request) (any, error) {
	q, user, p, err := a.ticketed(rq)
	if err != nil {
		return nil, err
	}
	c, err := rq.client(false)
	if err != nil {
		return nil, err
	}
	return a.answer(rq)(q.Sessions.Poll(ctx, user, c, p))
}

func (a *API) reconnect(ctx context.Context, rq *request) (any, error) {
	q, user, p, err := a.ticketed(rq)
	if err != nil {
		return nil, err
	}
	c, err := rq.client(true)
	if err != nil {
		return nil, err
	}
	tk, _ := rq.f.str("Ticket") // verified above
	v, err := q.Sessions.Reconnect(ctx, user, c, p)
	return a.withTicket(rq, user, tk)(a.answer(rq)(v, err))
}

func (a *API) heartbeat(ctx context.Context, rq *request) (any, error) {
	q, user, p, err := a.ticketed(rq)
	if err != nil {
		return nil, err
	}
	return a.answer(rq)(q.Sessions.Heartbeat(ctx, user, p))
}

func (a *API) stop(ctx context.Context, rq *request) (any, error) {
	q, user, p, err := a.ticketed(rq)
	if err != nil {
		return nil, err
	}
	res, err := q.Sessions.Stop(ctx, user, p)
	if err != nil {
		return nil, sessionErr(err)
	}
	switch {
	case res.Released:
		rq.note = "released"
	case res.Deferred:
		rq.note = "release deferred to the reaper"
	}
	return Data{Status: StatusStopped}, nil
}

// withTicket adds the ticket of the answer: a fresh one for the join the use case names, else
// the caller's own (a re-attach keeps the join), else none (a caller who proved nothing).
func (a *API) withTicket(rq *request, user, callers string) func(Data, error) (Data, error) {
	return func(d Data, err error) (Data, error) {
		if err != nil {
			return d, err
		}
		switch {
		case rq.joinID != "":
			tk, err := a.d.Tickets.Issue(rq.queue.ID, user, rq.joinID)
			if err != nil {
				return Data{}, unavailable("tickets", err)
			}
			d.Ticket = tk
		case callers != "":
			d.Ticket = callers
		}
		return d, nil
	}
}

// answer renders a use case's result, or turns its error into the answer.
func (a *API) answer(rq *request) func(session.View, error) (Data, error) {
	return func(v session.View, err error) (Data, error) {
		if err != nil {
			return Data{}, sessionErr(err)
		}
		rq.note, rq.joinID = v.Note, v.JoinID
		return render(v), nil
	}
}

// sessionErr turns a use case's error into the answer: queue.ErrInvalid means the queue
// refused a value validation let through (a 400, never a 5xx for input); a refusal by CAR is
// the server's configuration problem; anything else is CAR or Redis trouble, worth a retry.
func sessionErr(err error) error {
	switch {
	case errors.Is(err, queue.ErrBadTicket):
		return badTicket("Ticket: of an earlier join of this UserId; call /start again")
	case errors.Is(err, session.ErrElsewhere):
		var ee *session.ElsewhereError
		errors.As(err, &ee)
		return &apiError{status: http.StatusConflict, code: CodeElsewhere,
			msg: "UserId: already waiting or playing in queue " + quote(ee.QueueID) + "; /stop there first", cause: err}
	case errors.Is(err, queue.ErrInvalid):
		return &apiError{status: http.StatusBadRequest, code: CodeInvalidField,
			msg: "request: a field was rejected by the queue as invalid", cause: err}
	case errors.Is(err, session.ErrRefused):
		return &apiError{status: http.StatusServiceUnavailable, code: CodeCARRefused,
			msg: "cloud rendering refused the admission (server configuration); try /start later", retryAfter: 30, cause: err}
	case errors.Is(err, session.ErrCARUnavailable):
		return unavailable("cloud rendering", err)
	default:
		return unavailable("queue", err)
	}
}
