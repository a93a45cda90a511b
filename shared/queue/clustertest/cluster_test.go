package clustertest

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/carqueue/carqueue/shared/redistest"
	"github.com/redis/go-redis/v9"
)

// cluster is a test's view of the real cluster: a cluster client, as the functions use, and
// one plain client per primary for the administrative commands.
type cluster struct {
	t      *testing.T
	client *redis.ClusterClient
	admin  map[string]*redis.Client // by address
}

// needCluster returns the cluster of REDIS_CLUSTER_ADDRS, skipping the test without one
// (failing it under CI=true).
func needCluster(t *testing.T) *cluster {
	t.Helper()
	b, ok := redistest.ClusterReshaped(t)
	if !ok {
		if os.Getenv("CI") == "true" {
			t.Fatal("REDIS_CLUSTER_ADDRS is unset under CI=true: .ci/run starts a Redis Cluster (scripts/redis-cluster.sh)")
		}
		t.Skip("REDIS_CLUSTER_ADDRS unset: start a cluster with scripts/redis-cluster.sh start and set REDIS_CLUSTER_ADDRS=$(scripts/redis-cluster.sh addrs)")
	}
	c := &cluster{t: t, client: b.Client.(*redis.ClusterClient), admin: map[string]*redis.Client{}}
	t.Cleanup(func() {
		for _, a := range c.admin {
			_ = a.Close()
		}
	})
	return c
}

// node returns an administrative client to one node.
func (c *cluster) node(addr string) *redis.Client {
	if a, ok := c.admin[addr]; ok {
		return a
	}
	a := redis.NewClient(&redis.Options{Addr: addr, Protocol: 2, Password: os.Getenv("REDIS_CLUSTER_PASSWORD")})
	c.admin[addr] = a
	return a
}

// nodeInfo is one line of CLUSTER NODES.
type nodeInfo struct {
	ID, Addr, MasterID string
	Master, Failed     bool
	Slots              [][2]int
}

// nodes reads CLUSTER NODES from the node at addr.
func (c *cluster) nodes(ctx context.Context, addr string) ([]nodeInfo, error) {
	s, err := c.node(addr).ClusterNodes(ctx).Result()
	if err != nil {
		return nil, err
	}
	var out []nodeInfo
	for _, line := range strings.Split(strings.TrimSpace(s), "\n") {
		f := strings.Fields(line)
		if len(f) < 8 {
			continue
		}
		n := nodeInfo{ID: f[0], Addr: strings.Split(f[1], "@")[0], MasterID: f[3]}
		n.Master = strings.Contains(f[2], "master")
		n.Failed = strings.Contains(f[2], "fail")
		for _, r := range f[8:] {
			if strings.HasPrefix(r, "[") { // a slot being migrated or imported
				continue
			}
			lo, hi, found := strings.Cut(r, "-")
			a, _ := strconv.Atoi(lo)
			b := a
			if found {
				b, _ = strconv.Atoi(hi)
			}
			n.Slots = append(n.Slots, [2]int{a, b})
		}
		out = append(out, n)
	}
	return out, nil
}

// seed is an address of the cluster to ask (the first of REDIS_CLUSTER_ADDRS).
func (c *cluster) seed() string { return redistest.ClusterAddrs()[0] }

// owner returns the primary that serves slot, as the seed node sees it.
func (c *cluster) owner(ctx context.Context, slot int) (nodeInfo, error) {
	ns, err := c.nodes(ctx, c.seed())
	if err != nil {
		return nodeInfo{}, err
	}
	for _, n := range ns {
		for _, r := range n.Slots {
			if n.Master && slot >= r[0] && slot <= r[1] {
				return n, nil
			}
		}
	}
	return nodeInfo{}, fmt.Errorf("no primary serves slot %d", slot)
}

// primaries returns the cluster's primaries that are not failed, as the seed sees them.
func (c *cluster) primaries(ctx context.Context) ([]nodeInfo, error) {
	ns, err := c.nodes(ctx, c.seed())
	if err != nil {
		return nil, err
	}
	var out []nodeInfo
	for _, n := range ns {
		if n.Master && !n.Failed && len(n.Slots) > 0 {
			out = append(out, n)
		}
	}
	return out, nil
}

// slotOf is the hash slot of a queue's keys.
func (c *cluster) slotOf(ctx context.Context, queueID string) int {
	c.t.Helper()
	slot, err := c.client.ClusterKeySlot(ctx, "cq:{"+queueID+"}:line").Result()
	if err != nil {
		c.t.Fatal(err)
	}
	return int(slot)
}

// migrate moves slot from one primary to another the way redis-cli --cluster reshard does:
// IMPORTING on the target, MIGRATING on the source, MIGRATE of its keys in batches, then
// SETSLOT NODE everywhere. Between the two SETSLOT steps clients are redirected with ASK (or
// told TRYAGAIN when a script's keys are split between the nodes); after it, with MOVED.
// pause, when set, runs between the steps so the workload meets each state.
func (c *cluster) migrate(ctx context.Context, slot int, from, to nodeInfo, pause func()) error {
	src, dst := c.node(from.Addr), c.node(to.Addr)
	if err := dst.Do(ctx, "CLUSTER", "SETSLOT", slot, "IMPORTING", from.ID).Err(); err != nil {
		return fmt.Errorf("SETSLOT IMPORTING on %s: %w", to.Addr, err)
	}
	if err := src.Do(ctx, "CLUSTER", "SETSLOT", slot, "MIGRATING", to.ID).Err(); err != nil {
		return fmt.Errorf("SETSLOT MIGRATING on %s: %w", from.Addr, err)
	}
	if pause != nil {
		pause()
	}
	host, port, _ := strings.Cut(to.Addr, ":")
	for {
		keys, err := src.ClusterGetKeysInSlot(ctx, slot, 10).Result()
		if err != nil {
			return fmt.Errorf("GETKEYSINSLOT on %s: %w", from.Addr, err)
		}
		if len(keys) == 0 {
			break
		}
		args := []any{"MIGRATE", host, port, "", 0, 5000}
		if pw := os.Getenv("REDIS_CLUSTER_PASSWORD"); pw != "" {
			args = append(args, "AUTH", pw)
		}
		args = append(args, "KEYS")
		for _, k := range keys {
			args = append(args, k)
		}
		if err := src.Do(ctx, args...).Err(); err != nil && !errors.Is(err, redis.Nil) && err.Error() != "NOKEY" {
			return fmt.Errorf("MIGRATE %d keys to %s: %w", len(keys), to.Addr, err)
		}
		if pause != nil {
			pause() // keys of one queue now on both nodes: scripts meet TRYAGAIN
		}
	}
	// The target first, so that the source's MOVED never points at a node that would bounce
	// the client back.
	for _, n := range []nodeInfo{to, from} {
		if err := c.node(n.Addr).Do(ctx, "CLUSTER", "SETSLOT", slot, "NODE", to.ID).Err(); err != nil {
			return fmt.Errorf("SETSLOT NODE on %s: %w", n.Addr, err)
		}
	}
	ps, err := c.primaries(ctx)
	if err != nil {
		return err
	}
	for _, n := range ps {
		if n.ID != to.ID && n.ID != from.ID {
			_ = c.node(n.Addr).Do(ctx, "CLUSTER", "SETSLOT", slot, "NODE", to.ID).Err()
		}
	}
	return nil
}

// restoreSlot puts slot back on home, whatever state a failed test left it in.
func (c *cluster) restoreSlot(slot int, home nodeInfo) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	ps, err := c.primaries(ctx)
	if err != nil {
		c.t.Errorf("restore slot %d: %v", slot, err)
		return
	}
	for _, n := range ps {
		_ = c.node(n.Addr).Do(ctx, "CLUSTER", "SETSLOT", slot, "STABLE").Err()
	}
	cur, err := c.owner(ctx, slot)
	if err != nil {
		c.t.Errorf("restore slot %d: %v", slot, err)
		return
	}
	if cur.ID != home.ID {
		if err := c.migrate(ctx, slot, cur, home, nil); err != nil {
			c.t.Errorf("restore slot %d to %s: %v", slot, home.Addr, err)
		}
	}
	c.waitConsistent(ctx)
}

// waitConsistent waits until every primary agrees the cluster is ok, so the next test starts
// on a settled cluster.
func (c *cluster) waitConsistent(ctx context.Context) {
	for _, a := range redistest.ClusterAddrs() {
		for {
			info, err := c.node(a).ClusterInfo(ctx).Result()
			if err == nil && strings.Contains(info, "cluster_state:ok") {
				break
			}
			select {
			case <-ctx.Done():
				c.t.Errorf("node %s: cluster not ok: %v %s", a, err, info)
				return
			case <-time.After(50 * time.Millisecond):
			}
		}
	}
}

// clusterAddrs are the nodes of REDIS_CLUSTER_ADDRS.
func clusterAddrs() []string { return redistest.ClusterAddrs() }
