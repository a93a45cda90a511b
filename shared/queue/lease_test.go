package queue

import (
	"sync"
	"testing"
	"time"

	"github.com/carqueue/carqueue/shared/redistest"
	"github.com/carqueue/carqueue/shared/testkit"
)

func TestLease(t *testing.T) {
	for _, b := range redistest.Backends(t) {
		t.Run(b.Name, func(t *testing.T) {
			clk := testkit.NewClock()
			o := testOptions(1)
			o.QueueID, o.Now = redistest.Prefix(t, b.Client), clk.Now
			q := must[*Queue](t)(New(b.Client, o))
			key := q.keys[kReaper]
			const ttl = 50 * time.Second

			l1, ok, err := q.TakeLease(bg, ttl)
			if err != nil || !ok {
				t.Fatalf("first take: ok=%v err=%v", ok, err)
			}
			clk.Advance(49 * time.Second)
			if _, ok, err := q.TakeLease(bg, ttl); err != nil || ok {
				t.Fatalf("second take inside the lease: ok=%v err=%v, want refused", ok, err)
			}
			// The holder died: by the queue's clock the lease is over, so the next run takes it
			// even though Redis' own TTL (real time) has not run out.
			clk.Advance(2 * time.Second)
			l2, ok, err := q.TakeLease(bg, ttl)
			if err != nil || !ok {
				t.Fatalf("take after expiry: ok=%v err=%v", ok, err)
			}
			// The old holder's release must not free the new holder's lease.
			noErr(t, l1.Release(bg))
			if got := b.Client.Get(bg, key).Val(); got != l2.value {
				t.Fatalf("lease value after stale release = %q, want %q", got, l2.value)
			}
			if _, ok, _ := q.TakeLease(bg, ttl); ok {
				t.Fatal("lease taken while the new holder has it")
			}
			noErr(t, l2.Release(bg))
			if n := b.Client.Exists(bg, key).Val(); n != 0 {
				t.Fatalf("lease still present after release")
			}
			noErr(t, l2.Release(bg)) // twice is fine
			// Redis drops an abandoned lease by itself.
			must[*Lease](t)(func() (*Lease, error) { l, _, err := q.TakeLease(bg, ttl); return l, err }())
			if pttl := b.Client.PTTL(bg, key).Val(); pttl <= 0 || pttl > ttl {
				t.Fatalf("lease PTTL = %v, want (0, %v]", pttl, ttl)
			}
		})
	}
}

// TestLeaseIsExclusive: of many runs taking the lease at once, exactly one gets it.
func TestLeaseIsExclusive(t *testing.T) {
	forBackends(t, testOptions(1), func(t *testing.T, q *Queue, clk *testkit.Clock) {
		var (
			wg  sync.WaitGroup
			mu  sync.Mutex
			got int
		)
		for range 32 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				_, ok, err := q.TakeLease(bg, time.Minute)
				if err != nil {
					t.Error(err)
				}
				if ok {
					mu.Lock()
					got++
					mu.Unlock()
				}
			}()
		}
		wg.Wait()
		if got != 1 {
			t.Fatalf("%d runs took the lease, want 1", got)
		}
	})
}

func TestKeysShareTheQueueHashTag(t *testing.T) {
	keys := queueKeys("q1")
	if keys[kReaper] != "cq:{q1}:reaper" {
		t.Fatalf("lease key = %q", keys[kReaper])
	}
	if got := lockKey("q1", "u1"); got != "cq:{q1}:lock:u1" {
		t.Fatalf("lock key = %q", got)
	}
	for _, k := range keys {
		if k[:len("cq:{q1}:")] != "cq:{q1}:" {
			t.Fatalf("key %q outside the hash tag", k)
		}
	}
}
