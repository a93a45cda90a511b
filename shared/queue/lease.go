package queue

import (
	"context"
	"fmt"
	"strconv"
	"time"
)

// The reaper's lease keeps overlapping timer runs (SCF retries failed async invocations, and a
// slow run may still be going when the next tick fires) from doing the same work twice.
//
// It is SET PX made clock-aware: the value is "<expiry unix ms>:<token>", and a lease whose
// expiry by the queue's clock (like every other time the queue uses) has passed counts as
// free, so tests and a skewed Redis clock agree with the deadlines the queue itself keeps. The
// PX TTL still makes Redis drop an abandoned lease on its own.

// takeLeaseScript takes the lease unless another holder's is still running.
// ARGV: value "<expiry ms>:<token>", now (ms), ttl (ms). Reply: 1 taken, 0 held by another.
var takeLeaseScript = newScript("take_lease", `
local v = redis.call('GET', K_REAPER)
if v then
  local exp = tonumber(string.match(v, '^(%d+):'))
  if exp and exp > tonumber(ARGV[2]) then return 0 end
end
redis.call('SET', K_REAPER, ARGV[1], 'PX', ARGV[3])
return 1
`)

// releaseLeaseScript is compare-and-delete: only the holder gives the lease back, so a run
// that outlived its lease cannot free the next run's. ARGV: the value takeLeaseScript set.
// Reply: 1 deleted, 0 not ours (any more).
var releaseLeaseScript = newScript("release_lease", `
if redis.call('GET', K_REAPER) == ARGV[1] then
  return redis.call('DEL', K_REAPER)
end
return 0
`)

// Lease is the reaper's exclusive right to work this queue for a while.
type Lease struct {
	q     *Queue
	value string // "<expiry ms>:<token>", what release compares
}

// TakeLease takes the reaper lease for ttl; ok is false when another run holds it (by the
// queue's clock). The holder should finish well inside ttl: nothing stops the next run once
// the lease has expired.
func (q *Queue) TakeLease(ctx context.Context, ttl time.Duration) (*Lease, bool, error) {
	if ttl < time.Millisecond {
		return nil, false, fmt.Errorf("take reaper lease: ttl %v must be >= 1ms: %w", ttl, ErrInvalid)
	}
	tok, err := newToken()
	if err != nil {
		return nil, false, fmt.Errorf("take reaper lease: %w", err)
	}
	now := q.nowMS()
	value := strconv.FormatInt(now+ms(ttl), 10) + ":" + tok
	v, err := q.run(ctx, takeLeaseScript, value, now, ms(ttl))
	if err != nil {
		return nil, false, fmt.Errorf("take reaper lease: %w", err)
	}
	if replyInt(v) != 1 {
		return nil, false, nil
	}
	return &Lease{q: q, value: value}, true, nil
}

// Release gives the lease back, only if it is still ours, so that the next run need not wait
// for it to expire. Releasing a lease that expired (and maybe was taken by another run) does
// nothing and is no error.
func (l *Lease) Release(ctx context.Context) error {
	if _, err := l.q.run(ctx, releaseLeaseScript, l.value); err != nil {
		return fmt.Errorf("release reaper lease: %w", err)
	}
	return nil
}
