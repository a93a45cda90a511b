package reaper

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"
)

// The lease keeps overlapping timer runs (SCF retries failed async invocations, and a slow run
// may still be going when the next tick fires) from doing the same work twice.
//
// It is SET NX PX made clock-aware: the value is "<expiry unix ms>:<token>", and a key whose
// expiry (by the caller's clock, like every other time the queue uses) has passed counts as
// free. The PX TTL still makes Redis drop an abandoned lease on its own.
//
// KEYS[1] lease key
// ARGV[1] value "<expiry ms>:<token>"   ARGV[2] now (unix ms)   ARGV[3] lease (ms)
// returns 1 when taken, 0 when another run holds it.
var acquireScript = redis.NewScript(`
local v = redis.call('GET', KEYS[1])
if v then
  local exp = tonumber(string.match(v, '^(%d+):'))
  if exp and exp > tonumber(ARGV[2]) then return 0 end
end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[3])
return 1
`)

// Compare-and-delete: only the holder gives the lease back.
//
// KEYS[1] lease key   ARGV[1] the value acquireScript set
var releaseScript = redis.NewScript(`
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
`)

// leaseKey shares the queue's hash tag so it lives on the queue's cluster slot.
func leaseKey(queueID string) string { return "cq:{" + queueID + "}:reaper" }

// acquire takes the lease; the returned value is what release needs.
func acquire(ctx context.Context, rdb *redis.Client, key string, now time.Time, lease time.Duration) (string, bool, error) {
	b := make([]byte, 12)
	if _, err := rand.Read(b); err != nil {
		return "", false, fmt.Errorf("lease token: %w", err)
	}
	value := strconv.FormatInt(now.Add(lease).UnixMilli(), 10) + ":" + hex.EncodeToString(b)
	n, err := acquireScript.Run(ctx, rdb, []string{key}, value, now.UnixMilli(), lease.Milliseconds()).Int()
	if err != nil {
		return "", false, fmt.Errorf("acquire reaper lease %s: %w", key, err)
	}
	return value, n == 1, nil
}

// release gives the lease back if it is still ours.
func release(ctx context.Context, rdb *redis.Client, key, value string) error {
	if err := releaseScript.Run(ctx, rdb, []string{key}, value).Err(); err != nil && err != redis.Nil {
		return fmt.Errorf("release reaper lease %s: %w", key, err)
	}
	return nil
}
