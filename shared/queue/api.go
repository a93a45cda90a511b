// Package queue is the fair line in front of a CAR project, held entirely in Redis so that any
// function instance can serve any request at any moment.
//
// Every state change is one Lua script whose keys all share the queue's hash tag; time comes
// from an injectable clock and is passed to the scripts, never read inside Redis.
package queue

import (
	"context"
	"errors"
	"time"
)

// State is where a user stands. StateNone means the queue does not know the user (never
// joined, or gone: then Status.Reason says why).
type State string

const (
	StateNone      State = ""
	StateQueued    State = "Queued"
	StateAdmitting State = "Admitting" // a slot is being locked at CAR under a claim lease
	StateReady     State = "Ready"     // ServerSession stored; waiting for the first heartbeat
	StateActive    State = "Active"    // heartbeating
	StateReleasing State = "Releasing" // leaving; holds its slot until CAR confirms DestroySession
)

// Holds reports whether a user in this state counts against capacity.
func (s State) Holds() bool {
	return s == StateAdmitting || s == StateReady || s == StateActive || s == StateReleasing
}

// Reason records why a user left.
type Reason string

const (
	ReasonStopped          Reason = "stopped"
	ReasonIdle             Reason = "idle"              // queued, stopped polling
	ReasonHeartbeatTimeout Reason = "heartbeat_timeout" // active, stopped heartbeating
	ReasonNeverStarted     Reason = "never_started"     // ready, never heartbeated within READY_TIMEOUT
	ReasonCARRefused       Reason = "car_refused"       // CAR said no for good (our fault, bad parameters)
)

// Reasons lists every Reason, for stats.
var Reasons = []Reason{ReasonStopped, ReasonIdle, ReasonHeartbeatTimeout, ReasonNeverStarted, ReasonCARRefused}

// Errors the scripts report; callers switch on them with errors.Is.
var (
	ErrLeaseLost  = errors.New("queue: claim lease lost (expired or taken over)")
	ErrNotHolding = errors.New("queue: user holds no slot")
	ErrInvalid    = errors.New("queue: invalid argument")
)

// Options configure a queue. Zero durations take the defaults in brackets.
type Options struct {
	QueueID          string        // required; becomes the Redis hash tag
	Capacity         int           // slots this queue may hold; required, > 0
	QueueIdleTimeout time.Duration // queued user not polling is dropped [60s]
	HeartbeatTimeout time.Duration // admitted user not heartbeating is reaped [60s]
	ReadyTimeout     time.Duration // ready user never heartbeating is reaped [60s]
	ClaimLease       time.Duration // how long an admission may take before the user returns to the front [30s]
	GoneRetention    time.Duration // how long a departed user's reason is remembered [10m]
	RateWindow       time.Duration // window over which the admission rate is measured [5m]
	Now              func() time.Time
}

// Status is a user's view of the line.
type Status struct {
	State         State
	Position      int64  // 1-based, when Queued
	Length        int64  // queued users, when Queued
	ServerSession string // when Ready or Active; Heartbeat leaves it empty
	ClientSession string // newest known, when Queued or holding; from Join only (Poll and Heartbeat leave it empty)
	Reason        Reason // when StateNone and the user is remembered as gone
}

// Claim is a user taken out of the line for admission. Token proves the claim is still the
// current one when the admission finishes.
type Claim struct {
	UserID        string
	ClientSession string
	Token         string
	Reattach      bool // a reconnect of a user who already held a slot
}

// ReapResult says what one Reap batch did.
type ReapResult struct {
	Dropped       map[Reason]int // users who left, by reason (queued idle ones are gone at once)
	Releasing     []string       // holders moved to Releasing: the caller must DestroySession them
	ExpiredClaims int            // admissions whose lease ran out: back at the front
	More          bool           // the batch was full; call again
}

// Stats are the counts /stats reports.
type Stats struct {
	Queued, Admitting, Ready, Active, Releasing int64
	Capacity                                    int64
	AdmittedTotal                               int64
	ReapedTotal                                 int64
	ReapedByReason                              map[Reason]int64
	AdmissionsPerMinute                         float64 // over RateWindow; 0 while unknown
}

// Interface is what the handlers and the reaper need of a queue. *Queue implements it.
type Interface interface {
	// Join puts the user at the back of the line, or, if already queued or holding, keeps its
	// place and refreshes ClientSession (when non-empty) and last-seen. At most two round trips.
	Join(ctx context.Context, userID, clientSession string) (Status, error)
	// Poll returns the user's status, touching last-seen and refreshing ClientSession when
	// non-empty. One round trip.
	Poll(ctx context.Context, userID, clientSession string) (Status, error)
	// ClaimUser claims this user only if it is at the head and a slot is free.
	ClaimUser(ctx context.Context, userID string) (Claim, bool, error)
	// Claim takes up to max users from the head while held slots < capacity.
	Claim(ctx context.Context, max int) ([]Claim, error)
	// MarkReady stores the ServerSession: Admitting → Ready. ErrLeaseLost if the claim is stale.
	MarkReady(ctx context.Context, c Claim, serverSession string) error
	// Requeue gives up an admission after a transient failure: the user returns to the front
	// (a reattach returns to its previous holding state) and the slot is free again.
	Requeue(ctx context.Context, c Claim) error
	// Refuse ends an admission CAR refused for good. If locked is true CAR may hold a slot for
	// the user, so it goes to Releasing; else it is gone at once. Reason car_refused.
	Refuse(ctx context.Context, c Claim, locked bool) error
	// Heartbeat: Ready → Active, Active stays; refreshes the heartbeat deadline. One round trip.
	// Returns the resulting status (StateNone with Reason when gone).
	Heartbeat(ctx context.Context, userID string) (Status, error)
	// Stop removes a queued user, or moves a holder to Releasing. Returns the state before.
	Stop(ctx context.Context, userID string) (State, error)
	// Reattach: a holder (Ready/Active) whose heartbeat is not yet past HEARTBEAT_TIMEOUT goes
	// back to Admitting on its own slot with a fresh lease; ok=false otherwise.
	Reattach(ctx context.Context, userID, clientSession string) (Claim, bool, error)
	// Reap handles up to batch stale users of each kind, in O(k log N).
	Reap(ctx context.Context, batch int) (ReapResult, error)
	// Releasing lists up to max users waiting for DestroySession (to retry).
	Releasing(ctx context.Context, max int) ([]string, error)
	// Released frees the slot of a Releasing user once CAR confirmed.
	Released(ctx context.Context, userID string) error
	// LockUser takes the short per-user lock that keeps CAR calls for one UserId single file.
	LockUser(ctx context.Context, userID string, ttl time.Duration) (unlock func(), ok bool, err error)
	// Stats returns the counters.
	Stats(ctx context.Context) (Stats, error)
}
