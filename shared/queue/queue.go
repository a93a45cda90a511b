package queue

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"regexp"
	"time"
	"unicode/utf8"

	"github.com/redis/go-redis/v9"
)

// Defaults for the zero durations of Options.
const (
	DefaultQueueIdleTimeout = 60 * time.Second
	DefaultHeartbeatTimeout = 60 * time.Second
	DefaultReadyTimeout     = 60 * time.Second
	DefaultClaimLease       = 30 * time.Second
	DefaultGoneRetention    = 10 * time.Minute
	DefaultRateWindow       = 5 * time.Minute

	// MaxClientSession bounds a stored ClientSession: API.md's 8192 chars plus room for a
	// caller's framing (admission.Pack stores the client IP with it).
	MaxClientSession = 8192 + 256
	// MaxClaim bounds one Claim call, so one script stays short.
	MaxClaim = 1000
	// MaxBatch bounds one Reap batch per kind and one Releasing listing.
	MaxBatch = 10000
)

var (
	userIDPattern  = regexp.MustCompile(`^[A-Za-z0-9_.@:-]{1,64}$`)
	queueIDPattern = regexp.MustCompile(`^[A-Za-z0-9_.:-]{1,64}$`)
)

// Scripter is what the queue needs of a go-redis client: scripts only. *redis.Client,
// *redis.ClusterClient and *redis.Ring all satisfy it.
type Scripter = redis.Scripter

// Queue is the Redis implementation of Interface. It is safe for concurrent use; all its
// state lives in Redis, so any number of processes may share one queue id.
type Queue struct {
	rdb  Scripter
	opts Options
	keys []string // every queue-wide key, in keyID order, all under the queue's hash tag
}

var _ Interface = (*Queue)(nil)

// New checks opts, fills in the defaults and returns the queue. It does not talk to Redis.
func New(rdb Scripter, opts Options) (*Queue, error) {
	if rdb == nil {
		return nil, fmt.Errorf("new queue: redis client is nil: %w", ErrInvalid)
	}
	if !queueIDPattern.MatchString(opts.QueueID) {
		return nil, fmt.Errorf("new queue: QueueID %q must be 1-64 chars of [A-Za-z0-9_.:-]: %w", opts.QueueID, ErrInvalid)
	}
	if opts.Capacity <= 0 {
		return nil, fmt.Errorf("new queue: Capacity %d must be > 0: %w", opts.Capacity, ErrInvalid)
	}
	for _, d := range []struct {
		name string
		v    *time.Duration
		def  time.Duration
	}{
		{"QueueIdleTimeout", &opts.QueueIdleTimeout, DefaultQueueIdleTimeout},
		{"HeartbeatTimeout", &opts.HeartbeatTimeout, DefaultHeartbeatTimeout},
		{"ReadyTimeout", &opts.ReadyTimeout, DefaultReadyTimeout},
		{"ClaimLease", &opts.ClaimLease, DefaultClaimLease},
		{"GoneRetention", &opts.GoneRetention, DefaultGoneRetention},
		{"RateWindow", &opts.RateWindow, DefaultRateWindow},
	} {
		switch {
		case *d.v == 0:
			*d.v = d.def
		case *d.v < time.Millisecond:
			return nil, fmt.Errorf("new queue: %s %v must be >= 1ms: %w", d.name, *d.v, ErrInvalid)
		}
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	return &Queue{rdb: rdb, opts: opts, keys: queueKeys(opts.QueueID)}, nil
}

// Options returns the options in effect, defaults filled in.
func (q *Queue) Options() Options { return q.opts }

// KeyPrefix is the prefix of every key of this queue (it holds the hash tag).
func (q *Queue) KeyPrefix() string { return keyPrefix(q.opts.QueueID) }

func checkUser(userID string) error {
	if !userIDPattern.MatchString(userID) {
		return fmt.Errorf("UserId %q must be 1-64 chars of [A-Za-z0-9_.@:-]: %w", userID, ErrInvalid)
	}
	return nil
}

func checkClientSession(cs string) error {
	if n := utf8.RuneCountInString(cs); n > MaxClientSession {
		return fmt.Errorf("ClientSession has %d chars, at most %d allowed: %w", n, MaxClientSession, ErrInvalid)
	}
	return nil
}

// nowMS is the injected clock in Unix milliseconds, the unit of every score and deadline.
func (q *Queue) nowMS() int64 { return q.opts.Now().UnixMilli() }

func ms(d time.Duration) int64 { return d.Milliseconds() }

// newToken returns a fresh random claim token.
func newToken() (string, error) {
	b := make([]byte, 12)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("random token: %w", err)
	}
	return hex.EncodeToString(b), nil
}
