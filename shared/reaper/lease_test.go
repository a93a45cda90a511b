package reaper

import (
	"context"
	"testing"
	"time"

	"github.com/carqueue/carqueue/shared/redistest"
)

func TestLease(t *testing.T) {
	for _, b := range redistest.Backends(t) {
		t.Run(b.Name, func(t *testing.T) {
			ctx := context.Background()
			key := leaseKey(redistest.Prefix(t, b.Client))
			now := time.Unix(1_800_000_000, 0)

			v1, ok, err := acquire(ctx, b.Client, key, now, 50*time.Second)
			if err != nil || !ok {
				t.Fatalf("first acquire: ok=%v err=%v", ok, err)
			}
			if _, ok, err := acquire(ctx, b.Client, key, now.Add(49*time.Second), 50*time.Second); err != nil || ok {
				t.Fatalf("second acquire inside the lease: ok=%v err=%v, want refused", ok, err)
			}
			// The holder died: by the clock the lease is over, so the next run takes it even
			// though Redis' own TTL (real time) has not run out.
			v2, ok, err := acquire(ctx, b.Client, key, now.Add(51*time.Second), 50*time.Second)
			if err != nil || !ok {
				t.Fatalf("acquire after expiry: ok=%v err=%v", ok, err)
			}
			// The old holder's release must not free the new holder's lease.
			if err := release(ctx, b.Client, key, v1); err != nil {
				t.Fatal(err)
			}
			if got := b.Client.Get(ctx, key).Val(); got != v2 {
				t.Fatalf("lease value after stale release = %q, want %q", got, v2)
			}
			if err := release(ctx, b.Client, key, v2); err != nil {
				t.Fatal(err)
			}
			if n := b.Client.Exists(ctx, key).Val(); n != 0 {
				t.Fatalf("lease still present after release")
			}
			if pttl := func() time.Duration {
				_, _, _ = acquire(ctx, b.Client, key, now, 50*time.Second)
				return b.Client.PTTL(ctx, key).Val()
			}(); pttl <= 0 || pttl > 50*time.Second {
				t.Fatalf("lease PTTL = %v, want (0, 50s]", pttl)
			}
		})
	}
}

func TestLeaseKeySharesQueueHashTag(t *testing.T) {
	if got := leaseKey("q1"); got != "cq:{q1}:reaper" {
		t.Fatalf("leaseKey = %q", got)
	}
}
