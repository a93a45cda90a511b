package admission

// Outcome is how one admission attempt ended, from the queue's point of view.
type Outcome int

const (
	// Admitted: CAR created the session and the queue stored it (user is Ready).
	Admitted Outcome = iota
	// Requeued: a transient failure (no idle slot, busy, rate limited, timeout, Redis trouble):
	// the user is back at the front of the line and keeps its place.
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
