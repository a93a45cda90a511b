// Package redistest gives tests the Redis servers they must pass against: always an embedded
// miniredis; also the real redis-server named by REDIS_ADDR when that variable is set; and a
// real Redis Cluster when REDIS_CLUSTER_ADDRS lists its nodes (scripts/redis-cluster.sh starts
// one on local ports).
//
// Tests never flush a database: each test gets a key prefix of its own (Prefix), and Cleanup
// deletes only the keys under that prefix, so a shared redis-server or cluster is safe to use.
package redistest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/redis/go-redis/v9"
)

// Backend is one Redis server (or cluster) a test runs against.
type Backend struct {
	Name string // "miniredis", "redis-server" or "redis-cluster"
	// Client is a *redis.Client, or a *redis.ClusterClient for "redis-cluster".
	Client redis.UniversalClient
	// Mini is the embedded server (nil for a real redis-server); tests may use it to
	// fast-forward TTLs.
	Mini *miniredis.Miniredis

	open func() redis.UniversalClient // another client to the same server
	env  map[string]string            // REDIS_* variables that reach it
}

// NewClient returns another client of the same kind to the same server or cluster, which the
// caller closes: for a test that must lose its connection while others keep theirs.
func (b Backend) NewClient() redis.UniversalClient { return b.open() }

// Env returns the REDIS_ADDR, REDIS_PASSWORD and REDIS_DB that make the functions (shared/app,
// the local harness) reach this backend; for a cluster REDIS_ADDR lists its nodes.
func (b Backend) Env() map[string]string {
	out := make(map[string]string, len(b.env))
	for k, v := range b.env {
		out[k] = v
	}
	return out
}

// Backends returns the embedded server, the real one when REDIS_ADDR is set and the cluster
// when REDIS_CLUSTER_ADDRS is set. Each client is closed when the test ends.
func Backends(t testing.TB) []Backend {
	t.Helper()
	out := []Backend{Embedded(t)}
	if b, ok := Real(t); ok {
		out = append(out, b)
	}
	if b, ok := Cluster(t); ok {
		out = append(out, b)
	}
	return out
}

// Embedded starts a miniredis for the test and returns a client to it.
func Embedded(t testing.TB) Backend {
	t.Helper()
	m := miniredis.RunT(t)
	open := func() redis.UniversalClient { return redis.NewClient(&redis.Options{Addr: m.Addr(), Protocol: 2}) }
	c := open()
	t.Cleanup(func() { _ = c.Close() })
	return Backend{Name: "miniredis", Client: c, Mini: m, open: open,
		env: map[string]string{"REDIS_ADDR": m.Addr(), "REDIS_PASSWORD": "", "REDIS_DB": "0"}}
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
	open := func() redis.UniversalClient {
		return redis.NewClient(&redis.Options{
			Addr: addr, Password: os.Getenv("REDIS_PASSWORD"), DB: db, Protocol: 2, PoolSize: 128,
		})
	}
	c := open()
	if err := c.Ping(context.Background()).Err(); err != nil {
		t.Fatalf("REDIS_ADDR=%s set but not answering: %v", addr, err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return Backend{Name: "redis-server", Client: c, open: open, env: map[string]string{
		"REDIS_ADDR": addr, "REDIS_PASSWORD": os.Getenv("REDIS_PASSWORD"), "REDIS_DB": strconv.Itoa(db)}}, true
}

// ClusterAddrs returns the nodes listed in REDIS_CLUSTER_ADDRS (comma-separated host:port),
// or nil when it is unset.
func ClusterAddrs() []string {
	var out []string
	for _, a := range strings.Split(os.Getenv("REDIS_CLUSTER_ADDRS"), ",") {
		if a = strings.TrimSpace(a); a != "" {
			out = append(out, a)
		}
	}
	return out
}

// Cluster returns a cluster client to the Redis Cluster at REDIS_CLUSTER_ADDRS
// (REDIS_CLUSTER_PASSWORD honoured), or false when it is unset. It fails the test when the
// cluster does not answer on every primary.
func Cluster(t testing.TB) (Backend, bool) {
	t.Helper()
	return cluster(t, false)
}

// ClusterReshaped is Cluster for a test that changes the cluster's shape (a failover, a slot
// migration): it waits until no other test, in any test binary, uses the cluster, and keeps
// them out until it ends, so nobody else sees a node come and go under its keys.
func ClusterReshaped(t testing.TB) (Backend, bool) {
	t.Helper()
	return cluster(t, true)
}

func cluster(t testing.TB, exclusive bool) (Backend, bool) {
	t.Helper()
	addrs := ClusterAddrs()
	if len(addrs) == 0 {
		return Backend{}, false
	}
	lockCluster(t, addrs, exclusive)
	open := func() redis.UniversalClient {
		return redis.NewClusterClient(&redis.ClusterOptions{
			Addrs: addrs, Password: os.Getenv("REDIS_CLUSTER_PASSWORD"), Protocol: 2, PoolSize: 128,
		})
	}
	c := open().(*redis.ClusterClient)
	ctx := context.Background()
	err := c.ForEachMaster(ctx, func(ctx context.Context, m *redis.Client) error { return m.Ping(ctx).Err() })
	if err != nil {
		_ = c.Close()
		t.Fatalf("REDIS_CLUSTER_ADDRS=%s set but the cluster does not answer: %v", strings.Join(addrs, ","), err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return Backend{Name: "redis-cluster", Client: c, open: open, env: map[string]string{
		"REDIS_ADDR": strings.Join(addrs, ","), "REDIS_PASSWORD": os.Getenv("REDIS_CLUSTER_PASSWORD"), "REDIS_DB": "0"}}, true
}

// Prefix returns a unique name for a test's keys (use it as a queue id) and deletes every
// key containing it when the test ends.
func Prefix(t testing.TB, c redis.UniversalClient) string {
	t.Helper()
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	id := "t" + hex.EncodeToString(b)
	t.Cleanup(func() { DeleteMatching(context.Background(), c, "*"+id+"*") })
	return id
}

// DeleteMatching removes the keys that match pattern, and only those. On a cluster it scans
// every primary, and deletes key by key (one command may not span hash slots).
func DeleteMatching(ctx context.Context, c redis.UniversalClient, pattern string) {
	if cc, ok := c.(*redis.ClusterClient); ok {
		_ = cc.ForEachMaster(ctx, func(ctx context.Context, m *redis.Client) error {
			deleteOnNode(ctx, m, pattern, false)
			return nil
		})
		return
	}
	deleteOnNode(ctx, c, pattern, true)
}

// deleteOnNode scans one server; batch says whether one UNLINK may name several keys.
func deleteOnNode(ctx context.Context, c redis.UniversalClient, pattern string, batch bool) {
	iter := c.Scan(ctx, 0, pattern, 1000).Iterator()
	var keys []string
	flush := func() {
		if batch {
			c.Unlink(ctx, keys...)
		} else {
			p := c.Pipeline()
			for _, k := range keys {
				p.Unlink(ctx, k)
			}
			_, _ = p.Exec(ctx)
		}
		keys = keys[:0]
	}
	for iter.Next(ctx) {
		keys = append(keys, iter.Val())
		if len(keys) == 500 {
			flush()
		}
	}
	if len(keys) > 0 {
		flush()
	}
}

// lockCluster holds a lock on the cluster for the rest of the test: shared by the tests that
// only use it, exclusive for one that reshapes it. `go test ./...` runs several test binaries
// at once, so the lock is a flock on a file every one of them finds.
func lockCluster(t testing.TB, addrs []string, exclusive bool) {
	t.Helper()
	name := filepath.Join(os.TempDir(), "carqueue-redis-cluster-"+strings.NewReplacer(":", "_", ",", "-").Replace(strings.Join(addrs, ","))+".lock")
	f, err := os.OpenFile(name, os.O_CREATE|os.O_RDWR, 0o666)
	if err != nil {
		t.Fatalf("cluster lock %s: %v", name, err)
	}
	how := syscall.LOCK_SH
	if exclusive {
		how = syscall.LOCK_EX
	}
	got := make(chan error, 1)
	go func() { got <- syscall.Flock(int(f.Fd()), how) }()
	select {
	case err = <-got:
	case <-time.After(10 * time.Minute):
		err = errors.New("waited 10 minutes")
	}
	if err != nil {
		_ = f.Close()
		t.Fatalf("cluster lock %s: %v", name, err)
	}
	t.Cleanup(func() {
		_ = syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
		_ = f.Close()
	})
}
