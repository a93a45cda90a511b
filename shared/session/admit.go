package session

import (
	"context"
	"errors"
	"fmt"
	"log/slog"

	"github.com/carqueue/carqueue/shared/car"
	"github.com/carqueue/carqueue/shared/queue"
)

// Outcome is how one admission attempt ended, from the queue's point of view.
type Outcome int

const (
	// Admitted: CAR created the session and the queue stored it (the user is Ready).
	Admitted Outcome = iota
	// Requeued: a transient failure (no idle slot, busy, rate limited, timeout, Redis trouble):
	// the user is back at the front of the line (a reattach: back on its slot) and keeps its place.
	Requeued
	// Refused: CAR refused for good (our fault, bad credentials); the user left with reason
	// car_refused, via Releasing if CAR may hold a slot for it.
	Refused
	// LeaseLost: the claim expired or was taken over while CAR was called; a newer claim owns
	// the user, so this attempt leaves everything as it is.
	LeaseLost
)

// String names the outcome for logs and reports.
func (o Outcome) String() string {
	switch o {
	case Admitted:
		return "admitted"
	case Requeued:
		return "requeued"
	case Refused:
		return "refused"
	case LeaseLost:
		return "lease_lost"
	default:
		return "unknown"
	}
}

// Admission is the result of one admission attempt. Every outcome is a result, not an error:
// Admit returns an error only when the result could not be recorded in the queue (then the
// claim lease returns the user to the front on its own).
type Admission struct {
	Outcome       Outcome
	ServerSession string // when Admitted
	// Cause says why the user was not admitted: CAR's error (a *car.Error), ErrUserBusy,
	// ErrEmptySession, a lost lease. Nil when Admitted.
	Cause error
	// Halt is true when admitting the next user now would most likely fail the same way: on
	// every Requeued (whatever the cause: the requeued user is back at the front, so the next
	// claim would only retry it at once and hammer CAR), and on a refusal of our credentials.
	// The reaper stops its admissions for the run; the next run tries again.
	Halt bool
}

// Errors of the admission path itself (CAR's errors come as the car client returns them).
var (
	// ErrUserBusy: another CAR call for this UserId is in flight (its per-user lock is held).
	ErrUserBusy = errors.New("another CAR call for this user is in flight")
	// ErrEmptySession: CAR answered CreateSession without a ServerSession.
	ErrEmptySession = errors.New("CreateSession returned an empty ServerSession")
)

// Admit runs ApplyConcurrent then CreateSession for a claim, under the per-user lock, and
// records the result: MarkReady on success, Requeue on transient trouble (NoIdle, busy, rate
// limited, timeouts, unknown errors), Refuse when CAR said no for good (our fault, auth). A
// CreateSession answering LockTimeout gets one more ApplyConcurrent and one more CreateSession.
func (s *Service) Admit(ctx context.Context, c queue.Claim) (Admission, error) {
	log := s.log.With("user_id", c.UserID, "reattach", c.Reattach)
	unlock, ok, err := s.slots.LockUser(ctx, c.UserID, s.opts.LockTTL)
	if err != nil {
		return s.requeue(ctx, c, err)
	}
	if !ok {
		return s.requeue(ctx, c, fmt.Errorf("user %s: %w", c.UserID, ErrUserBusy))
	}
	defer unlock()

	carCtx, cancelCAR := context.WithTimeout(ctx, s.opts.CARBudget)
	defer cancelCAR()
	serverSession, applied, err := s.callCAR(carCtx, log, c)
	if err != nil {
		switch car.KindOf(err) {
		case car.KindOurFault, car.KindAuth:
			// A reattaching user held a CAR slot before this attempt, so CAR may still hold it.
			return s.refuse(ctx, c, applied || c.Reattach, err)
		default:
			return s.requeue(ctx, c, err)
		}
	}

	bctx, cancel := bookkeeping(ctx)
	defer cancel()
	if err := s.slots.MarkReady(bctx, c, serverSession); err != nil {
		if errors.Is(err, queue.ErrLeaseLost) {
			// A newer claim (or a stop) owns the user now; destroying would hurt it.
			log.Warn("admission lease lost after CAR created the session", "err", err)
			return Admission{Outcome: LeaseLost, Cause: err}, nil
		}
		return s.requeue(ctx, c, err)
	}
	log.Info("admitted")
	return Admission{Outcome: Admitted, ServerSession: serverSession}, nil
}

// callCAR locks a slot and creates the session. applied reports whether an ApplyConcurrent
// succeeded, i.e. whether CAR may now hold a slot for the user. The car client's errors
// already name the action and the user.
func (s *Service) callCAR(ctx context.Context, log *slog.Logger, c queue.Claim) (serverSession string, applied bool, err error) {
	ip := c.Client.IP
	if ip == "" {
		ip = DefaultUserIP
	}
	apply := car.ApplyConcurrentInput{UserID: c.UserID, UserIP: ip, ProjectID: s.opts.ProjectID,
		ApplicationID: s.opts.ApplicationID, ApplicationVersionID: s.opts.ApplicationVersionID}
	if err := s.car.ApplyConcurrent(ctx, apply); err != nil {
		return "", false, err
	}
	create := car.CreateSessionInput{UserID: c.UserID, UserIP: ip, ClientSession: c.Client.Session, RunMode: s.opts.RunMode}
	serverSession, err = s.car.CreateSession(ctx, create)
	if car.KindOf(err) == car.KindLockExpired {
		// The lock lapsed between the two calls (slow client, retries): take it again, once.
		log.Warn("CreateSession found no live lock; applying again", "err", err)
		if err := s.car.ApplyConcurrent(ctx, apply); err != nil {
			return "", true, err
		}
		serverSession, err = s.car.CreateSession(ctx, create)
	}
	if err != nil {
		return "", true, err
	}
	if serverSession == "" {
		return "", true, fmt.Errorf("user %s: %w", c.UserID, ErrEmptySession)
	}
	return serverSession, true, nil
}

// requeue puts the user back at the front of the line. If the queue cannot be told, the claim
// lease expires and the reaper does it; that is the one error Admit returns.
func (s *Service) requeue(ctx context.Context, c queue.Claim, cause error) (Admission, error) {
	res := Admission{Outcome: Requeued, Cause: cause, Halt: true}
	bctx, cancel := bookkeeping(ctx)
	defer cancel()
	if err := s.slots.Requeue(bctx, c); err != nil {
		if errors.Is(err, queue.ErrLeaseLost) {
			return Admission{Outcome: LeaseLost, Cause: errors.Join(cause, err)}, nil
		}
		s.log.Warn("requeue failed; the claim lease will return the user", "user_id", c.UserID, "cause", cause, "err", err)
		return res, fmt.Errorf("requeue after %v: %w", cause, err)
	}
	s.log.Info("admission requeued", "user_id", c.UserID, "cause", cause)
	return res, nil
}

// refuse ends the admission for good. It is logged at error level: it means our configuration
// or our requests are wrong, which an operator must fix.
func (s *Service) refuse(ctx context.Context, c queue.Claim, locked bool, cause error) (Admission, error) {
	s.log.Error("CAR refused admission; check configuration and credentials",
		"user_id", c.UserID, "locked", locked, "err", cause)
	res := Admission{Outcome: Refused, Cause: cause, Halt: car.KindOf(cause) == car.KindAuth}
	bctx, cancel := bookkeeping(ctx)
	defer cancel()
	if err := s.slots.Refuse(bctx, c, locked); err != nil {
		if errors.Is(err, queue.ErrLeaseLost) {
			return Admission{Outcome: LeaseLost, Cause: errors.Join(cause, err)}, nil
		}
		return res, fmt.Errorf("record refusal (%v): %w", cause, err)
	}
	return res, nil
}
