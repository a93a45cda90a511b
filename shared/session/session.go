// Package session owns a user's life in one queue, from the first /start to the release of its
// CAR slot: joining and keeping a place, admission (ApplyConcurrent + CreateSession under the
// per-user lock), re-attaching a returning user to its slot, heartbeats, stopping, and
// destroying the CAR session of a user who left. The HTTP transport (package httpapi) and the
// timer (package reaper) both call it, so every caller handles CAR's answers and the queue's
// states the same way.
//
// It never touches Redis itself: the queue package does, behind the small interfaces below.
package session

import (
	"context"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"time"

	"github.com/carqueue/carqueue/shared/car"
	"github.com/carqueue/carqueue/shared/queue"
)

// Line is what the use cases need of the queue: a user's place and status. *queue.Queue
// satisfies it.
type Line interface {
	// JoinETA is Join that stores a new user's first ETA (perPlace per position ahead) so the
	// queue can measure the estimate against the actual wait.
	JoinETA(ctx context.Context, userID string, c queue.Client, p queue.Proof, perPlace time.Duration) (queue.Status, error)
	Poll(ctx context.Context, userID string, c queue.Client, p queue.Proof) (queue.Status, error)
	ClaimUser(ctx context.Context, userID string) (queue.Claim, bool, error)
	Reattach(ctx context.Context, userID string, c queue.Client, p queue.Proof) (queue.Claim, bool, error)
	Heartbeat(ctx context.Context, userID string, p queue.Proof) (queue.Status, error)
	Expire(ctx context.Context, userID string) (bool, error)
	Stop(ctx context.Context, userID string, p queue.Proof) (queue.State, error)
	Stats(ctx context.Context) (queue.Stats, error)
	StateOf(ctx context.Context, userID string) (queue.State, error)
}

// Slots is what admission and release need of the queue: the per-user lock and the
// bookkeeping of a claim's result. *queue.Queue satisfies it.
type Slots interface {
	LockUser(ctx context.Context, userID string, ttl time.Duration) (unlock func(), ok bool, err error)
	MarkReady(ctx context.Context, c queue.Claim, serverSession string) error
	Requeue(ctx context.Context, c queue.Claim) error
	Refuse(ctx context.Context, c queue.Claim, locked bool) error
	Released(ctx context.Context, userID string) error
	RetryRelease(ctx context.Context, userID string, base, max time.Duration) (failures int, ok bool, err error)
	CARTotalDue(ctx context.Context, every time.Duration) (bool, error)
	SetCARTotal(ctx context.Context, total int) error
}

// Queue is the whole queue a Service works on.
type Queue interface {
	Line
	Slots
	Operator
}

// CAR is the part of the CAR client sessions need; *car.Client satisfies it.
type CAR interface {
	ApplyConcurrent(ctx context.Context, in car.ApplyConcurrentInput) error
	CreateSession(ctx context.Context, in car.CreateSessionInput) (string, error)
	DestroySession(ctx context.Context, userID string) error
	DescribeConcurrentCount(ctx context.Context, projectID string) (car.ConcurrentCount, error)
}

// Options are the settings a Service runs with. Every duration is required: the defaults
// live in shared/config, which also checks the relations between them.
type Options struct {
	// QueueID names the queue in its deployment (Deployment) and in logs.
	QueueID string
	// ProjectID, ApplicationID and ApplicationVersionID are the CAR ids this queue's
	// admissions send (empty: the CAR client's defaults).
	ProjectID, ApplicationID, ApplicationVersionID string
	// CARTotalRefresh is how old CAR's Total of a Capacity-0 queue may get (SyncCARTotal;
	// CAR_TOTAL_REFRESH). Required only for such a queue.
	CARTotalRefresh time.Duration
	// Deployment, when set, is the set of queues this one belongs to: a user is let into one
	// of them at a time (Start answers ErrElsewhere otherwise).
	Deployment *Deployment

	// LockTTL is the lifetime of the per-user lock that keeps CAR calls for one UserId single
	// file (CAR_LOCK_TTL).
	LockTTL time.Duration
	// CARBudget bounds the CAR calls made under one lock; it must stay under LockTTL so the
	// lock never lapses while a call is in flight (config.Config.CARBudget).
	CARBudget time.Duration
	// RunMode is passed to CreateSession when set (e.g. "RunWithoutClient").
	RunMode string

	// StopWait bounds how long Stop waits for CAR to confirm a holder's release before it
	// answers and leaves the release to the reaper (STOP_RELEASE_WAIT).
	StopWait time.Duration
	// ReleaseRetryMin and ReleaseRetryMax bound the per-user backoff between DestroySession
	// attempts that failed (RELEASE_RETRY_MIN, RELEASE_RETRY_MAX).
	ReleaseRetryMin, ReleaseRetryMax time.Duration

	// OpensAt is the queue's scheduled opening (zero: open): before it Queued answers carry
	// OpensIn instead of a place. ShuffleSeed is published (ShuffleSeed) once it passed.
	OpensAt     time.Time
	ShuffleSeed string
	// MaxSession caps a session from its first heartbeat (0: none): heartbeat answers carry
	// the time left, and a warning during the last SessionWarning.
	MaxSession, SessionWarning time.Duration

	HeartbeatInterval time.Duration // NextHeartbeatMs told to clients
	HeartbeatTimeout  time.Duration // the reconnect window, told to clients as ReconnectWindowMs
	PollMin, PollMax  time.Duration // NextPollMs at the head of the line / cap far back

	Logger *slog.Logger     // [slog.Default()]
	Now    func() time.Time // [time.Now]
	Jitter func() float64   // uniform in [0,1), spreads NextPollMs [math/rand/v2.Float64]
}

// DefaultUserIP is sent as UserIp when the queue holds no client IP for a user (a request
// that came without one); CAR requires the field.
const DefaultUserIP = "127.0.0.1"

// BookkeepingTimeout bounds the queue calls made after CAR answered. They run even when the
// caller's context is done, because CAR's state has changed and the queue must learn it; if
// they fail anyway, the claim lease returns the user to the front. The reaper gives its own
// wrap-up the same time, and shared/config's timing rules count on it (config.WrapUp).
const BookkeepingTimeout = 5 * time.Second

// Service runs the use cases of one queue. It is safe for concurrent use.
type Service struct {
	line     Line
	slots    Slots
	car      CAR
	opts     Options
	log      *slog.Logger
	rate     cached[float64] // admissions per minute for ETAs (rateTTL)
	pace     pace            // when admission last moved, for ETAs (eta.go)
	op       Operator
	controls cached[queue.Controls] // the notice and pause for answers (controlsTTL)
}

// New checks the options and returns the service.
func New(q Queue, c CAR, o Options) (*Service, error) {
	switch {
	case q == nil:
		return nil, fmt.Errorf("new session service: queue is nil")
	case c == nil:
		return nil, fmt.Errorf("new session service: CAR client is nil")
	}
	for _, d := range []struct {
		name string
		v    time.Duration
	}{
		{"LockTTL", o.LockTTL}, {"CARBudget", o.CARBudget}, {"HeartbeatInterval", o.HeartbeatInterval},
		{"HeartbeatTimeout", o.HeartbeatTimeout}, {"PollMin", o.PollMin}, {"PollMax", o.PollMax},
		{"StopWait", o.StopWait}, {"ReleaseRetryMin", o.ReleaseRetryMin}, {"ReleaseRetryMax", o.ReleaseRetryMax},
	} {
		if d.v <= 0 {
			return nil, fmt.Errorf("new session service: Options.%s must be > 0, got %v", d.name, d.v)
		}
	}
	if o.CARBudget >= o.LockTTL {
		return nil, fmt.Errorf("new session service: Options.CARBudget (%v) must be under LockTTL (%v)", o.CARBudget, o.LockTTL)
	}
	if o.ReleaseRetryMax < o.ReleaseRetryMin {
		return nil, fmt.Errorf("new session service: Options.ReleaseRetryMax (%v) must be at least ReleaseRetryMin (%v)", o.ReleaseRetryMax, o.ReleaseRetryMin)
	}
	if o.PollMax < o.PollMin {
		return nil, fmt.Errorf("new session service: Options.PollMax (%v) must be at least PollMin (%v)", o.PollMax, o.PollMin)
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Jitter == nil {
		o.Jitter = rand.Float64
	}
	if o.Deployment != nil && o.QueueID == "" {
		return nil, fmt.Errorf("new session service: Options.QueueID is required with a Deployment")
	}
	s := &Service{line: q, slots: q, car: c, opts: o, log: o.Logger}
	if o.Deployment != nil {
		o.Deployment.add(o.QueueID, s)
	}
	s.rate = cached[float64]{ttl: rateTTL, now: o.Now, read: func(ctx context.Context) (float64, error) {
		st, err := q.Stats(ctx)
		if err != nil {
			return 0, err
		}
		return s.pace.observe(st, o.Now()), nil
	}}
	s.op = q
	s.controls = cached[queue.Controls]{ttl: controlsTTL, now: o.Now, read: q.Controls}
	return s, nil
}

// bookkeeping returns a context for queue updates that must happen even if ctx is done.
func bookkeeping(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.WithoutCancel(ctx), BookkeepingTimeout)
}
