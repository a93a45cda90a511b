package queue

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"regexp"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"
)

// Limits of the arguments the queue accepts. They are not settings: they bound what one call
// or one stored value may cost.
const (
	// MaxClientSession is API.md's limit on a ClientSession, in characters.
	MaxClientSession = 8192
	// MaxIP bounds a client IP in bytes: an IPv6 address with a zone fits, a garbled header
	// does not.
	MaxIP = 64
	// MaxClaim bounds one Claim call, so one script stays short.
	MaxClaim = 1000
	// MaxBatch bounds one Reap batch per kind and one Releasing listing.
	MaxBatch = 10000
)

var (
	userIDPattern  = regexp.MustCompile(`^[A-Za-z0-9_.@:-]{1,64}$`) // validUserID, the one used
	queueIDPattern = regexp.MustCompile(`^[A-Za-z0-9_.:-]{1,64}$`)
)

// Scripter is all the queue needs of a go-redis client: it only runs scripts. Asking for no
// more lets *redis.Client, *redis.ClusterClient and *redis.Ring all fit (every script's keys
// share the queue's hash tag, so a cluster routes each call to the queue's one slot).
type Scripter = redis.Scripter

// Queue is the fair line of one CAR project. It is safe for concurrent use; all its state
// lives in Redis, so any number of processes may share one queue id.
type Queue struct {
	rdb  Scripter
	opts Options
	keys []string // every queue-wide key, in keyID order, all under the queue's hash tag
	// lanes are Options.Lanes in laneOrder; laneKeys the lines of all but the default
	// (lanes.go); cycle the admission cycle the scripts follow.
	lanes    []Lane
	laneKeys []string
	cycle    string
	// batch sends every call's commands, batched with the calls in flight (pipeline.go)
	batch *batcher
	// sweepWhole: while last-seen has at most this many users, every reap sweeps it whole
	// (lastseen.go); the model test sets 0 to follow the paced sweep of a large queue
	sweepWhole int
	// sweepBusy: the last sweep step through this handle found a whole batch idle (sweepCount)
	sweepBusy *atomic.Bool // a pointer: tests copy a Queue
}

// New checks opts and returns the queue. It does not talk to Redis. Every duration must be
// set (see Options): a zero one is a configuration mistake, not a request for a default.
func New(rdb Scripter, opts Options) (*Queue, error) {
	if rdb == nil {
		return nil, fmt.Errorf("new queue: redis client is nil: %w", ErrInvalid)
	}
	if !queueIDPattern.MatchString(opts.QueueID) {
		return nil, fmt.Errorf("new queue: QueueID %q must be 1-64 chars of [A-Za-z0-9_.:-]: %w", opts.QueueID, ErrInvalid)
	}
	if opts.Capacity < 0 {
		return nil, fmt.Errorf("new queue: Capacity must be >= 0 (0: CAR's Total), got %d: %w", opts.Capacity, ErrInvalid)
	}
	if opts.LockSpace != "" && !queueIDPattern.MatchString(opts.LockSpace) {
		return nil, fmt.Errorf("new queue: LockSpace %q must be 1-64 chars of [A-Za-z0-9_.:-]: %w", opts.LockSpace, ErrInvalid)
	}
	for _, d := range []struct {
		name string
		v    time.Duration
	}{
		{"QueueIdleTimeout", opts.QueueIdleTimeout},
		{"HeartbeatTimeout", opts.HeartbeatTimeout},
		{"ReadyTimeout", opts.ReadyTimeout},
		{"ClaimLease", opts.ClaimLease},
		{"GoneRetention", opts.GoneRetention},
		{"RateWindow", opts.RateWindow},
	} {
		// Scores and deadlines are whole milliseconds: anything shorter would round to 0.
		if d.v < time.Millisecond {
			return nil, fmt.Errorf("new queue: %s must be >= 1ms, got %v: %w", d.name, d.v, ErrInvalid)
		}
	}
	if opts.OutageGrace < 0 {
		return nil, fmt.Errorf("new queue: OutageGrace must be >= 0 (0: no outage watch), got %v: %w", opts.OutageGrace, ErrInvalid)
	}
	if err := checkLanes(opts.Lanes); err != nil {
		return nil, fmt.Errorf("new queue: %w", err)
	}
	if !opts.OpensAt.IsZero() && opts.ShuffleSeed == "" {
		return nil, fmt.Errorf("new queue: OpensAt needs a ShuffleSeed: %w", ErrInvalid)
	}
	if opts.MaxSession < 0 || opts.RecordsMax < 0 {
		return nil, fmt.Errorf("new queue: MaxSession %v and RecordsMax %d must be >= 0: %w", opts.MaxSession, opts.RecordsMax, ErrInvalid)
	}
	if opts.RecordsMax == 0 {
		opts.RecordsMax = DefaultRecordsMax
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	q := &Queue{rdb: rdb, opts: opts, keys: queueKeys(opts.QueueID), lanes: laneOrder(opts.Lanes)}
	q.sweepWhole, q.sweepBusy = 512, new(atomic.Bool)
	p, ok := rdb.(Pipeliner)
	if !ok {
		return nil, fmt.Errorf("new queue: the redis client (%T) must pipeline as well as run scripts: %w", rdb, ErrInvalid)
	}
	q.batch = &batcher{rdb: p}
	q.cycle = laneCycle(q.lanes)
	for _, l := range q.lanes[min(1, len(q.lanes)):] {
		q.laneKeys = append(q.laneKeys, laneKey(opts.QueueID, l.Name))
	}
	return q, nil
}

// Options returns the options in effect (Now filled in).
func (q *Queue) Options() Options { return q.opts }

// KeyPrefix is the prefix of every key of this queue (it holds the hash tag), for tools that
// clean up or measure a queue's keys.
func (q *Queue) KeyPrefix() string { return keyPrefix(q.opts.QueueID) }

func checkUser(userID string) error {
	if !validUserID(userID) {
		return fmt.Errorf("UserId %q must be 1-64 chars of [A-Za-z0-9_.@:-]: %w", userID, ErrInvalid)
	}
	return nil
}

// validUserID is userIDPattern without the regexp engine: it runs on every call, and the
// regexp was a measurable share of a poll's CPU in the server mode.
func validUserID(s string) bool {
	if len(s) == 0 || len(s) > 64 {
		return false
	}
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9', c == '_', c == '.', c == '@', c == ':', c == '-':
		default:
			return false
		}
	}
	return true
}

// nowMS is the injected clock in Unix milliseconds, the unit of every score and deadline.
func (q *Queue) nowMS() int64 { return q.opts.Now().UnixMilli() }

func ms(d time.Duration) int64 { return d.Milliseconds() }

// newToken returns a fresh random token (claims, locks, leases).
func newToken() (string, error) {
	b := make([]byte, 12)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("random token: %w", err)
	}
	return hex.EncodeToString(b), nil
}
