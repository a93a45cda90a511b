package queue

import (
	"context"
	"fmt"
	"log/slog"
	"time"
)

// lockScript: SET key token NX PX ttl. KEYS: lock key. ARGV: token, ttlMs. Reply: OK or nil.
// The lock's expiry is Redis's own clock on purpose: it must free itself even if every
// caller died, and it carries no queue state.
var lockScript = newKeyedScript("lock", `return redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2])
`)

// unlockScript deletes the lock only if it is still ours. KEYS: lock key. ARGV: token.
var unlockScript = newKeyedScript("unlock", `if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
`)

// unlockTimeout bounds the unlock call, which runs even after the caller's context ended.
const unlockTimeout = 2 * time.Second

// LockUser takes the short per-user lock that keeps CAR calls for one UserId single file (CAR
// allows one session per UserId, and a retried /start must not race its own admission). ok is
// false if another caller holds the lock. unlock is safe to call more than once; it deletes
// the lock only while it still carries our token, so a lock that expired and was taken by
// someone else is left alone.
func (q *Queue) LockUser(ctx context.Context, userID string, ttl time.Duration) (unlock func(), ok bool, err error) {
	if err := checkUser(userID); err != nil {
		return nil, false, fmt.Errorf("lock user: %w", err)
	}
	fail := func(err error) (func(), bool, error) {
		return nil, false, fmt.Errorf("lock user %s: %w", userID, err)
	}
	if ttl < time.Millisecond {
		return fail(fmt.Errorf("ttl %v must be >= 1ms: %w", ttl, ErrInvalid))
	}
	tok, err := newToken()
	if err != nil {
		return fail(err)
	}
	keys := []string{lockKey(q.opts.LockSpace, q.opts.QueueID, userID)}
	v, err := q.runKeys(ctx, lockScript, keys, tok, ms(ttl))
	if err != nil {
		return fail(err)
	}
	if v != "OK" {
		return nil, false, nil
	}
	unlock = func() {
		uctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), unlockTimeout)
		defer cancel()
		if _, err := q.runKeys(uctx, unlockScript, keys, tok); err != nil {
			// The lock expires by itself; say so, without failing the caller.
			slog.Warn("unlock user failed; lock will expire", "queue", q.opts.QueueID, "user", userID, "err", err)
		}
	}
	return unlock, true, nil
}
