package session

import (
	"context"
	"errors"
	"fmt"

	"github.com/carqueue/carqueue/shared/car"
	"github.com/carqueue/carqueue/shared/queue"
)

// Release destroys the CAR session of a Releasing user and, once CAR confirmed (or said the
// session does not exist), frees the user's slot in the queue. Any failure leaves the user
// Releasing, holding its slot, for a later reaper run: a slot is never given to someone else
// while CAR may still hold it. When CAR failed, the next attempt for this user waits
// (RELEASE_RETRY_MIN, doubling up to RELEASE_RETRY_MAX), so a failing CAR is not asked again
// at every tick for every leaving user.
//
// It runs under the per-user lock and first checks that the user is still Releasing, so a
// late retry can never destroy the session of a user who was released and admitted again.
func (s *Service) Release(ctx context.Context, userID string) error {
	unlock, ok, err := s.slots.LockUser(ctx, userID, s.opts.LockTTL)
	if err != nil {
		return err
	}
	if !ok {
		return fmt.Errorf("release %s: %w", userID, ErrUserBusy)
	}
	defer unlock()

	st, err := s.line.Poll(ctx, userID, queue.Client{}, queue.Trusted)
	if err != nil {
		return err
	}
	if st.State != queue.StateReleasing {
		return nil // released already, by another caller
	}
	carCtx, cancelCAR := context.WithTimeout(ctx, s.opts.CARBudget)
	defer cancelCAR()
	bctx, cancel := bookkeeping(ctx)
	defer cancel()
	if err := s.car.DestroySession(carCtx, userID); err != nil && car.KindOf(err) != car.KindNotFound {
		failures, _, rerr := s.slots.RetryRelease(bctx, userID, s.opts.ReleaseRetryMin, s.opts.ReleaseRetryMax)
		s.log.WarnContext(ctx, "DestroySession failed; the reaper retries later", "user_id", userID,
			"failures", failures, "err", err, "retry_err", rerr)
		return err
	}
	if err := s.slots.Released(bctx, userID); err != nil && !errors.Is(err, queue.ErrNotHolding) {
		return err
	}
	s.log.Info("released", "user_id", userID)
	return nil
}
