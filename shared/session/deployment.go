package session

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/carqueue/carqueue/shared/queue"
)

// Homes is where a Deployment keeps the hint of which queue each user is in;
// *queue.Homes satisfies it.
type Homes interface {
	Enter(ctx context.Context, userID, queueID, from string) (other string, err error)
}

// Deployment is the queues of one deployment (QUEUES), which hand out the slots of one CAR
// account. In such an account a UserId has one session (DestroySession names no project), so
// a user may wait in or hold one of these queues at a time: Start in another answers
// ErrElsewhere until the user has left the first (stopped, or dropped by the reaper). The
// per-user CAR lock spans the deployment too (queue.Options.LockSpace), so CAR never gets two
// calls for one UserId at once, even in the moment a user moves between queues.
type Deployment struct {
	homes Homes

	mu       sync.RWMutex
	services map[string]*Service
}

// NewDeployment returns an empty deployment; session.New adds each queue's Service to it.
func NewDeployment(h Homes) *Deployment {
	return &Deployment{homes: h, services: map[string]*Service{}}
}

func (d *Deployment) add(id string, s *Service) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.services[id] = s
}

func (d *Deployment) service(id string) *Service {
	d.mu.RLock()
	defer d.mu.RUnlock()
	return d.services[id]
}

// ErrElsewhere: the user waits in or holds another queue of the deployment; it must stop
// there first. Errors wrapping it are *ElsewhereError.
var ErrElsewhere = errors.New("user is in another queue")

// ElsewhereError names the queue the user is in.
type ElsewhereError struct{ QueueID string }

func (e *ElsewhereError) Error() string { return fmt.Sprintf("user is in queue %s", e.QueueID) }

// Is makes errors.Is(err, ErrElsewhere) true.
func (e *ElsewhereError) Is(target error) bool { return target == ErrElsewhere }

// enter lets the user into this queue unless another queue of the deployment still has it.
// The hint names at most one queue; when the user has left it (or it is no longer
// configured), the hint moves here. Two rounds cover a hint that changed in between.
func (s *Service) enter(ctx context.Context, userID string) error {
	d := s.opts.Deployment
	if d == nil {
		return nil
	}
	from := ""
	for range 2 {
		other, err := d.homes.Enter(ctx, userID, s.opts.QueueID, from)
		if err != nil || other == "" {
			return err
		}
		if peer := d.service(other); peer != nil {
			st, err := peer.line.StateOf(ctx, userID)
			if err != nil {
				return err
			}
			if st != queue.StateNone {
				return &ElsewhereError{QueueID: other}
			}
		}
		from = other
	}
	return fmt.Errorf("%w: the user is moving between queues right now", ErrCARUnavailable)
}

// SyncCARTotal keeps the capacity of a Capacity-0 queue at CAR's own Total for the project:
// when the stored Total is older than CARTotalRefresh, one caller (the queue hands the
// refresh to one at a time) asks CAR (DescribeConcurrentCount) and stores the answer. A queue
// with a configured capacity does nothing.
func (s *Service) SyncCARTotal(ctx context.Context) error {
	if s.opts.CARTotalRefresh <= 0 {
		return nil
	}
	due, err := s.slots.CARTotalDue(ctx, s.opts.CARTotalRefresh)
	if err != nil || !due {
		return err
	}
	n, err := s.car.DescribeConcurrentCount(ctx, s.opts.ProjectID)
	if err != nil {
		return fmt.Errorf("%w: CAR's Total for project %s: %w", ErrCARUnavailable, s.opts.ProjectID, err)
	}
	return s.slots.SetCARTotal(ctx, int(n.Total))
}
