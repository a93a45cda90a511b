package queue

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/redis/go-redis/v9"
)

// lockScript: SET key token NX PX ttl. KEYS: lock key. ARGV: token, ttlMs. Reply: OK or nil.
// The lock's expiry is Redis's own clock on purpose: it must free itself even if every
// caller died, and it carries no queue state.
var lockScript = redis.NewScript(`return redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2])`)

// unlockScript deletes the lock only if it is still ours. KEYS: lock key. ARGV: token.
var unlockScript = redis.NewScript(`
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
`)

// unlockTimeout bounds the unlock call, which runs even after the caller's context ended.
const unlockTimeout = 2 * time.Second

// LockUser implements Interface. ok is false if another caller holds the lock. unlock is
// safe to call more than once; it deletes the lock only while it still carries our token, so
// a lock that expired and was taken by someone else is left alone.
func (q *Queue) LockUser(ctx context.Context, userID string, ttl time.Duration) (func(), bool, error) {
	if err := checkUser(userID); err != nil {
		return nil, false, fmt.Errorf("lock user: %w", err)
	}
	if ttl < time.Millisecond {
		return nil, false, fmt.Errorf("lock user %s: ttl %v must be >= 1ms: %w", userID, ttl, ErrInvalid)
	}
	tok, err := newToken()
	if err != nil {
		return nil, false, fmt.Errorf("lock user %s: %w", userID, err)
	}
	key := lockKey(q.opts.QueueID, userID)
	v, err := lockScript.Run(ctx, q.rdb, []string{key}, tok, ms(ttl)).Result()
	if err == redis.Nil || (err == nil && v != "OK") {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, fmt.Errorf("lock user %s: %w", userID, err)
	}
	unlock := func() {
		uctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), unlockTimeout)
		defer cancel()
		if err := unlockScript.Run(uctx, q.rdb, []string{key}, tok).Err(); err != nil && err != redis.Nil {
			// The lock expires by itself; say so, without failing the caller.
			slog.Warn("unlock user failed; lock will expire", "queue", q.opts.QueueID, "user", userID, "err", err)
		}
	}
	return unlock, true, nil
}
