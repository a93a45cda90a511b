package admission

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
func (a *Admitter) Release(ctx context.Context, userID string) error {
	unlock, ok, err := a.Queue.LockUser(ctx, userID, a.lockTTL())
	if err != nil {
		return fmt.Errorf("release %s: lock user: %w", userID, err)
	}
	if !ok {
		return fmt.Errorf("release %s: %w", userID, ErrUserBusy)
	}
	defer unlock()

	st, err := a.Queue.Poll(ctx, userID, "")
	if err != nil {
		return fmt.Errorf("release %s: read state: %w", userID, err)
	}
	if st.State != queue.StateReleasing {
		return nil // released already, by another caller
	}
	carCtx, cancelCAR := context.WithTimeout(ctx, a.carBudget())
	defer cancelCAR()
	if err := a.CAR.DestroySession(carCtx, userID); err != nil && car.KindOf(err) != car.KindNotFound {
		return fmt.Errorf("destroy session for %s: %w", userID, err)
	}
	bctx, cancel := bookkeeping(ctx)
	defer cancel()
	if err := a.Queue.Released(bctx, userID); err != nil && !errors.Is(err, queue.ErrNotHolding) {
		return fmt.Errorf("released %s: %w", userID, err)
	}
	a.logger().Info("released", "user", userID)
	return nil
}
