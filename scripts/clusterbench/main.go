// Command clusterbench measures what a Redis Cluster buys carqueue (issue 9 item 8): the
// aggregate poll throughput of 30 queues spread over the cluster's primaries against the same
// load on 30 queues whose hash slots all sit on one primary, in one run, on one cluster, with
// the queue package's real Join and Poll. The ratio is the point: one queue's keys share a hash
// tag, so queues (not users) are what a cluster spreads.
//
//	scripts/redis-cluster.sh start
//	go run ./scripts/clusterbench -addrs "$(scripts/redis-cluster.sh addrs)"
//
// Every key it writes is under its own run prefix and deleted at the end.
package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"flag"
	"fmt"
	mrand "math/rand/v2"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/carqueue/carqueue/shared/queue"
	"github.com/redis/go-redis/v9"
)

func main() {
	addrs := flag.String("addrs", "127.0.0.1:7000,127.0.0.1:7001,127.0.0.1:7002", "the cluster's nodes, comma-separated")
	queues := flag.Int("queues", 30, "queues in each layout")
	users := flag.Int("users", 200, "users joined per queue")
	conc := flag.Int("concurrency", 96, "goroutines polling at once")
	dur := flag.Duration("duration", 10*time.Second, "measuring time of each layout")
	rounds := flag.Int("rounds", 2, "alternations of the two layouts (the figure is each layout's best)")
	flag.Parse()
	if err := run(strings.Split(*addrs, ","), *queues, *users, *conc, *dur, *rounds); err != nil {
		fmt.Fprintln(os.Stderr, "clusterbench:", err)
		os.Exit(1)
	}
}

func run(addrs []string, nq, nu, conc int, dur time.Duration, rounds int) error {
	ctx := context.Background()
	rdb, err := queue.Connect(queue.ConnOptions{Addrs: addrs, PoolSize: conc, ReadTimeout: 5 * time.Second})
	if err != nil {
		return err
	}
	cc, ok := rdb.(*redis.ClusterClient)
	if !ok {
		return fmt.Errorf("-addrs must list a cluster's nodes (several)")
	}
	defer cc.Close()
	slots, err := cc.ClusterSlots(ctx).Result()
	if err != nil {
		return err
	}
	ownerOf := func(id string) string {
		s := int(cc.ClusterKeySlot(ctx, "cq:{"+id+"}:line").Val())
		for _, r := range slots {
			if s >= int(r.Start) && s <= int(r.End) {
				return r.Nodes[0].Addr
			}
		}
		return "?"
	}
	b := make([]byte, 4)
	_, _ = rand.Read(b)
	run := "cb" + hex.EncodeToString(b)
	defer cleanup(cc, run)

	// Spread: one queue id after another, round robin over the primaries. One: all on the
	// primary of the first.
	var primaries []string
	for _, r := range slots {
		primaries = append(primaries, r.Nodes[0].Addr)
	}
	spread, one := pick(run+"s", nq, ownerOf, primaries), pick(run+"o", nq, ownerOf, []string{primaries[0]})
	layouts := []struct {
		name string
		ids  []string
	}{{"spread over " + fmt.Sprint(len(uniq(primaries))) + " primaries", spread}, {"all on one primary (" + primaries[0] + ")", one}}

	qs := map[string][]*queue.Queue{}
	for _, l := range layouts {
		for _, id := range l.ids {
			q, err := queue.New(cc, queue.Options{QueueID: id, Capacity: 1, QueueIdleTimeout: time.Hour, HeartbeatTimeout: time.Hour,
				ReadyTimeout: time.Hour, ClaimLease: time.Hour, GoneRetention: time.Hour, RateWindow: time.Hour})
			if err != nil {
				return err
			}
			qs[l.name] = append(qs[l.name], q)
			if err := joinAll(ctx, q, nu); err != nil {
				return err
			}
		}
	}
	best := map[string]float64{}
	for r := 0; r < rounds; r++ {
		for _, l := range layouts {
			rate, errs := pollFor(ctx, qs[l.name], nu, conc, dur)
			fmt.Printf("round %d  %-40s %9.0f polls/s  (%d errors)\n", r+1, l.name, rate, errs)
			best[l.name] = max(best[l.name], rate)
		}
	}
	a, o := best[layouts[0].name], best[layouts[1].name]
	fmt.Printf("\n%d queues × %d users, %d pollers, %s per layout, best of %d:\n", nq, nu, conc, dur, rounds)
	fmt.Printf("  %-40s %9.0f polls/s\n  %-40s %9.0f polls/s\n  ratio spread/one: %.2f\n", layouts[0].name, a, layouts[1].name, o, a/o)
	return nil
}

// pick returns n queue ids whose slots fall on the given primaries, in turn.
func pick(prefix string, n int, ownerOf func(string) string, on []string) []string {
	var out []string
	for i := 0; len(out) < n; i++ {
		id := fmt.Sprintf("%s-%d", prefix, i)
		if ownerOf(id) == on[len(out)%len(on)] {
			out = append(out, id)
		}
	}
	return out
}

func uniq(s []string) map[string]bool {
	m := map[string]bool{}
	for _, x := range s {
		m[x] = true
	}
	return m
}

func joinAll(ctx context.Context, q *queue.Queue, nu int) error {
	for i := range nu {
		if _, err := q.Join(ctx, fmt.Sprintf("u%d", i), queue.Client{IP: "10.0.0.1", Session: "cs"}, queue.Unproven); err != nil {
			return err
		}
	}
	return nil
}

// pollFor polls random users of random queues from conc goroutines for d; it returns polls per
// second and the errors seen.
func pollFor(ctx context.Context, qs []*queue.Queue, nu, conc int, d time.Duration) (float64, int64) {
	var n, errs atomic.Int64
	deadline := time.Now().Add(d)
	var wg sync.WaitGroup
	for range conc {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for time.Now().Before(deadline) {
				q := qs[mrand.IntN(len(qs))]
				if _, err := q.Poll(ctx, fmt.Sprintf("u%d", mrand.IntN(nu)), queue.Client{}, queue.Trusted); err != nil {
					errs.Add(1)
					continue
				}
				n.Add(1)
			}
		}()
	}
	start := time.Now()
	wg.Wait()
	return float64(n.Load()) / time.Since(start).Seconds(), errs.Load()
}

// cleanup deletes the run's keys on every primary, key by key.
func cleanup(cc *redis.ClusterClient, run string) {
	ctx := context.Background()
	_ = cc.ForEachMaster(ctx, func(ctx context.Context, m *redis.Client) error {
		iter := m.Scan(ctx, 0, "*"+run+"*", 1000).Iterator()
		for iter.Next(ctx) {
			m.Unlink(ctx, iter.Val())
		}
		return nil
	})
}
