// Command bench measures the queue against the real redis-server named by REDIS_ADDR: it
// loads -users queued users into a queue of its own, measures join, poll, heartbeat, claim,
// mark-ready and a bounded reap with -conc goroutines next to the ceilings of the same client
// (PING and a trivial EVALSHA), prints a Markdown table, and deletes every key it created.
//
//	REDIS_ADDR=127.0.0.1:6379 go run ./scripts/bench -users 1000000
//
// It never flushes or resets the server: it diffs INFO before and after each phase, so other
// clients of a shared server add noise to the CPU columns (the table says so).
package main

import (
	"context"
	crand "crypto/rand"
	"encoding/hex"
	"flag"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"os"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"github.com/carqueue/carqueue/shared/queue"
	"github.com/carqueue/carqueue/shared/redistest"
	"github.com/redis/go-redis/v9"
)

type config struct {
	users, conc, ops, claims, joins, reapUsers, reapBatch, bigUsers, bigSize int
}

func main() {
	var c config
	flag.IntVar(&c.users, "users", 1_000_000, "queued users to load")
	flag.IntVar(&c.conc, "conc", 50, "concurrent goroutines")
	flag.IntVar(&c.ops, "ops", 200_000, "operations per measured phase (poll, heartbeat, ceilings)")
	flag.IntVar(&c.claims, "claims", 20_000, "users to claim one by one (also the capacity and the heartbeating holders)")
	flag.IntVar(&c.joins, "joins", 100_000, "new users to join in the join phase")
	flag.IntVar(&c.reapUsers, "reap", 10_000, "stale users to reap")
	flag.IntVar(&c.reapBatch, "batch", 25, "reap batch size (REAPER_BATCH)")
	flag.IntVar(&c.bigUsers, "big-users", 20_000, "users loaded with a large ClientSession, for its memory cost")
	flag.IntVar(&c.bigSize, "big-size", 1024, "bytes of the large ClientSession")
	flag.Parse()
	log := slog.New(slog.NewJSONHandler(os.Stderr, nil))
	addr := os.Getenv("REDIS_ADDR")
	if addr == "" {
		fmt.Println("REDIS_ADDR is unset: skipping the benchmark (it needs a real redis-server)")
		return
	}
	if err := run(context.Background(), addr, c); err != nil {
		log.Error("bench failed", "err", err)
		os.Exit(1)
	}
}

// fakeClock lets the benchmark make users stale without waiting.
type fakeClock struct{ ms atomic.Int64 }

func (f *fakeClock) Now() time.Time          { return time.UnixMilli(f.ms.Load()) }
func (f *fakeClock) Advance(d time.Duration) { f.ms.Add(d.Milliseconds()) }

// options are complete queue settings (the queue has no defaults of its own). The idle timeout
// is a minute because the reap phase advances the clock 61 s to make every queued user idle.
func options(id string, capacity int, now func() time.Time) queue.Options {
	return queue.Options{
		QueueID: id, Capacity: capacity, Now: now,
		QueueIdleTimeout: time.Minute, HeartbeatTimeout: time.Minute, ReadyTimeout: time.Minute,
		ClaimLease: 30 * time.Second, GoneRetention: 10 * time.Minute, RateWindow: 5 * time.Minute,
	}
}

// clientIP is a documentation-range IPv4 address of 10-15 bytes, as real clients send.
func clientIP(i int) string { return fmt.Sprintf("198.51.%d.%d", i/256%256, i%256) }

func randomID() string {
	b := make([]byte, 4)
	_, _ = crand.Read(b)
	return hex.EncodeToString(b)
}

func run(ctx context.Context, addr string, c config) error {
	rt := &redistest.RoundTrips{}
	client := redis.NewClient(&redis.Options{Addr: addr, Password: os.Getenv("REDIS_PASSWORD"), Protocol: 2, PoolSize: c.conc * 2})
	defer client.Close()
	client.AddHook(rt)
	admin := redis.NewClient(&redis.Options{Addr: addr, Password: os.Getenv("REDIS_PASSWORD"), Protocol: 2})
	defer admin.Close()
	if err := admin.Ping(ctx).Err(); err != nil {
		return fmt.Errorf("ping %s: %w", addr, err)
	}
	info, _ := admin.Info(ctx, "server").Result()
	version := ""
	for _, l := range strings.Split(info, "\n") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(l), "redis_version:"); ok {
			version = v
		}
	}

	clk := &fakeClock{}
	clk.ms.Store(time.Now().UnixMilli())
	id := "bench-" + randomID()
	opts := options(id, c.claims, clk.Now)
	// long holder timeouts: the reap phase measures idle queued users only
	opts.HeartbeatTimeout, opts.ReadyTimeout = time.Hour, time.Hour
	q, err := queue.New(client, opts)
	if err != nil {
		return err
	}
	defer cleanup(admin, q.KeyPrefix())
	bigID := id + "-big"
	big, err := queue.New(client, options(bigID, 1, clk.Now))
	if err != nil {
		return err
	}
	defer cleanup(admin, big.KeyPrefix())

	userID := func(i int) string { return fmt.Sprintf("user-%07d", i) }
	var rows []result
	add := func(r result, err error) error {
		if err != nil {
			return err
		}
		rows = append(rows, r)
		fmt.Println(r.row())
		return nil
	}

	// Load, measuring memory per queued user.
	m0, err := readStats(ctx, admin)
	if err != nil {
		return err
	}
	tickets := make([]queue.Proof, c.users) // what each user's ticket proves, as /poll shows it
	if err := add(measure(ctx, admin, rt, fmt.Sprintf("load: join (%d users, IPv4 + cs 16 B)", c.users), c.conc*2, c.users, func(i int) error {
		clk.Advance(time.Millisecond) // users arrive over time: distinct last-seen values
		st, err := q.Join(ctx, userID(i), queue.Client{IP: clientIP(i), Session: fmt.Sprintf("cs-%013d", i)}, queue.Trusted)
		tickets[i] = queue.Ticketed(st.JoinID)
		return err
	})); err != nil {
		return err
	}
	m1, err := readStats(ctx, admin)
	if err != nil {
		return err
	}
	perKey, err := keyMemory(ctx, admin, q.KeyPrefix(), "line", "ls", "cs")
	if err != nil {
		return err
	}
	bigCS := strings.Repeat("x", c.bigSize)
	if err := add(measure(ctx, admin, rt, fmt.Sprintf("load: join (%d users, IPv4 + cs %d B)", c.bigUsers, c.bigSize), c.conc, c.bigUsers, func(i int) error {
		_, err := big.Join(ctx, userID(i), queue.Client{IP: clientIP(i), Session: bigCS}, queue.Trusted)
		return err
	})); err != nil {
		return err
	}
	m2, err := readStats(ctx, admin)
	if err != nil {
		return err
	}
	perKeyBig, err := keyMemory(ctx, admin, big.KeyPrefix(), "line", "ls", "cs")
	if err != nil {
		return err
	}

	// Ceilings of this client with the same concurrency.
	if err := add(measure(ctx, admin, rt, "ceiling: PING", c.conc, c.ops, func(int) error { return client.Ping(ctx).Err() })); err != nil {
		return err
	}
	trivial := redis.NewScript("return 1")
	if err := add(measure(ctx, admin, rt, "ceiling: EVALSHA return 1", c.conc, c.ops, func(int) error {
		return trivial.Run(ctx, client, nil).Err()
	})); err != nil {
		return err
	}

	// The operations.
	// A user's /poll shows its ticket: the pipelined path, batched with the polls in flight
	// (shared/queue/pipeline.go). Trusted (the service's own polls) takes the script.
	if err := add(measure(ctx, admin, rt, "poll (random queued user, ticket)", c.conc, c.ops, func(int) error {
		clk.Advance(time.Millisecond)
		i := rand.IntN(c.users)
		_, err := q.Poll(ctx, userID(i), queue.Client{}, tickets[i])
		return err
	})); err != nil {
		return err
	}
	// The head of the line polls most often (NextPollMs grows with √position), and its
	// members stay in the CPU cache: the warm case, comparable to DESIGN.md's single-member
	// redis-benchmark figure.
	if err := add(measure(ctx, admin, rt, "poll (one of the first 1,000: warm, ticket)", c.conc, c.ops, func(int) error {
		clk.Advance(time.Millisecond)
		i := rand.IntN(min(1000, c.users))
		_, err := q.Poll(ctx, userID(i), queue.Client{}, tickets[i])
		return err
	})); err != nil {
		return err
	}
	if err := add(measure(ctx, admin, rt, "poll (random queued user, script: trusted)", c.conc, c.ops, func(int) error {
		clk.Advance(time.Millisecond)
		_, err := q.Poll(ctx, userID(rand.IntN(c.users)), queue.Client{}, queue.Trusted)
		return err
	})); err != nil {
		return err
	}
	// One poll at a time, as an SCF event instance sends them: the same pipeline, unbatched,
	// against the script and a PING sent the same way.
	if err := add(measure(ctx, admin, rt, "ceiling: PING, 1 at a time", 1, c.ops/10, func(int) error { return client.Ping(ctx).Err() })); err != nil {
		return err
	}
	if err := add(measure(ctx, admin, rt, "poll (random queued user, script: trusted, 1 at a time)", 1, c.ops/10, func(int) error {
		clk.Advance(time.Millisecond)
		_, err := q.Poll(ctx, userID(rand.IntN(c.users)), queue.Client{}, queue.Trusted)
		return err
	})); err != nil {
		return err
	}
	if err := add(measure(ctx, admin, rt, "poll (random queued user, ticket, 1 at a time)", 1, c.ops/10, func(int) error {
		clk.Advance(time.Millisecond)
		i := rand.IntN(c.users)
		_, err := q.Poll(ctx, userID(i), queue.Client{}, tickets[i])
		return err
	})); err != nil {
		return err
	}
	if err := add(measure(ctx, admin, rt, "poll + new ClientSession (16 B)", c.conc, c.ops, func(i int) error {
		_, err := q.Poll(ctx, userID(rand.IntN(c.users)), queue.Client{IP: clientIP(i), Session: fmt.Sprintf("cs-%013d", i)}, queue.Trusted)
		return err
	})); err != nil {
		return err
	}
	if err := add(measure(ctx, admin, rt, "join (new user at the back)", c.conc, c.joins, func(i int) error {
		_, err := q.Join(ctx, userID(c.users+i), queue.Client{IP: clientIP(i), Session: "cs-new"}, queue.Trusted)
		return err
	})); err != nil {
		return err
	}
	if err := add(measure(ctx, admin, rt, "join again (already queued)", c.conc, c.ops, func(int) error {
		_, err := q.Join(ctx, userID(rand.IntN(c.users)), queue.Client{}, queue.Trusted)
		return err
	})); err != nil {
		return err
	}
	claims := make([]queue.Claim, c.claims)
	if err := add(measure(ctx, admin, rt, "claim (1 from the head)", c.conc, c.claims, func(i int) error {
		cs, err := q.Claim(ctx, 1)
		if err == nil && len(cs) == 1 {
			claims[i] = cs[0]
		} else if err == nil {
			err = fmt.Errorf("claim %d: none", i)
		}
		return err
	})); err != nil {
		return err
	}
	if err := add(measure(ctx, admin, rt, "mark ready", c.conc, c.claims, func(i int) error {
		return q.MarkReady(ctx, claims[i], "server-session")
	})); err != nil {
		return err
	}
	if err := add(measure(ctx, admin, rt, fmt.Sprintf("heartbeat (random of %d holders)", c.claims), c.conc, c.ops, func(int) error {
		clk.Advance(time.Millisecond) // real heartbeats arrive at distinct times
		_, err := q.Heartbeat(ctx, claims[rand.IntN(len(claims))].UserID, queue.Trusted)
		return err
	})); err != nil {
		return err
	}

	// Sweep: the steady state, nobody idle. One whole sweep of the last-seen hash, through a
	// handle on the same queue whose idle timeout (an hour) nobody has reached, reading the
	// server's CPU and commandstats around the whole sweep.
	sweepOpts := opts
	sweepOpts.QueueIdleTimeout = time.Hour
	sweeper, err := queue.New(client, sweepOpts)
	if err != nil {
		return err
	}
	var sweepCalls int64
	var sweepMax time.Duration
	s0, err := readStats(ctx, admin)
	if err != nil {
		return err
	}
	for more := true; more; {
		t0 := time.Now()
		res, err := sweeper.Reap(ctx, c.reapBatch)
		if err != nil {
			return err
		}
		sweepMax = max(sweepMax, time.Since(t0))
		sweepCalls++
		more = res.More
		if n := res.Dropped[queue.ReasonIdle]; n > 0 {
			return fmt.Errorf("sweep dropped %d users seen within the hour", n)
		}
	}
	s1, err := readStats(ctx, admin)
	if err != nil {
		return err
	}
	cmdUsec := func(name string) float64 { return float64(s1.perCmd[name][1]-s0.perCmd[name][1]) / 1000 }
	fmt.Printf("sweep: %d users, nobody idle, batch %d: %d reap calls; server CPU %.1f ms (%.2f us/user), of which HSCAN %.1f ms, reap script %.1f ms, HMGET+HLEN %.1f ms; longest call %v client-side (3 round trips)\n",
		c.users, c.reapBatch, sweepCalls, (s1.cpu-s0.cpu)*1000, (s1.cpu-s0.cpu)*1e6/float64(c.users),
		cmdUsec("hscan"), cmdUsec("evalsha"), cmdUsec("hmget")+cmdUsec("hlen"), sweepMax)

	// Reap: every queued user is idle after a minute; reap reapUsers of them in batches, one
	// at a time, reading the server's EVALSHA time around each batch.
	clk.Advance(61 * time.Second)
	batches := (c.reapUsers + c.reapBatch - 1) / c.reapBatch
	reaped := atomic.Int64{}
	var batchUsec []int64
	r, err := measure(ctx, admin, rt, fmt.Sprintf("reap batch of %d idle users", c.reapBatch), 1, batches, func(int) error {
		// A batch takes about a millisecond, so the next one starts a millisecond later: with a
		// frozen clock every departure would get the same forget-time in gone, ordered by
		// UserId among all earlier batches' instead of after them, which no real reaper sees.
		clk.Advance(time.Millisecond)
		before, err := readStats(ctx, admin)
		if err != nil {
			return err
		}
		res, err := q.Reap(ctx, c.reapBatch)
		if err != nil {
			return err
		}
		reaped.Add(int64(res.Dropped[queue.ReasonIdle]))
		after, err := readStats(ctx, admin)
		if err != nil {
			return err
		}
		batchUsec = append(batchUsec, after.evalUsec-before.evalUsec)
		return nil
	})
	if err := add(r, err); err != nil {
		return err
	}

	st, err := q.Stats(ctx)
	if err != nil {
		return err
	}
	fmt.Println("\nServer-side commands per phase (from INFO commandstats; script-internal commands included):")
	for _, r := range rows {
		fmt.Printf("- %s: %s\n", r.name, r.breakdown)
	}
	fmt.Printf("\nredis-server %s at %s; queue %s; stats after: %+v\n", version, addr, id, st)
	fmt.Printf("memory: %d users with an IPv4 and a 16 B ClientSession: %d B used_memory delta = %.1f B/user\n",
		c.users, m1.usedMemory-m0.usedMemory, float64(m1.usedMemory-m0.usedMemory)/float64(c.users))
	fmt.Printf("memory: %d users with an IPv4 and a %d B ClientSession: %d B delta = %.1f B/user\n",
		c.bigUsers, c.bigSize, m2.usedMemory-m1.usedMemory, float64(m2.usedMemory-m1.usedMemory)/float64(c.bigUsers))
	printKeyMemory("IPv4 + 16 B ClientSession", perKey, c.users)
	printKeyMemory(fmt.Sprintf("IPv4 + %d B ClientSession", c.bigSize), perKeyBig, c.bigUsers)
	slices.Sort(batchUsec)
	pct := func(p float64) int64 {
		if len(batchUsec) == 0 {
			return 0
		}
		return batchUsec[min(len(batchUsec)-1, int(p*float64(len(batchUsec))))]
	}
	over := 0
	for _, u := range batchUsec {
		if u >= 2000 {
			over++
		}
	}
	fmt.Printf("reap: %d idle users reaped in %d batches; Redis time %.1f ms total (%d evalsha calls, %.0f us mean); per batch p50 %d us, p90 %d us, max %d us, %d of %d batches >= 2 ms; client-side longest batch %v (includes 2 INFO calls)\n",
		reaped.Load(), batches, float64(r.evalUsec)/1000, r.evalCalls, float64(r.evalUsec)/float64(max(r.evalCalls, 1)),
		pct(0.5), pct(0.9), pct(1), over, len(batchUsec), r.maxLatency)
	return nil
}

// cleanup deletes the benchmark's keys, and only those.
func cleanup(admin *redis.Client, prefix string) {
	ctx := context.Background()
	iter := admin.Scan(ctx, 0, prefix+"*", 1000).Iterator()
	var keys []string
	for iter.Next(ctx) {
		keys = append(keys, iter.Val())
	}
	for _, k := range keys {
		admin.Unlink(ctx, k)
	}
	fmt.Printf("cleanup: unlinked %d keys under %s\n", len(keys), prefix)
}

// keyMemory asks MEMORY USAGE (sampling 10000 elements) of each named key of a queue.
func keyMemory(ctx context.Context, admin *redis.Client, prefix string, names ...string) (map[string]int64, error) {
	out := map[string]int64{}
	for _, n := range names {
		v, err := admin.MemoryUsage(ctx, prefix+n, 10000).Result()
		if err != nil {
			return nil, fmt.Errorf("memory usage %s: %w", n, err)
		}
		out[n] = v
	}
	return out, nil
}

func printKeyMemory(what string, m map[string]int64, users int) {
	var total int64
	parts := []string{}
	for _, n := range []string{"line", "ls", "cs"} {
		total += m[n]
		parts = append(parts, fmt.Sprintf("%s %.1f", n, float64(m[n])/float64(users)))
	}
	fmt.Printf("memory (MEMORY USAGE, %s): %.1f B/user = %s\n", what, float64(total)/float64(users), strings.Join(parts, " + "))
}
