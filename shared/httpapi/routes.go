package httpapi

import (
	"context"
	"errors"
	"net/http"

	"github.com/carqueue/carqueue/shared/queue"
	"github.com/carqueue/carqueue/shared/session"
)

// The user routes: decode and validate, call the session service, render its answer. What
// happens to the user (joining, admission, re-attaching, releasing) is the service's business.

// userFields validates what every user route carries: UserId, and the Ticket when needed.
// Nothing has touched the queue yet, so a bad request changes nothing.
func (a *API) userFields(rq *request, needTicket bool) (string, error) {
	user, err := rq.f.userID()
	if err != nil {
		return "", err
	}
	rq.userID = user
	if !needTicket {
		return user, nil
	}
	tk, err := rq.f.ticket()
	if err != nil {
		return "", err
	}
	if !a.d.Tickets.Verify(a.d.QueueID, user, tk) {
		return "", badTicket("Ticket: not valid for this UserId (call /start to get one)")
	}
	return user, nil
}

// idFields validates the optional CAR ids.
func (a *API) idFields(rq *request) error {
	for _, c := range []struct{ name, configured string }{
		{"ProjectId", a.d.ProjectID},
		{"ApplicationId", a.d.ApplicationID},
		{"ApplicationVersionId", a.d.ApplicationVersionID},
	} {
		if err := rq.f.optionalID(c.name, c.configured); err != nil {
			return err
		}
	}
	return nil
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
	user, err := a.userFields(rq, false)
	if err != nil {
		return nil, err
	}
	c, err := rq.client(true)
	if err != nil {
		return nil, err
	}
	if err := a.idFields(rq); err != nil {
		return nil, err
	}
	d, err := a.answer(rq)(a.d.Sessions.Start(ctx, user, c))
	if err != nil {
		return nil, err
	}
	d.Ticket = a.d.Tickets.Issue(a.d.QueueID, user)
	return d, nil
}

func (a *API) poll(ctx context.Context, rq *request) (any, error) {
	user, err := a.userFields(rq, true)
	if err != nil {
		return nil, err
	}
	c, err := rq.client(false)
	if err != nil {
		return nil, err
	}
	return a.answer(rq)(a.d.Sessions.Poll(ctx, user, c))
}

func (a *API) reconnect(ctx context.Context, rq *request) (any, error) {
	user, err := a.userFields(rq, true)
	if err != nil {
		return nil, err
	}
	c, err := rq.client(true)
	if err != nil {
		return nil, err
	}
	d, err := a.answer(rq)(a.d.Sessions.Reconnect(ctx, user, c))
	if err != nil {
		return nil, err
	}
	d.Ticket = a.d.Tickets.Issue(a.d.QueueID, user)
	return d, nil
}

func (a *API) heartbeat(ctx context.Context, rq *request) (any, error) {
	user, err := a.userFields(rq, true)
	if err != nil {
		return nil, err
	}
	return a.answer(rq)(a.d.Sessions.Heartbeat(ctx, user))
}

func (a *API) stop(ctx context.Context, rq *request) (any, error) {
	user, err := a.userFields(rq, true)
	if err != nil {
		return nil, err
	}
	res, err := a.d.Sessions.Stop(ctx, user)
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

// answer renders a use case's result, or turns its error into the answer.
func (a *API) answer(rq *request) func(session.View, error) (Data, error) {
	return func(v session.View, err error) (Data, error) {
		if err != nil {
			return Data{}, sessionErr(err)
		}
		rq.note = v.Note
		return render(v), nil
	}
}

// sessionErr turns a use case's error into the answer: queue.ErrInvalid means the queue
// refused a value validation let through (a 400, never a 5xx for input); a refusal by CAR is
// the server's configuration problem; anything else is CAR or Redis trouble, worth a retry.
func sessionErr(err error) error {
	switch {
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
