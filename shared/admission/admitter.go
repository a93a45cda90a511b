// Package admission is the one path by which a claimed user gets a CAR slot, used by the HTTP
// handlers (/start, /poll, /reconnect) and by the reaper alike, so that every caller handles
// CAR's answers the same way: transient trouble keeps the user at the front of the line, a
// refusal for good ends the admission, and a slot is only given back once CAR confirmed it.
package admission

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/carqueue/carqueue/shared/car"
	"github.com/carqueue/carqueue/shared/queue"
)

// CAR is the part of the CAR client admission needs; *car.Client satisfies it, tests fake it.
type CAR interface {
	ApplyConcurrent(ctx context.Context, in car.ApplyConcurrentInput) error
	CreateSession(ctx context.Context, in car.CreateSessionInput) (string, error)
	DestroySession(ctx context.Context, userID string) error
}

// Defaults for zero Admitter fields.
const (
	DefaultLockTTL = 30 * time.Second
	// DefaultUserIP is sent as UserIp when the stored value carries no client IP (a value not
	// made by Pack); CAR requires the field.
	DefaultUserIP = "127.0.0.1"
	// bookkeepingTimeout bounds the queue calls made after CAR answered. They run even when the
	// caller's context is done, because CAR's state has changed and the queue must learn it;
	// if they fail anyway, the claim lease returns the user to the front.
	bookkeepingTimeout = 5 * time.Second
)

// Errors of the admission path itself (CAR errors are passed through, wrapped).
var (
	// ErrUserBusy: another CAR call for this UserId is in flight (its per-user lock is held).
	ErrUserBusy = errors.New("admission: another CAR call for this user is in flight")
	// ErrEmptySession: CAR answered CreateSession without a ServerSession.
	ErrEmptySession = errors.New("admission: CreateSession returned an empty ServerSession")
)

// Admitter admits claimed users and releases leaving ones. The zero value of every field but
// Queue and CAR is usable.
type Admitter struct {
	Queue  queue.Interface
	CAR    CAR
	Logger *slog.Logger
	// LockTTL is the lifetime of the per-user lock that keeps CAR calls for one UserId single
	// file [30s]. It must outlast the CAR calls (ApplyConcurrent may take up to 20 s).
	LockTTL time.Duration
	// RunMode is passed to CreateSession when set (e.g. "RunWithoutClient").
	RunMode string
}

// carBudget bounds the CAR calls made under one per-user lock. It stays inside LockTTL (5/6 of
// it, 25 s by default) so that the lock never lapses while a call is in flight: otherwise a
// second caller could take the lock and call CAR for the same UserId at the same time. Keep
// the queue's ClaimLease at least LockTTL, so that a claim outlives its admission too.
func (a *Admitter) carBudget() time.Duration { return a.lockTTL() * 5 / 6 }

func (a *Admitter) logger() *slog.Logger {
	if a.Logger != nil {
		return a.Logger
	}
	return slog.Default()
}

func (a *Admitter) lockTTL() time.Duration {
	if a.LockTTL > 0 {
		return a.LockTTL
	}
	return DefaultLockTTL
}

// bookkeeping returns a context for queue updates that must happen even if ctx is done.
func bookkeeping(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.WithoutCancel(ctx), bookkeepingTimeout)
}

// Admit runs ApplyConcurrent then CreateSession for a claim, under the queue's per-user lock, and
// records the result: MarkReady on success, Requeue on transient trouble (NoIdle, busy, rate
// limited, timeouts, unknown errors), Refuse when CAR said no for good (our fault, auth). A
// CreateSession answering LockTimeout gets one more ApplyConcurrent and one more CreateSession.
// The returned error carries the CAR error when there was one, also with Requeued and Refused.
func (a *Admitter) Admit(ctx context.Context, c queue.Claim) (Outcome, string, error) {
	log := a.logger().With("user", c.UserID, "reattach", c.Reattach)
	unlock, ok, err := a.Queue.LockUser(ctx, c.UserID, a.lockTTL())
	if err != nil {
		return a.requeue(ctx, c, fmt.Errorf("lock user %s: %w", c.UserID, err))
	}
	if !ok {
		return a.requeue(ctx, c, fmt.Errorf("lock user %s: %w", c.UserID, ErrUserBusy))
	}
	defer unlock()
	carCtx, cancelCAR := context.WithTimeout(ctx, a.carBudget())
	defer cancelCAR()

	ip, session := Unpack(c.ClientSession)
	if ip == "" {
		ip = DefaultUserIP
	}
	serverSession, applied, err := a.callCAR(carCtx, log, c.UserID, ip, session)
	if err != nil {
		switch car.KindOf(err) {
		case car.KindOurFault, car.KindAuth:
			// A reattaching user held a CAR slot before this attempt, so CAR may still hold it.
			return a.refuse(ctx, c, applied || c.Reattach, err)
		default:
			return a.requeue(ctx, c, err)
		}
	}

	bctx, cancel := bookkeeping(ctx)
	defer cancel()
	if err := a.Queue.MarkReady(bctx, c, serverSession); err != nil {
		if errors.Is(err, queue.ErrLeaseLost) {
			// A newer claim (or a stop) owns the user now; destroying would hurt it.
			log.Warn("admission lease lost after CAR created the session", "err", err)
			return LeaseLost, "", fmt.Errorf("mark ready %s: %w", c.UserID, err)
		}
		return a.requeue(ctx, c, fmt.Errorf("mark ready %s: %w", c.UserID, err))
	}
	log.Info("admitted")
	return Admitted, serverSession, nil
}

// callCAR locks a slot and creates the session. applied reports whether an ApplyConcurrent
// succeeded, i.e. whether CAR may now hold a slot for the user.
func (a *Admitter) callCAR(ctx context.Context, log *slog.Logger, userID, ip, session string) (serverSession string, applied bool, err error) {
	apply := car.ApplyConcurrentInput{UserID: userID, UserIP: ip}
	if err := a.CAR.ApplyConcurrent(ctx, apply); err != nil {
		return "", false, fmt.Errorf("apply concurrent for %s: %w", userID, err)
	}
	create := car.CreateSessionInput{UserID: userID, UserIP: ip, ClientSession: session, RunMode: a.RunMode}
	serverSession, err = a.CAR.CreateSession(ctx, create)
	if car.KindOf(err) == car.KindLockExpired {
		// The lock lapsed between the two calls (slow client, retries): take it again, once.
		log.Warn("CreateSession found no live lock; applying again", "err", err)
		if err := a.CAR.ApplyConcurrent(ctx, apply); err != nil {
			return "", true, fmt.Errorf("apply concurrent again for %s: %w", userID, err)
		}
		serverSession, err = a.CAR.CreateSession(ctx, create)
	}
	if err != nil {
		return "", true, fmt.Errorf("create session for %s: %w", userID, err)
	}
	if serverSession == "" {
		return "", true, fmt.Errorf("create session for %s: %w", userID, ErrEmptySession)
	}
	return serverSession, true, nil
}

// requeue puts the user back at the front of the line. If the queue cannot be told, the claim
// lease expires and the reaper does it.
func (a *Admitter) requeue(ctx context.Context, c queue.Claim, cause error) (Outcome, string, error) {
	bctx, cancel := bookkeeping(ctx)
	defer cancel()
	if err := a.Queue.Requeue(bctx, c); err != nil {
		if errors.Is(err, queue.ErrLeaseLost) {
			return LeaseLost, "", errors.Join(cause, fmt.Errorf("requeue %s: %w", c.UserID, err))
		}
		a.logger().Warn("requeue failed; the claim lease will return the user", "user", c.UserID, "cause", cause, "err", err)
		return Requeued, "", errors.Join(cause, fmt.Errorf("requeue %s: %w", c.UserID, err))
	}
	a.logger().Info("admission requeued", "user", c.UserID, "cause", cause)
	return Requeued, "", cause
}

// refuse ends the admission for good. It is logged at error level: it means our configuration or
// our requests are wrong, which an operator must fix.
func (a *Admitter) refuse(ctx context.Context, c queue.Claim, locked bool, cause error) (Outcome, string, error) {
	a.logger().Error("CAR refused admission; check configuration and credentials",
		"user", c.UserID, "locked", locked, "err", cause)
	bctx, cancel := bookkeeping(ctx)
	defer cancel()
	if err := a.Queue.Refuse(bctx, c, locked); err != nil {
		if errors.Is(err, queue.ErrLeaseLost) {
			return LeaseLost, "", errors.Join(cause, fmt.Errorf("refuse %s: %w", c.UserID, err))
		}
		return Refused, "", errors.Join(cause, fmt.Errorf("refuse %s: %w", c.UserID, err))
	}
	return Refused, "", cause
}
