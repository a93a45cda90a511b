package clustertest

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// replica is a redis-server the test started and joined to the cluster as a replica.
type replica struct {
	ID, Addr string
	client   *redis.Client
	cmd      *exec.Cmd
	dir      string
}

// startReplica starts a cluster-enabled redis-server on a free port, introduces it to the
// cluster (CLUSTER MEET) and makes it a replica of primary (CLUSTER REPLICATE), and waits
// until it has synced and every primary knows it. Cleanup stops it and makes the cluster
// forget it, after primary is put back in charge of its slots.
func (c *cluster) startReplica(ctx context.Context, primary nodeInfo) *replica {
	t := c.t
	t.Helper()
	path, err := exec.LookPath("redis-server")
	if err != nil {
		t.Fatalf("redis-server not on PATH: %v", err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	_ = l.Close()
	r := &replica{Addr: "127.0.0.1:" + strconv.Itoa(port), dir: t.TempDir()}
	args := []string{"--port", strconv.Itoa(port), "--bind", "127.0.0.1", "--cluster-enabled", "yes",
		"--cluster-config-file", filepath.Join(r.dir, "nodes.conf"), "--cluster-node-timeout", "2000",
		"--save", "", "--appendonly", "no", "--dir", r.dir, "--logfile", filepath.Join(r.dir, "redis.log")}
	if pw := os.Getenv("REDIS_CLUSTER_PASSWORD"); pw != "" {
		args = append(args, "--requirepass", pw, "--masterauth", pw)
	}
	r.cmd = exec.Command(path, args...)
	if err := r.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() { _ = r.cmd.Wait(); close(exited) }()
	r.client = c.node(r.Addr)
	t.Cleanup(func() { c.removeReplica(r, primary, exited) })

	c.waitFor(ctx, "the replica answers PING", func() (bool, error) { return r.client.Ping(ctx).Err() == nil, nil })
	if r.ID, err = r.client.Do(ctx, "CLUSTER", "MYID").Text(); err != nil {
		t.Fatal(err)
	}
	host, pport, _ := strings.Cut(primary.Addr, ":")
	if err := r.client.ClusterMeet(ctx, host, pport).Err(); err != nil {
		t.Fatalf("CLUSTER MEET: %v", err)
	}
	c.waitFor(ctx, "the replica knows the primary", func() (bool, error) {
		return r.client.ClusterReplicate(ctx, primary.ID).Err() == nil, nil
	})
	c.waitFor(ctx, "the replica has synced", func() (bool, error) {
		info, err := r.client.Info(ctx, "replication").Result()
		return strings.Contains(info, "master_link_status:up") && strings.Contains(info, "master_sync_in_progress:0"), err
	})
	for _, a := range clusterAddrs() {
		c.waitFor(ctx, "node "+a+" knows the replica", func() (bool, error) {
			ns, err := c.nodes(ctx, a)
			for _, n := range ns {
				if n.ID == r.ID && n.MasterID == primary.ID {
					return true, err
				}
			}
			return false, err
		})
	}
	return r
}

// removeReplica puts primary back in charge if the replica still is (a failed test), stops the
// replica, and has every node forget it.
func (c *cluster) removeReplica(r *replica, primary nodeInfo, exited chan struct{}) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if role(ctx, c.node(primary.Addr)) != "master" {
		_ = c.node(primary.Addr).Do(ctx, "CLUSTER", "FAILOVER", "TAKEOVER").Err()
		c.waitFor(ctx, primary.Addr+" is primary again", func() (bool, error) {
			return role(ctx, c.node(primary.Addr)) == "master", nil
		})
	}
	_ = r.cmd.Process.Kill()
	<-exited
	for _, a := range clusterAddrs() {
		if r.ID != "" {
			if err := c.node(a).Do(ctx, "CLUSTER", "FORGET", r.ID).Err(); err != nil && !strings.Contains(err.Error(), "Unknown node") {
				c.t.Errorf("CLUSTER FORGET on %s: %v", a, err)
			}
		}
	}
	c.waitConsistent(ctx)
}

// role is INFO replication's role of a node ("master", "slave"), "" when it does not answer.
func role(ctx context.Context, n *redis.Client) string {
	info, err := n.Info(ctx, "replication").Result()
	if err != nil {
		return ""
	}
	for _, line := range strings.Split(info, "\n") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), "role:"); ok {
			return v
		}
	}
	return ""
}

// waitFor polls cond until it holds; it fails the test when ctx ends first.
func (c *cluster) waitFor(ctx context.Context, what string, cond func() (bool, error)) {
	c.t.Helper()
	var last error
	for {
		ok, err := cond()
		if ok {
			return
		}
		if err != nil {
			last = err
		}
		select {
		case <-ctx.Done():
			c.t.Fatalf("waiting until %s: %v (last error %v)", what, ctx.Err(), last)
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// TestFailoverLosesNobody gives the queue's primary a replica, then fails over to it
// (CLUSTER FAILOVER, the coordinated failover an operator or a managed service runs for
// maintenance) in the middle of a run. The cluster client follows the slot to the new primary;
// no user is lost and the queue's invariants hold on the new primary. The old primary takes
// its slots back when the test ends (CLUSTER FAILOVER TAKEOVER, with no workload running).
func TestFailoverLosesNobody(t *testing.T) {
	c := needCluster(t)
	ctx := context.Background()
	q, id := newQueue(t, c)
	slot := c.slotOf(ctx, id)
	home, err := c.owner(ctx, slot)
	if err != nil {
		t.Fatal(err)
	}
	setup, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	r := c.startReplica(setup, home)

	w := newWorkload(t, q, 150)
	w.run(ctx, func(ctx context.Context) error {
		ctx, cancel := context.WithTimeout(ctx, time.Minute)
		defer cancel()
		if err := r.client.Do(ctx, "CLUSTER", "FAILOVER").Err(); err != nil {
			return fmt.Errorf("CLUSTER FAILOVER on the replica %s: %w", r.Addr, err)
		}
		c.waitFor(ctx, "the replica "+r.Addr+" is primary", func() (bool, error) {
			return role(ctx, r.client) == "master", nil
		})
		return nil
	})
	if now, err := c.owner(ctx, slot); err != nil || now.ID != r.ID {
		t.Fatalf("slot %d on %s (%v), want on the promoted replica %s", slot, now.Addr, err, r.Addr)
	}
	w.verify(ctx)
}
