package queue

import (
	"context"
	"fmt"
	"os"
	"strings"
	"testing"

	"github.com/carqueue/carqueue/shared/redistest"
	"github.com/redis/go-redis/v9"
)

// TestBatchInSplitSlotRunsEachCommandOnce batches two calls while their slot is migrating
// with its keys split between two primaries: a script over keys on both nodes (Redis answers
// TRYAGAIN) first, then an INCR of a key already moved (ASK). Sent as one cluster pipeline,
// go-redis v9.23.0 ran the INCR on both nodes at once, and again on each retry: the counter
// ended at 3 or 4, with a data race on its result. Each call must run exactly once, the INCR
// through ASK, and the script must fail alone, with TRYAGAIN.
func TestBatchInSplitSlotRunsEachCommandOnce(t *testing.T) {
	be, ok := redistest.ClusterReshaped(t)
	if !ok {
		if os.Getenv("CI") == "true" {
			t.Fatal("REDIS_CLUSTER_ADDRS is unset under CI=true: .ci/run starts a Redis Cluster (scripts/redis-cluster.sh)")
		}
		t.Skip("REDIS_CLUSTER_ADDRS unset: start a cluster with scripts/redis-cluster.sh start and set REDIS_CLUSTER_ADDRS=$(scripts/redis-cluster.sh addrs)")
	}
	cc := be.Client.(*redis.ClusterClient)
	ctx := context.Background()
	id := redistest.Prefix(t, cc)
	moved, stays := keyPrefix(id)+"moved", keyPrefix(id)+"stays"
	if err := cc.Set(ctx, moved, 0, 0).Err(); err != nil {
		t.Fatal(err)
	}
	if err := cc.Set(ctx, stays, "here", 0).Err(); err != nil {
		t.Fatal(err)
	}
	split := splitSlot(t, cc, moved)

	var (
		script *redis.Cmd
		incr   *redis.IntCmd
	)
	b := &batcher{rdb: cc}
	calls := []*batchCall{
		{ctx: ctx, done: make(chan struct{}), unit: unit{key: stays, add: func(p redis.Pipeliner) {
			script = p.Eval(ctx, "return redis.call('GET', KEYS[2])", []string{moved, stays})
		}}},
		{ctx: ctx, done: make(chan struct{}), unit: unit{key: moved, add: func(p redis.Pipeliner) {
			incr = p.Incr(ctx, moved)
		}}},
	}
	b.flush(calls)

	if err := script.Err(); !redis.HasErrorPrefix(err, "TRYAGAIN") {
		t.Errorf("script over split keys: err %v, want TRYAGAIN", err)
	}
	if n, err := incr.Result(); err != nil || n != 1 {
		t.Errorf("INCR of the moved key answered %d, %v; want 1", n, err)
	}
	if n, err := split.onTarget(ctx, moved); err != nil || n != "1" {
		t.Errorf("moved key on the importing node is %q (%v), want 1: the INCR ran more than once", n, err)
	}
}

// slotSplit is a hash slot left half-migrated: MIGRATING on its owner, IMPORTING on another
// primary, one key moved. Its cleanup deletes that key and makes the slot stable again.
type slotSplit struct {
	slot     int64
	src, dst *redis.Client
	moved    string // the key moved to dst
}

// splitSlot migrates key's slot to another primary as far as moving key alone, the state
// redis-cli --cluster reshard leaves a slot in between two MIGRATE batches.
func splitSlot(t *testing.T, cc *redis.ClusterClient, key string) *slotSplit {
	t.Helper()
	ctx := context.Background()
	slot, err := cc.ClusterKeySlot(ctx, key).Result()
	if err != nil {
		t.Fatal(err)
	}
	owner, err := cc.MasterForKey(ctx, key)
	if err != nil {
		t.Fatal(err)
	}
	admin := func(addr string) *redis.Client {
		c := redis.NewClient(&redis.Options{Addr: addr, Protocol: 2, Password: os.Getenv("REDIS_CLUSTER_PASSWORD")})
		t.Cleanup(func() { _ = c.Close() })
		return c
	}
	s := &slotSplit{slot: slot, src: admin(owner.Options().Addr), moved: key}
	slots, err := cc.ClusterSlots(ctx).Result()
	if err != nil {
		t.Fatal(err)
	}
	var srcID, dstID string
	for _, r := range slots {
		switch p := r.Nodes[0]; {
		case p.Addr == owner.Options().Addr:
			srcID = p.ID
		case s.dst == nil:
			s.dst, dstID = admin(p.Addr), p.ID
		}
	}
	if srcID == "" || s.dst == nil {
		t.Fatalf("want the owner %s and a second primary in CLUSTER SLOTS %v", owner.Options().Addr, slots)
	}
	t.Cleanup(s.heal)
	if err := s.dst.Do(ctx, "CLUSTER", "SETSLOT", slot, "IMPORTING", srcID).Err(); err != nil {
		t.Fatal(err)
	}
	if err := s.src.Do(ctx, "CLUSTER", "SETSLOT", slot, "MIGRATING", dstID).Err(); err != nil {
		t.Fatal(err)
	}
	host, port, _ := strings.Cut(s.dst.Options().Addr, ":")
	args := []any{"MIGRATE", host, port, "", 0, 5000}
	if pw := os.Getenv("REDIS_CLUSTER_PASSWORD"); pw != "" {
		args = append(args, "AUTH", pw)
	}
	if err := s.src.Do(ctx, append(args, "KEYS", key)...).Err(); err != nil {
		t.Fatal(err)
	}
	return s
}

// onTarget reads a moved key on the importing node (which serves it only after ASKING).
func (s *slotSplit) onTarget(ctx context.Context, key string) (string, error) {
	var get *redis.StringCmd
	_, err := s.dst.Pipelined(ctx, func(p redis.Pipeliner) error {
		p.Do(ctx, "ASKING")
		get = p.Get(ctx, key)
		return nil
	})
	if err != nil {
		return "", err
	}
	return get.Val(), nil
}

// heal deletes the moved key from the importing node and leaves the slot stable on its owner.
func (s *slotSplit) heal() {
	ctx := context.Background()
	_, _ = s.dst.Pipelined(ctx, func(p redis.Pipeliner) error {
		p.Do(ctx, "ASKING")
		p.Del(ctx, s.moved)
		return nil
	})
	for _, n := range []*redis.Client{s.dst, s.src} {
		_ = n.Do(ctx, "CLUSTER", "SETSLOT", s.slot, "STABLE").Err()
	}
}

// TestSendUnitsAnswersEachCaller sends units of keys in many hash slots (on a cluster, on
// every primary) in one call: each unit reads its own results, and a command's error (here
// WRONGTYPE) is the call's error without touching the other units' results.
func TestSendUnitsAnswersEachCaller(t *testing.T) {
	for _, be := range redistest.Backends(t) {
		t.Run(be.Name, func(t *testing.T) {
			ctx := context.Background()
			id := redistest.Prefix(t, be.Client)
			const n = 40
			keys := make([]string, n)
			for i := range keys {
				keys[i] = keyPrefix(fmt.Sprintf("%s-%d", id, i)) + "k" // its own hash tag each
				if err := be.Client.Set(ctx, keys[i], i, 0).Err(); err != nil {
					t.Fatal(err)
				}
			}
			p := be.Client.(Pipeliner)
			gets := make([]*redis.StringCmd, n)
			units := make([]unit, n)
			for i := range units {
				units[i] = unit{key: keys[i], add: func(pl redis.Pipeliner) { gets[i] = pl.Get(ctx, keys[i]) }}
			}
			if err := sendUnits(ctx, p, units); err != nil {
				t.Fatal(err)
			}
			for i, g := range gets {
				if v, err := g.Int(); err != nil || v != i {
					t.Fatalf("unit %d read %d, %v; want %d", i, v, err, i)
				}
			}
			var bad *redis.IntCmd
			units = append(units, unit{key: keys[0], add: func(pl redis.Pipeliner) { bad = pl.LLen(ctx, keys[0]) }})
			if err := sendUnits(ctx, p, units); !redis.HasErrorPrefix(err, "WRONGTYPE") || !redis.HasErrorPrefix(bad.Err(), "WRONGTYPE") {
				t.Fatalf("LLEN of a string: sendUnits %v, the command %v; want WRONGTYPE", err, bad.Err())
			}
			for i, g := range gets {
				if v, err := g.Int(); err != nil || v != i {
					t.Fatalf("beside the error, unit %d read %d, %v; want %d", i, v, err, i)
				}
			}
		})
	}
}
