package session

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/carqueue/carqueue/shared/queue"
)

// Status is what a user is told it is.
type Status string

// The statuses of the client contract.
const (
	StatusQueued    Status = "Queued"
	StatusAdmitting Status = "Admitting"
	StatusReady     Status = "Ready"  // holds a slot; ServerSession to start the stream with
	StatusActive    Status = "Active" // heartbeating (the answer of Heartbeat)
	StatusExpired   Status = "Expired"
)

// View is a use case's answer to a user, ready to be rendered by a transport.
type View struct {
	Status   Status
	Position int64 // Queued: 1-based
	Length   int64 // Queued: users in line
	// ETA is the estimated wait when Queued; 0 while unknown (no admission measured yet).
	ETA           time.Duration
	NextPoll      time.Duration // Queued, Admitting: when to poll again
	ServerSession string        // Ready
	NextHeartbeat time.Duration // Ready, Active: when to heartbeat again
	// ReconnectWindow is how long after its last heartbeat a holder may still re-attach to
	// its slot (HEARTBEAT_TIMEOUT); Ready and Active.
	ReconnectWindow time.Duration
	Reason          queue.Reason // Expired: why, when the queue still remembers
	// JoinID names the user's current join when the caller proved it may act for the user
	// (Start, Reconnect): the transport issues a ticket for it. Empty otherwise: a known user
	// asked for without proof is told its state and place, and nothing changed.
	JoinID string
	// Note is a short log detail (an admission's outcome), never shown to the user.
	Note string

	// Lane is the user's priority lane (DefaultLane without lanes) when Queued or holding.
	Lane string
	// OpensIn, when > 0, is the time until the scheduled opening: the user is Queued without
	// a place yet (Position and ETA are 0).
	OpensIn time.Duration
	// Remaining is the time left of a session capped by MaxSession (Limited), and Warning a
	// plain-text notice during its last SessionWarning; heartbeat answers only.
	Remaining time.Duration
	Limited   bool
	Warning   string
	// Notice is the operator's message to every user of the queue ("" when none), Paused
	// whether admission is paused; every answer of Start, Poll, Reconnect and Heartbeat.
	Notice string
	Paused bool
}

// Errors the use cases return for outcomes a transport must answer in its own way. Anything
// else is the queue's (Redis) trouble, or queue.ErrInvalid for a value the queue refused.
var (
	// ErrRefused: CAR refused the admission for good (our configuration); the user left.
	ErrRefused = errors.New("cloud rendering refused the admission")
	// ErrCARUnavailable: CAR could not do now what the use case needs; the user keeps its
	// place or its slot, and may retry.
	ErrCARUnavailable = errors.New("cloud rendering unavailable")
)

// Start is /start: join the line (keeping the place of a user already queued, and finishing
// the release of one still leaving), then admit at once when the user is at the head and a
// slot is free. A user who already holds a slot calls Start again after a page reload with a
// new ClientSession, so it re-attaches to its slot with that session.
//
// p is what the caller showed: the proof of a ticket (it may be stale), a grant, or nothing.
// For a user the queue already knows, only a ticket of its current join or a grant lets Start
// change anything; otherwise the answer is the user's state and place without JoinID.
func (s *Service) Start(ctx context.Context, userID string, c queue.Client, p queue.Proof) (View, error) {
	return s.annotate(ctx)(s.startAny(ctx, userID, c, p))
}

// startAny is Start without the operator's notice.
func (s *Service) startAny(ctx context.Context, userID string, c queue.Client, p queue.Proof) (View, error) {
	if err := s.enter(ctx, userID); err != nil {
		return View{}, err
	}
	st, err := s.joinReleased(ctx, userID, c, p)
	if err != nil {
		return View{}, err
	}
	if st.JoinID == "" {
		// The status and place only: nothing that would let the caller act for the user.
		v := s.view(ctx, st)
		v.ServerSession, v.NextHeartbeat, v.ReconnectWindow = "", 0, 0
		v.Note = "unproven caller of a known user: nothing changed"
		return v, nil
	}
	v, err := s.start(ctx, userID, c, st)
	if v.JoinID == "" {
		v.JoinID = st.JoinID
	}
	return v, err
}

// start is Start for a caller that proved it may act for the user (st came from its Join).
func (s *Service) start(ctx context.Context, userID string, c queue.Client, st queue.Status) (View, error) {
	note := ""
	if st.State == queue.StateReady || st.State == queue.StateActive {
		claim, ok, err := s.line.Reattach(ctx, userID, c, queue.Trusted)
		if err != nil {
			return View{}, err
		}
		if ok {
			return s.admitNow(ctx, claim)
		}
		// No reattach: either the user is past its reconnect window and the reaper has not
		// reached it yet, or a concurrent call of the same user has just moved it (it is
		// re-attaching, or has re-attached). Expire ends the first case only, atomically; in
		// the second the user keeps its slot and is told where it stands.
		expired, err := s.line.Expire(ctx, userID)
		if err != nil {
			return View{}, err
		}
		if !expired {
			if st, err = s.line.Poll(ctx, userID, queue.Client{}, queue.Trusted); err != nil {
				return View{}, err
			}
			v := s.view(ctx, st)
			v.Note = "concurrent call holds the slot"
			return v, nil
		}
		// The old session is over, and its ServerSession is useless to the new
		// ClientSession: release it and join afresh, as the contract says a late return
		// behaves.
		note = "expired holder restarted"
		if st, err = s.joinReleased(ctx, userID, c, queue.Trusted); err != nil {
			return View{}, err
		}
	}
	v, err := s.admitHead(ctx, userID, st)
	if v.Note == "" {
		v.Note = note
	}
	if note != "" {
		// The user joined afresh: the answer's ticket must name the new join, or the
		// caller's next request would be refused as of an earlier join.
		v.JoinID = st.JoinID
	}
	return v, err
}

// joinReleased is Join, first finishing the release of a user still Releasing (an earlier
// DestroySession failed, or a stop just now): its slot must be confirmed free at CAR before
// the user may queue for a new one.
func (s *Service) joinReleased(ctx context.Context, userID string, c queue.Client, p queue.Proof) (queue.Status, error) {
	st, err := s.line.JoinETA(ctx, userID, c, p, s.perPlace(ctx))
	if err != nil || st.State != queue.StateReleasing || st.JoinID == "" {
		return st, err
	}
	if err := s.Release(ctx, userID); err != nil {
		return st, fmt.Errorf("%w: previous session still being released: %w", ErrCARUnavailable, err)
	}
	if st, err = s.line.JoinETA(ctx, userID, c, p, s.perPlace(ctx)); err != nil {
		return st, err
	}
	if st.State == queue.StateReleasing {
		return st, fmt.Errorf("%w: previous session still being released", ErrCARUnavailable)
	}
	return st, nil
}

// Poll is /poll: the user's status in one round trip; the head with a free slot is admitted
// at once.
//
// p is the proof of the caller's ticket: queue.ErrBadTicket when it names an earlier join.
func (s *Service) Poll(ctx context.Context, userID string, c queue.Client, p queue.Proof) (View, error) {
	return s.annotate(ctx)(s.poll(ctx, userID, c, p))
}

// poll is Poll without the operator's notice.
func (s *Service) poll(ctx context.Context, userID string, c queue.Client, p queue.Proof) (View, error) {
	st, err := s.line.Poll(ctx, userID, c, p)
	if err != nil {
		return View{}, err
	}
	return s.admitHead(ctx, userID, st)
}

// Reconnect is /reconnect: inside the reconnect window a holder re-attaches to its slot with
// the new ClientSession, without queueing; otherwise it behaves like Start.
//
// p is the proof of the caller's ticket: queue.ErrBadTicket when it names an earlier join.
func (s *Service) Reconnect(ctx context.Context, userID string, c queue.Client, p queue.Proof) (View, error) {
	return s.annotate(ctx)(s.reconnect(ctx, userID, c, p))
}

// reconnect is Reconnect without the operator's notice.
func (s *Service) reconnect(ctx context.Context, userID string, c queue.Client, p queue.Proof) (View, error) {
	claim, ok, err := s.line.Reattach(ctx, userID, c, p)
	if err != nil {
		return View{}, err
	}
	if ok {
		return s.admitNow(ctx, claim)
	}
	return s.startAny(ctx, userID, c, p)
}

// Heartbeat is /heartbeat: Ready → Active, Active stays (one round trip). A user still in
// line is told its place (a heartbeat does not count as a poll); anyone else is Expired.
func (s *Service) Heartbeat(ctx context.Context, userID string, p queue.Proof) (View, error) {
	return s.annotate(ctx)(s.heartbeat(ctx, userID, p))
}

// heartbeat is Heartbeat without the operator's notice.
func (s *Service) heartbeat(ctx context.Context, userID string, p queue.Proof) (View, error) {
	st, err := s.line.Heartbeat(ctx, userID, p)
	if err != nil {
		return View{}, err
	}
	switch st.State {
	case queue.StateReady, queue.StateActive, queue.StateAdmitting:
		v := View{Status: StatusActive, NextHeartbeat: s.opts.HeartbeatInterval, ReconnectWindow: s.opts.HeartbeatTimeout}
		s.limit(&v, st.StartedAt)
		return v, nil
	}
	return s.view(ctx, st), nil
}

// Stopped says what Stop did.
type Stopped struct {
	// Released: the user held a slot and CAR confirmed its session destroyed.
	Released bool
	// Deferred: the user held a slot but CAR could not be reached; it stays Releasing
	// (holding its slot) and the reaper retries. The user is stopped all the same.
	Deferred bool
}

// Stop is /stop: a queued user leaves the line; a holder's session is destroyed and its slot
// freed at once when CAR answers within StopWait. The departure is recorded first, so a CAR
// that hangs or fails costs the user nothing: the answer comes after StopWait at most, and
// the reaper finishes the release. Stopping twice is fine.
func (s *Service) Stop(ctx context.Context, userID string, p queue.Proof) (Stopped, error) {
	prev, err := s.line.Stop(ctx, userID, p)
	if err != nil {
		return Stopped{}, err
	}
	if !prev.Holds() {
		return Stopped{}, nil
	}
	return s.releaseNow(ctx, userID), nil
}

// releaseNow destroys the CAR session of a holder that just started releasing (a stop, a
// kick), waiting for CAR at most StopWait; the reaper finishes a release that did not.
func (s *Service) releaseNow(ctx context.Context, userID string) Stopped {
	rctx, cancel := context.WithTimeout(ctx, s.opts.StopWait)
	defer cancel()
	if err := s.Release(rctx, userID); err != nil {
		s.log.WarnContext(ctx, "release after a stop or kick failed; the reaper will retry", "user_id", userID, "err", err)
		return Stopped{Deferred: true}
	}
	return Stopped{Released: true}
}

// Stats returns the queue's counters.
func (s *Service) Stats(ctx context.Context) (queue.Stats, error) { return s.line.Stats(ctx) }

// admitHead admits a queued user who is at the head, if a slot is free.
func (s *Service) admitHead(ctx context.Context, userID string, st queue.Status) (View, error) {
	if st.State != queue.StateQueued || st.Position != 1 {
		return s.view(ctx, st), nil
	}
	claim, ok, err := s.line.ClaimUser(ctx, userID)
	if err != nil {
		return View{}, err
	}
	if !ok {
		return s.view(ctx, st), nil
	}
	return s.admitNow(ctx, claim)
}

// admitNow runs the admission of a claim for a user who is waiting for the answer. Admitted
// answers Ready; a transient failure left the user at the front (or holding, for a reattach),
// so its fresh status is answered; a refusal for good is ErrRefused.
func (s *Service) admitNow(ctx context.Context, claim queue.Claim) (View, error) {
	res, err := s.Admit(ctx, claim)
	note := "admission " + res.Outcome.String()
	if err != nil {
		return View{}, err
	}
	switch res.Outcome {
	case Admitted:
		return View{Status: StatusReady, ServerSession: res.ServerSession, NextHeartbeat: s.opts.HeartbeatInterval,
			ReconnectWindow: s.opts.HeartbeatTimeout, Note: note}, nil
	case Refused:
		return View{}, fmt.Errorf("%w: %w", ErrRefused, res.Cause)
	}
	s.log.WarnContext(ctx, "admission did not complete", "user_id", claim.UserID, "outcome", res.Outcome.String(), "cause", res.Cause)
	st, err := s.line.Poll(ctx, claim.UserID, queue.Client{}, queue.Trusted)
	if err != nil {
		return View{}, fmt.Errorf("after admission %s (%v): %w", res.Outcome, res.Cause, err)
	}
	if claim.Reattach && (st.State == queue.StateReady || st.State == queue.StateActive) {
		// The re-attach did not complete (requeued, or its lease ran out and it was returned),
		// so the user still holds its slot with the ServerSession of the old ClientSession:
		// answering it would make the client start a dead session. Retry instead.
		return View{}, fmt.Errorf("%w: re-attach: %w", ErrCARUnavailable, res.Cause)
	}
	v := s.view(ctx, st)
	v.Note = note
	return v, nil
}
