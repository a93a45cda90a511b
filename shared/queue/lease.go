package queue

import (
	"context"
	"fmt"
	"strconv"
	"sync"
	"time"
)

// The reaper's lease keeps overlapping timer runs (SCF retries failed async invocations, and a
// run is still working when the next tick fires) from doing the same work twice. It is short
// and kept alive: the holder extends it while it works (Extend), so a holder that dies (a
// crashed invocation, kill -9, a Redis restart that lost the key) blocks the next run only
// until the short lease runs out, not for as long as a run may last.
//
// It is SET PX made clock-aware: the value is "<expiry unix ms>:<token>", and a lease whose
// expiry by the queue's clock (like every other time the queue uses) has passed counts as
// free, so tests and a skewed Redis clock agree with the deadlines the queue itself keeps. The
// PX TTL still makes Redis drop an abandoned lease on its own. Extend and Release compare the
// token only, so a holder whose last Extend reply was lost still recognises its lease.
//
// The lease is about not doing work twice, not about safety: two runs that overlap (one lost
// its lease without knowing yet) cannot overfill the slots, because the claim script admits
// no one beyond Capacity whoever calls it, and cannot send CAR two calls for one user at once,
// because every CAR call of a user runs under its per-user lock (LockUser).

// takeLeaseScript takes the lease unless another holder's is still running, and keeps the
// outage watch (outage.go): taking the lease marks K_UP's seen, and a gap since the last mark
// longer than the grace holds reaping until now + holdFor.
// ARGV: value "<expiry ms>:<token>", now (ms), ttl (ms), grace (ms; 0: no watch), holdFor (ms).
// Reply: {1, hold until (ms, 0 when never held)} taken, 0 held by another.
var takeLeaseScript = newScript("take_lease", `
local now = tonumber(ARGV[2])
local v = redis.call('GET', K_REAPER)
if v then
  local exp = tonumber(string.match(v, '^(%d+):'))
  if exp and exp > now then return 0 end
end
redis.call('SET', K_REAPER, ARGV[1], 'PX', ARGV[3])
local grace = tonumber(ARGV[4])
local hold = tonumber(redis.call('HGET', K_UP, 'hold')) or 0
if grace > 0 then
  local seen = tonumber(redis.call('HGET', K_UP, 'seen'))
  if seen and now - seen > grace then
    hold = math.max(hold, now + tonumber(ARGV[5]))
    redis.call('HSET', K_UP, 'hold', hold)
    redis.call('HINCRBY', K_UP, 'outages', 1)
  end
  redis.call('HSET', K_UP, 'seen', now)
end
return {1, hold}
`)

// extendLeaseScript is compare-and-extend: the holder moves its expiry on, only while the
// lease is still its own and, by the queue's clock, has not run out (once it has, another run
// may have started: the holder must stop, not carry on). ARGV: token, now (ms), the new value
// "<expiry ms>:<token>", ttl (ms), "1" to mark the outage watch's seen (outage.go).
// Reply: 1 extended, 0 taken over, gone or run out.
var extendLeaseScript = newScript("extend_lease", `
local v = redis.call('GET', K_REAPER)
if not v then return 0 end
local exp, tok = string.match(v, '^(%d+):(%x+)$')
if tok ~= ARGV[1] or tonumber(exp) <= tonumber(ARGV[2]) then return 0 end
redis.call('SET', K_REAPER, ARGV[3], 'PX', ARGV[4])
if ARGV[5] == '1' then redis.call('HSET', K_UP, 'seen', ARGV[2]) end
return 1
`)

// releaseLeaseScript is compare-and-delete: only the holder gives the lease back, so a run
// that outlived its lease cannot free the next run's. ARGV: the holder's token.
// Reply: 1 deleted, 0 not ours (any more).
var releaseLeaseScript = newScript("release_lease", `
local v = redis.call('GET', K_REAPER)
if v and string.match(v, ':(%x+)$') == ARGV[1] then
  return redis.call('DEL', K_REAPER)
end
return 0
`)

// Lease is the reaper's exclusive right to work this queue for a while. Its methods are safe
// for concurrent use (a run extends it from one goroutine and checks it from others).
type Lease struct {
	q     *Queue
	token string

	holdUntil int64 // when reaping resumes after an outage (unix ms by the queue's clock), from TakeLease

	mu     sync.Mutex
	expiry int64 // unix ms by the queue's clock, as last taken or extended
	lost   bool  // an Extend found it taken over, gone or run out
}

// TakeLease takes the reaper lease for ttl; ok is false when another run holds it (by the
// queue's clock). The holder keeps it with Extend while it works, and checks Held before each
// change it makes: nothing stops the next run once the lease has run out.
func (q *Queue) TakeLease(ctx context.Context, ttl time.Duration) (*Lease, bool, error) {
	if ttl < time.Millisecond {
		return nil, false, fmt.Errorf("take reaper lease: ttl %v must be >= 1ms: %w", ttl, ErrInvalid)
	}
	tok, err := newToken()
	if err != nil {
		return nil, false, fmt.Errorf("take reaper lease: %w", err)
	}
	now := q.nowMS()
	exp := now + ms(ttl)
	v, err := q.run(ctx, takeLeaseScript, leaseValue(exp, tok), now, ms(ttl), ms(q.opts.OutageGrace), ms(q.outageHold()))
	if err != nil {
		return nil, false, fmt.Errorf("take reaper lease: %w", err)
	}
	a, ok := v.([]any)
	if !ok || len(a) != 2 || replyInt(a[0]) != 1 {
		return nil, false, nil
	}
	return &Lease{q: q, token: tok, expiry: exp, holdUntil: replyInt(a[1])}, true, nil
}

func leaseValue(expiry int64, token string) string {
	return strconv.FormatInt(expiry, 10) + ":" + token
}

// Extend makes the lease run for ttl from now (by the queue's clock), only if it is still
// ours and has not run out. ok is false when it was taken over, is gone (a Redis restart) or
// ran out before this call: then it is lost for good (Held is false from now on) and the
// holder must stop working. An error leaves the lease as it was (it may still run out).
// Extends run one at a time (the reaper's keepalive is one goroutine).
func (l *Lease) Extend(ctx context.Context, ttl time.Duration) (bool, error) {
	if ttl < time.Millisecond {
		return false, fmt.Errorf("extend reaper lease: ttl %v must be >= 1ms: %w", ttl, ErrInvalid)
	}
	l.mu.Lock()
	lost := l.lost
	l.mu.Unlock()
	if lost {
		return false, nil // and Redis is not asked: a lost lease is never taken back
	}
	now := l.q.nowMS()
	exp := now + ms(ttl)
	mark := "0"
	if l.q.opts.OutageGrace > 0 {
		mark = "1"
	}
	v, err := l.q.run(ctx, extendLeaseScript, l.token, now, leaseValue(exp, l.token), ms(ttl), mark)
	if err != nil {
		return false, fmt.Errorf("extend reaper lease: %w", err)
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if replyInt(v) != 1 {
		l.lost = true
		return false, nil
	}
	l.expiry = max(l.expiry, exp)
	return true, nil
}

// Held reports whether, as far as the holder knows, the lease is still its own: no Extend
// found it lost, and by the queue's clock it has not run out since it was last taken or
// extended. It asks nothing of Redis.
func (l *Lease) Held() bool {
	now := l.q.nowMS()
	l.mu.Lock()
	defer l.mu.Unlock()
	return !l.lost && now < l.expiry
}

// Release gives the lease back, only if it is still ours, so that the next run need not wait
// for it to expire. Releasing a lease that expired (and maybe was taken by another run) does
// nothing and is no error.
func (l *Lease) Release(ctx context.Context) error {
	if _, err := l.q.run(ctx, releaseLeaseScript, l.token); err != nil {
		return fmt.Errorf("release reaper lease: %w", err)
	}
	return nil
}
