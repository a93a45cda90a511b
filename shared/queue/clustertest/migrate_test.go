package clustertest

import (
	"context"
	"testing"
	"time"

	"github.com/carqueue/carqueue/shared/queue"
	"github.com/carqueue/carqueue/shared/redistest"
)

func newQueue(t *testing.T, c *cluster) (*queue.Queue, string) {
	t.Helper()
	id := redistest.Prefix(t, c.client)
	q, err := queue.New(c.client, queue.Options{
		QueueID: id, Capacity: 4, QueueIdleTimeout: 10 * time.Minute, HeartbeatTimeout: 10 * time.Minute,
		ReadyTimeout: 10 * time.Minute, ClaimLease: 10 * time.Minute, GoneRetention: 10 * time.Minute,
		RateWindow: 5 * time.Minute,
	})
	if err != nil {
		t.Fatal(err)
	}
	return q, id
}

// TestSlotMigrationLosesNobody moves the queue's hash slot around all three primaries (and
// home again) while users join, poll, get claimed, stop and are released. The cluster client
// follows ASK while the slot is migrating and MOVED after, and retries the TRYAGAIN a script
// gets while its keys are split between two nodes; no user is lost and the queue's invariants
// hold.
func TestSlotMigrationLosesNobody(t *testing.T) {
	c := needCluster(t)
	ctx := context.Background()
	q, id := newQueue(t, c)
	slot := c.slotOf(ctx, id)
	home, err := c.owner(ctx, slot)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.restoreSlot(slot, home) })
	ps, err := c.primaries(ctx)
	if err != nil || len(ps) < 2 {
		t.Fatalf("want at least 2 primaries, got %d (%v)", len(ps), err)
	}
	// home → each other primary in turn → home.
	hops := []nodeInfo{}
	for _, p := range ps {
		if p.ID != home.ID {
			hops = append(hops, p)
		}
	}
	hops = append(hops, home)

	w := newWorkload(t, q, 150)
	moves := 0
	w.run(ctx, func(ctx context.Context) error {
		from := home
		for _, to := range hops {
			// The workload meets the slot in each state: migrating, keys split, moved.
			pause := func() { time.Sleep(50 * time.Millisecond) }
			if err := c.migrate(ctx, slot, from, to, pause); err != nil {
				return err
			}
			moves++
			time.Sleep(100 * time.Millisecond)
			from = to
		}
		return nil
	})
	if now, err := c.owner(ctx, slot); err != nil || now.ID != home.ID || moves != len(hops) {
		t.Fatalf("slot %d: %d moves, now on %s (%v), want back on %s", slot, moves, now.Addr, err, home.Addr)
	}
	t.Logf("slot %d moved %d times: %s → … → %s", slot, moves, home.Addr, home.Addr)
	w.verify(ctx)
}
