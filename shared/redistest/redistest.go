// Package redistest gives tests the Redis servers they must pass against: always an embedded
// miniredis, and also the real redis-server named by REDIS_ADDR when that variable is set.
//
// Tests never flush a database: each test gets a key prefix of its own (Prefix), and Cleanup
// deletes only the keys under that prefix, so a shared redis-server is safe to use.
package redistest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"os"
	"strconv"
	"testing"

	"github.com/alicebob/miniredis/v2"
	"github.com/redis/go-redis/v9"
)

// Backend is one Redis server a test runs against.
type Backend struct {
	Name   string // "miniredis" or "redis-server"
	Client *redis.Client
	// Mini is the embedded server (nil for a real redis-server); tests may use it to
	// fast-forward TTLs.
	Mini *miniredis.Miniredis
}

// Backends returns the embedded server and, when REDIS_ADDR is set, the real one. Each
// client is closed when the test ends.
func Backends(t testing.TB) []Backend {
	t.Helper()
	out := []Backend{Embedded(t)}
	if b, ok := Real(t); ok {
		out = append(out, b)
	}
	return out
}

// Embedded starts a miniredis for the test and returns a client to it.
func Embedded(t testing.TB) Backend {
	t.Helper()
	m := miniredis.RunT(t)
	c := redis.NewClient(&redis.Options{Addr: m.Addr(), Protocol: 2})
	t.Cleanup(func() { _ = c.Close() })
	return Backend{Name: "miniredis", Client: c, Mini: m}
}

// Real returns a client to the redis-server at REDIS_ADDR (REDIS_PASSWORD, REDIS_DB honoured),
// or false when REDIS_ADDR is unset.
func Real(t testing.TB) (Backend, bool) {
	t.Helper()
	addr := os.Getenv("REDIS_ADDR")
	if addr == "" {
		return Backend{}, false
	}
	db, _ := strconv.Atoi(os.Getenv("REDIS_DB"))
	c := redis.NewClient(&redis.Options{
		Addr: addr, Password: os.Getenv("REDIS_PASSWORD"), DB: db, Protocol: 2, PoolSize: 128,
	})
	if err := c.Ping(context.Background()).Err(); err != nil {
		t.Fatalf("REDIS_ADDR=%s set but not answering: %v", addr, err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return Backend{Name: "redis-server", Client: c}, true
}

// Prefix returns a unique name for a test's keys (use it as a queue id) and deletes every
// key containing it when the test ends.
func Prefix(t testing.TB, c *redis.Client) string {
	t.Helper()
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	id := "t" + hex.EncodeToString(b)
	t.Cleanup(func() { DeleteMatching(context.Background(), c, "*"+id+"*") })
	return id
}

// DeleteMatching removes the keys that match pattern, and only those.
func DeleteMatching(ctx context.Context, c *redis.Client, pattern string) {
	iter := c.Scan(ctx, 0, pattern, 1000).Iterator()
	var batch []string
	for iter.Next(ctx) {
		batch = append(batch, iter.Val())
		if len(batch) == 500 {
			c.Unlink(ctx, batch...)
			batch = batch[:0]
		}
	}
	if len(batch) > 0 {
		c.Unlink(ctx, batch...)
	}
}
