package httpapi

import (
	"context"
	"errors"
	"fmt"
	"net/http"

	"github.com/carqueue/carqueue/shared/admission"
	"github.com/carqueue/carqueue/shared/queue"
)

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

// start: Join (keeping the place of a user already queued), then admit at once when the user
// is at the head and a slot is free. A user who already holds a slot calls /start again after
// a page reload with a new ClientSession, so it re-attaches to its slot with that session.
func (a *API) start(ctx context.Context, rq *request) (any, error) {
	user, err := a.userFields(rq, false)
	if err != nil {
		return nil, err
	}
	cs, err := rq.f.clientSession(true)
	if err != nil {
		return nil, err
	}
	if err := a.idFields(rq); err != nil {
		return nil, err
	}
	d, err := a.join(ctx, rq, user, cs)
	if err != nil {
		return nil, err
	}
	d.Ticket = a.d.Tickets.Issue(a.d.QueueID, user)
	return d, nil
}

// join is /start after validation (also /reconnect outside its window).
func (a *API) join(ctx context.Context, rq *request, user, cs string) (Data, error) {
	packed := admission.Pack(rq.ip, cs)
	st, err := a.joinReleased(ctx, user, packed)
	if err != nil {
		return Data{}, err
	}
	if st.State == queue.StateReady || st.State == queue.StateActive {
		claim, ok, err := a.d.Queue.Reattach(ctx, user, packed)
		if err != nil {
			return Data{}, queueErr(fmt.Errorf("reattach %s: %w", user, err))
		}
		if ok {
			return a.admit(ctx, rq, claim)
		}
		// Past the reconnect window but not reaped yet: the old session is as good as
		// expired, and its ServerSession is useless to the new ClientSession. End it now and
		// join afresh, as the contract says a late return behaves.
		if _, err := a.d.Queue.Stop(ctx, user); err != nil {
			return Data{}, queueErr(fmt.Errorf("stop expired holder %s: %w", user, err))
		}
		rq.note = "expired holder restarted"
		if st, err = a.joinReleased(ctx, user, packed); err != nil {
			return Data{}, err
		}
	}
	return a.admitHead(ctx, rq, user, st)
}

// joinReleased is Join, first finishing the release of a user still Releasing (an earlier
// DestroySession failed, or a stop just now): its slot must be confirmed free at CAR before
// the user may queue for a new one.
func (a *API) joinReleased(ctx context.Context, user, packed string) (queue.Status, error) {
	st, err := a.d.Queue.Join(ctx, user, packed)
	if err != nil {
		return st, queueErr(fmt.Errorf("join %s: %w", user, err))
	}
	if st.State != queue.StateReleasing {
		return st, nil
	}
	if err := a.d.Admitter.Release(ctx, user); err != nil {
		return st, unavailable("previous session still being released; CAR", err)
	}
	if st, err = a.d.Queue.Join(ctx, user, packed); err != nil {
		return st, queueErr(fmt.Errorf("join %s after release: %w", user, err))
	}
	if st.State == queue.StateReleasing {
		return st, unavailable("previous session still being released; CAR", errors.New("still releasing"))
	}
	return st, nil
}

// admitHead admits a queued user who is at the head, if a slot is free.
func (a *API) admitHead(ctx context.Context, rq *request, user string, st queue.Status) (Data, error) {
	if st.State != queue.StateQueued || st.Position != 1 {
		return a.view(ctx, st), nil
	}
	claim, ok, err := a.d.Queue.ClaimUser(ctx, user)
	if err != nil {
		return Data{}, queueErr(fmt.Errorf("claim %s: %w", user, err))
	}
	if !ok {
		return a.view(ctx, st), nil
	}
	return a.admit(ctx, rq, claim)
}

// admit runs the admission path for a claim. Admitted answers Ready; a transient failure left
// the user at the front (or holding, for a reattach), so its fresh status is answered; a
// refusal for good is the server's configuration problem, a 503.
func (a *API) admit(ctx context.Context, rq *request, claim queue.Claim) (Data, error) {
	outcome, serverSession, err := a.d.Admitter.Admit(ctx, claim)
	rq.note = "admission " + outcome.String()
	switch outcome {
	case admission.Admitted:
		return Data{Status: StatusReady, ServerSession: serverSession}, nil
	case admission.Refused:
		return Data{}, &apiError{status: http.StatusServiceUnavailable, code: CodeCARRefused,
			msg: "cloud rendering refused the admission (server configuration); try /start later", retryAfter: 30, cause: err}
	}
	if err != nil {
		a.log.WarnContext(ctx, "admission did not complete", "user_id", claim.UserID, "request_id", rq.rid, "outcome", outcome.String(), "err", err)
	}
	st, perr := a.d.Queue.Poll(ctx, claim.UserID, "")
	if perr != nil {
		return Data{}, unavailable("queue", errors.Join(err, fmt.Errorf("poll %s after admission: %w", claim.UserID, perr)))
	}
	if claim.Reattach && outcome == admission.Requeued && (st.State == queue.StateReady || st.State == queue.StateActive) {
		// The user still holds its slot, but its stored ServerSession belongs to the old
		// ClientSession: answering it would make the client start a dead session. Retry instead.
		return Data{}, unavailable("cloud rendering", err)
	}
	return a.view(ctx, st), nil
}

// poll: Poll (one round trip); the head with a free slot is admitted at once.
func (a *API) poll(ctx context.Context, rq *request) (any, error) {
	user, err := a.userFields(rq, true)
	if err != nil {
		return nil, err
	}
	cs, err := rq.f.clientSession(false)
	if err != nil {
		return nil, err
	}
	st, err := a.d.Queue.Poll(ctx, user, admission.Pack(rq.ip, cs))
	if err != nil {
		return nil, queueErr(fmt.Errorf("poll %s: %w", user, err))
	}
	return a.admitHead(ctx, rq, user, st)
}

// reconnect: inside HEARTBEAT_TIMEOUT a holder re-attaches to its slot with the new
// ClientSession, without queueing; otherwise it behaves like /start.
func (a *API) reconnect(ctx context.Context, rq *request) (any, error) {
	user, err := a.userFields(rq, true)
	if err != nil {
		return nil, err
	}
	cs, err := rq.f.clientSession(true)
	if err != nil {
		return nil, err
	}
	packed := admission.Pack(rq.ip, cs)
	claim, ok, err := a.d.Queue.Reattach(ctx, user, packed)
	if err != nil {
		return nil, queueErr(fmt.Errorf("reattach %s: %w", user, err))
	}
	var d Data
	if ok {
		d, err = a.admit(ctx, rq, claim)
	} else {
		d, err = a.join(ctx, rq, user, cs)
	}
	if err != nil {
		return nil, err
	}
	d.Ticket = a.d.Tickets.Issue(a.d.QueueID, user)
	return d, nil
}

// heartbeat: Ready → Active, Active stays (one round trip). Anything else is Expired: the
// client calls /start again.
func (a *API) heartbeat(ctx context.Context, rq *request) (any, error) {
	user, err := a.userFields(rq, true)
	if err != nil {
		return nil, err
	}
	st, err := a.d.Queue.Heartbeat(ctx, user)
	if err != nil {
		return nil, queueErr(fmt.Errorf("heartbeat %s: %w", user, err))
	}
	switch st.State {
	case queue.StateReady, queue.StateActive, queue.StateAdmitting:
		return Data{Status: StatusActive, NextHeartbeatMs: a.d.HeartbeatInterval.Milliseconds()}, nil
	}
	return Data{Status: StatusExpired, Reason: string(st.Reason)}, nil
}

// stop: a queued user leaves the line; a holder's session is destroyed and its slot freed at
// once. If CAR cannot be reached now, the user stays Releasing (holding its slot) and the
// reaper retries; the client is stopped either way. Stopping twice is fine.
func (a *API) stop(ctx context.Context, rq *request) (any, error) {
	user, err := a.userFields(rq, true)
	if err != nil {
		return nil, err
	}
	prev, err := a.d.Queue.Stop(ctx, user)
	if err != nil {
		return nil, queueErr(fmt.Errorf("stop %s: %w", user, err))
	}
	if prev.Holds() {
		if err := a.d.Admitter.Release(ctx, user); err != nil {
			rq.note = "release deferred to the reaper"
			a.log.WarnContext(ctx, "release after stop failed; the reaper will retry", "user_id", user, "request_id", rq.rid, "err", err)
		} else {
			rq.note = "released"
		}
	}
	return Data{Status: StatusStopped}, nil
}

// queueErr turns a queue failure into the answer: ErrInvalid means the queue refused a value
// validation let through (a 400, never a 5xx for input); anything else is Redis trouble.
func queueErr(err error) error {
	if errors.Is(err, queue.ErrInvalid) {
		return &apiError{status: http.StatusBadRequest, code: CodeInvalidField,
			msg: "request: a field was rejected by the queue as invalid", cause: err}
	}
	return unavailable("queue", err)
}
