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
// Releasing, holding its slot, for the next reaper run: a slot is never given to someone else
// while CAR may still hold it.
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

	st, err := s.line.Poll(ctx, userID, queue.Client{})
	if err != nil {
		return err
	}
	if st.State != queue.StateReleasing {
		return nil // released already, by another caller
	}
	carCtx, cancelCAR := context.WithTimeout(ctx, s.opts.CARBudget)
	defer cancelCAR()
	if err := s.car.DestroySession(carCtx, userID); err != nil && car.KindOf(err) != car.KindNotFound {
		return err
	}
	bctx, cancel := bookkeeping(ctx)
	defer cancel()
	if err := s.slots.Released(bctx, userID); err != nil && !errors.Is(err, queue.ErrNotHolding) {
		return err
	}
	s.log.Info("released", "user_id", userID)
	return nil
}
