package queue

import (
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
var Reasons = []Reason{ReasonStopped, ReasonIdle, ReasonHeartbeatTimeout, ReasonNeverStarted, ReasonCARRefused, ReasonKicked, ReasonTimeLimit}

// Errors the scripts report; callers switch on them with errors.Is.
var (
	ErrLeaseLost  = errors.New("queue: claim lease lost (expired or taken over)")
	ErrNotHolding = errors.New("queue: user holds no slot")
	ErrInvalid    = errors.New("queue: invalid argument")
	// ErrBadTicket: the caller's proof names another join of the user than its current one
	// (a ticket of an earlier join, or of a join a grant re-issued).
	ErrBadTicket = errors.New("queue: ticket not valid for the user's current join")
)

// Options configure a queue. Every field but Now is required: the defaults live in
// shared/config, the one place an operator reads them, so a queue built elsewhere (a test, the
// benchmark) says what it runs with instead of silently inheriting a second set of defaults.
type Options struct {
	QueueID string // becomes the Redis hash tag
	// Capacity is the slots this queue may hold; 0 means CAR's own Total for the project, as
	// last stored with SetCARTotal (nobody is admitted before the first one is).
	Capacity int
	// LockSpace names the queues that share one CAR account (one deployment): the per-user
	// CAR lock is then one key per UserId across all of them, so CAR never gets two calls
	// for one UserId at once whichever queue makes them. Empty: the lock is the queue's own.
	LockSpace        string
	QueueIdleTimeout time.Duration // queued user not polling is dropped
	HeartbeatTimeout time.Duration // admitted user not heartbeating is reaped
	ReadyTimeout     time.Duration // ready user never heartbeating is reaped
	ClaimLease       time.Duration // how long an admission may take before the user returns to the front
	GoneRetention    time.Duration // how long a departed user's reason is remembered
	RateWindow       time.Duration // longest span over which the admission rate is measured
	// OutageGrace is the longest gap between two reaper lease marks (TakeLease, Extend) that
	// is still normal; a longer one means the system could not work (Redis down or read-only,
	// the functions not running), and reaping is then held for the longest of the three
	// timeouts (outage.go). 0: never held.
	OutageGrace time.Duration
	// Lanes are the queue's priority lanes, DefaultLane among them; none: one lane, FIFO.
	Lanes []Lane
	// OpensAt is the scheduled opening: before it nobody is admitted, and everyone who joins
	// before it is put in a random order drawn from ShuffleSeed at opening. Zero: open.
	OpensAt time.Time
	// ShuffleSeed orders the early cohort of a scheduled opening (published by Stats after
	// it); required with OpensAt, secret before it.
	ShuffleSeed string
	// MaxSession caps a session from its first heartbeat (0: no cap); Reap ends it with
	// ReasonTimeLimit.
	MaxSession time.Duration
	// RecordsMax bounds the departures kept for /admin/records and the webhook (0: 100,000).
	RecordsMax int
	// Deliver says a webhook delivers the records, so Due reports undelivered ones.
	Deliver bool
	Now     func() time.Time // the clock of every score and deadline; nil means time.Now
}

// Client is what admission needs of a user's client: CAR's ApplyConcurrent and CreateSession
// want the client's IP (UserIp) and the newest ClientSession.
type Client struct {
	IP      string // may be empty (the caller then sends a default); at most MaxIP bytes, no control chars or '|'
	Session string // newest ClientSession; "" keeps the stored one (and the stored IP)
}

// Status is a user's view of the line.
type Status struct {
	State         State
	Position      int64  // 1-based, when Queued
	Length        int64  // queued users, when Queued
	ServerSession string // when Ready or Active; Heartbeat leaves it empty
	Client        Client // newest known, when Queued or holding; from Join only (Poll and Heartbeat leave it empty)
	Reason        Reason // when StateNone and the user is remembered as gone
	// JoinID names the user's current join, from Join only: what the user's ticket must
	// carry (Ticketed). Empty when Join was not shown proof for a user it already knew.
	JoinID string
	// Lane is the user's lane when Queued or holding (DefaultLane without lanes).
	Lane string
	// StartedAt is the first heartbeat of a holder (Heartbeat only, with MaxSession); zero
	// before it.
	StartedAt time.Time
}

// Claim is a user taken out of the line for admission. Token proves the claim is still the
// current one when the admission finishes.
type Claim struct {
	UserID   string
	Client   Client // as last stored: the IP and ClientSession admission sends to CAR
	Token    string
	Reattach bool // a reconnect of a user who already held a slot
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
	// ReleasesRetrying counts the Releasing users whose DestroySession failed and who wait
	// for their next attempt (RetryRelease).
	ReleasesRetrying int64
	// Capacity is the configured capacity, or for a Capacity-0 queue CAR's Total as last
	// stored (0 before the first).
	Capacity int64
	// CARTotalAt is when CAR's Total was stored, for a Capacity-0 queue (zero otherwise).
	CARTotalAt     int64
	AdmittedTotal  int64
	ReapedTotal    int64
	ReapedByReason map[Reason]int64
	// AdmissionsPerMinute counts the admissions of the last RateWindow over the span actually
	// observed (from the oldest of them to now, at least RateWindow/30), so a fresh system
	// whose slots turn over in seconds does not report a rate diluted by minutes it never saw;
	// 0 when there were none.
	AdmissionsPerMinute float64
	// RecentAdmissions is how many admissions AdmissionsPerMinute was measured over.
	RecentAdmissions int64
	// ReapHeldUntil is when reaping resumes after an outage (unix ms), 0 when it is not held
	// or the hold has passed (outage.go).
	ReapHeldUntil int64

	// The operator's controls (Controls), as they stand.
	Controls Controls
	// LaneQueued counts the queued users of each lane (nil without lanes).
	LaneQueued map[string]int64
	// RecordsKept is the departures kept; RecordsPending those the webhook has not delivered.
	RecordsKept, RecordsPending int64
	// ETAErrorPct is the median absolute error of the first ETA against the actual wait, in
	// percent, over the admissions of the last hour that were given one; ETASamples how many
	// (0: ETAErrorPct means nothing).
	ETAErrorPct float64
	ETASamples  int
}

// Proof is what a caller shows the queue to act for a user: the join id its ticket names, a
// valid grant, nothing, or Trusted for the service's own calls. Every script a user's request
// reaches checks it atomically with the change it makes, so a ticket stops working the moment
// its join ends (or a grant re-issues it), whichever instance serves the request.
type Proof struct{ arg, lane string }

var (
	// Trusted is for the service's own calls (the reaper's, a release's, tests): no check.
	Trusted = Proof{arg: "*"}
	// Granted is a valid grant for the user (checked by the caller): Join re-issues the
	// user's join id, so every earlier ticket stops working; elsewhere it counts as proof.
	Granted = Proof{arg: "G"}
	// Unproven is a request that brought neither ticket nor grant: Join may add a new user,
	// but changes nothing of a known one; every other call refuses a known user.
	Unproven = Proof{arg: ""}
)

// GrantedIn is a valid grant that puts the user in lane (DefaultLane, or "" for it).
func GrantedIn(lane string) Proof { return Proof{arg: "G", lane: lane} }

// Ticketed is the proof of a ticket naming joinID (Status.JoinID when it was issued).
func Ticketed(joinID string) Proof {
	if joinID == "" || joinID == "*" || joinID == "G" {
		return Unproven
	}
	return Proof{arg: joinID}
}
