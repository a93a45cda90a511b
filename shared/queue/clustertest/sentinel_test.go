package clustertest

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/carqueue/carqueue/shared/queue"
	"github.com/carqueue/carqueue/shared/testkit"
	"github.com/redis/go-redis/v9"
)

// server is a redis-server process the test started (a primary, a replica or a sentinel).
type server struct {
	addr   string
	cmd    *exec.Cmd
	exited chan struct{}
}

// startServer runs redis-server with args (after the config file, when given) on a free port.
func startServer(t *testing.T, conf string, args ...string) *server {
	t.Helper()
	path, err := exec.LookPath("redis-server")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("redis-server not on PATH: %v", err)
		}
		t.Skipf("redis-server not on PATH: %v", err)
	}
	port := testkit.FreePort(t)
	dir := t.TempDir()
	all := []string{}
	if conf != "" {
		f := filepath.Join(dir, "sentinel.conf")
		if err := os.WriteFile(f, []byte(conf), 0o644); err != nil {
			t.Fatal(err)
		}
		all = append(all, f, "--sentinel")
	}
	all = append(all, "--port", strconv.Itoa(port), "--bind", "127.0.0.1", "--dir", dir, "--logfile", filepath.Join(dir, "redis.log"))
	if conf == "" {
		all = append(all, "--save", "", "--appendonly", "no")
	}
	s := &server{addr: "127.0.0.1:" + strconv.Itoa(port), cmd: exec.Command(path, append(all, args...)...), exited: make(chan struct{})}
	if err := s.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { _ = s.cmd.Wait(); close(s.exited) }()
	t.Cleanup(func() { s.kill() })
	c := redis.NewClient(&redis.Options{Addr: s.addr, Protocol: 2})
	defer c.Close()
	waitUntil(t, 10*time.Second, s.addr+" answers PING", func() bool { return c.Ping(context.Background()).Err() == nil })
	return s
}

func (s *server) kill() {
	if s.cmd.Process != nil {
		_ = s.cmd.Process.Kill()
		<-s.exited
	}
}

// waitUntil polls cond in real time: a failover happens in real seconds.
func waitUntil(t *testing.T, within time.Duration, what string, cond func() bool) {
	t.Helper()
	end := time.Now().Add(within)
	for !cond() {
		if time.Now().After(end) {
			t.Fatalf("waited %v for %s", within, what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestSentinelUnplannedFailover runs a queue through Sentinel (REDIS_MASTER_NAME) on a primary,
// its replica and one sentinel, then kills the primary while users keep polling: the client
// follows the promoted replica, the calls fail only for the few seconds the sentinel takes to
// notice and promote (users are answered 503 and retry), and nobody whose join had reached the
// replica is lost.
func TestSentinelUnplannedFailover(t *testing.T) {
	primary := startServer(t, "")
	replica := startServer(t, "", "--replicaof", "127.0.0.1", strings.TrimPrefix(primary.addr, "127.0.0.1:"))
	sentinel := startServer(t, fmt.Sprintf("sentinel monitor carq 127.0.0.1 %s 1\nsentinel down-after-milliseconds carq 1000\nsentinel failover-timeout carq 10000\n",
		strings.TrimPrefix(primary.addr, "127.0.0.1:")))
	ctx := context.Background()
	pc := redis.NewClient(&redis.Options{Addr: primary.addr, Protocol: 2})
	defer pc.Close()
	rc := redis.NewClient(&redis.Options{Addr: replica.addr, Protocol: 2})
	defer rc.Close()
	waitUntil(t, 10*time.Second, "the replica to sync", func() bool {
		info, _ := rc.Info(ctx, "replication").Result()
		return strings.Contains(info, "master_link_status:up")
	})

	rdb, err := queue.Connect(queue.ConnOptions{Addrs: []string{sentinel.addr}, MasterName: "carq",
		DialTimeout: 500 * time.Millisecond, ReadTimeout: 500 * time.Millisecond, WriteTimeout: 500 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer rdb.Close()
	clk := testkit.NewClock()
	q, err := queue.New(rdb, queue.Options{QueueID: "sentinel-test", Capacity: 3, QueueIdleTimeout: time.Hour,
		HeartbeatTimeout: time.Hour, ReadyTimeout: time.Hour, ClaimLease: time.Minute, GoneRetention: time.Hour,
		RateWindow: time.Minute, Now: clk.Now})
	if err != nil {
		t.Fatal(err)
	}
	var users []string
	for i := range 40 {
		u := fmt.Sprintf("s%02d", i)
		users = append(users, u)
		if _, err := q.Join(ctx, u, queue.Client{Session: "cs"}, queue.Trusted); err != nil {
			t.Fatal(err)
		}
	}
	cs, err := q.Claim(ctx, 3)
	if err != nil || len(cs) != 3 {
		t.Fatalf("claim: %v %v", cs, err)
	}
	for _, c := range cs {
		if err := q.MarkReady(ctx, c, "ss"); err != nil {
			t.Fatal(err)
		}
	}
	// What the replica has when the primary dies is what survives (replication is
	// asynchronous; docs/REDIS.md): wait until it has all of the above.
	if n, err := pc.Do(ctx, "WAIT", 1, 5000).Int(); err != nil || n != 1 {
		t.Fatalf("WAIT: %d %v", n, err)
	}

	// Users keep polling while the primary dies; count how long calls fail.
	var (
		mu                sync.Mutex
		firstErr, lastErr time.Time
		failed, ok        int
	)
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Go(func() {
			for i := w; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				_, err := q.Poll(ctx, users[i%len(users)], queue.Client{}, queue.Trusted)
				now := time.Now()
				mu.Lock()
				if err != nil {
					failed++
					if firstErr.IsZero() {
						firstErr = now
					}
					lastErr = now
				} else {
					ok++
				}
				mu.Unlock()
				time.Sleep(20 * time.Millisecond)
			}
		})
	}
	time.Sleep(300 * time.Millisecond)
	killed := time.Now()
	primary.kill()
	waitUntil(t, 30*time.Second, "the sentinel to promote the replica", func() bool {
		info, _ := rc.Info(ctx, "replication").Result()
		return strings.Contains(info, "role:master")
	})
	waitUntil(t, 15*time.Second, "polls to succeed again", func() bool {
		_, err := q.Poll(ctx, users[0], queue.Client{}, queue.Trusted)
		return err == nil
	})
	time.Sleep(300 * time.Millisecond)
	close(stop)
	wg.Wait()
	outage := time.Duration(0)
	if !firstErr.IsZero() {
		outage = lastErr.Sub(firstErr)
	}
	t.Logf("primary killed; %d polls failed over %v (first failure %v after the kill), %d succeeded", failed, outage.Round(time.Millisecond), firstErr.Sub(killed).Round(time.Millisecond), ok)
	if outage > 15*time.Second {
		t.Fatalf("calls failed for %v after the primary died", outage)
	}

	// Nobody lost: every user in the state it had, the holders still holding.
	s, err := q.Stats(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if s.Queued != 37 || s.Ready != 3 || s.AdmittedTotal != 3 {
		t.Fatalf("after the failover: %+v", s)
	}
	if err := q.CheckInvariants(ctx); err != nil {
		t.Fatal(err)
	}
	// The promoted primary takes writes: the line goes on.
	if _, err := q.Join(ctx, "late", queue.Client{Session: "cs"}, queue.Trusted); err != nil {
		t.Fatal(err)
	}
}
