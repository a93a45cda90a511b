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
			if got, want := b.Client.Get(bg, key).Val(), leaseValue(l2.expiry, l2.token); got != want {
				t.Fatalf("lease value after stale release = %q, want %q", got, want)
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

// TestLeaseExtend: the holder keeps its lease by extending it; Extend refuses a lease taken
// over, gone (a Redis restart) or run out by the queue's clock, and then the lease is lost for
// good, so a holder that was cut off can never carry on as if it still held it.
func TestLeaseExtend(t *testing.T) {
	for _, b := range redistest.Backends(t) {
		t.Run(b.Name, func(t *testing.T) {
			clk := testkit.NewClock()
			o := testOptions(1)
			o.QueueID, o.Now = redistest.Prefix(t, b.Client), clk.Now
			q := must[*Queue](t)(New(b.Client, o))
			key := q.keys[kReaper]
			const ttl = 6 * time.Second
			take := func() (*Lease, bool) {
				t.Helper()
				l, ok, err := q.TakeLease(bg, ttl)
				noErr(t, err)
				return l, ok
			}
			extend := func(l *Lease) bool {
				t.Helper()
				ok, err := l.Extend(bg, ttl)
				noErr(t, err)
				return ok
			}

			l1, ok := take()
			if !ok || !l1.Held() {
				t.Fatalf("first take: ok=%v held=%v", ok, l1.Held())
			}
			// Extended every third of its ttl, the lease outlives its first ttl many times over.
			for i := range 9 {
				clk.Advance(ttl / 3)
				if !extend(l1) || !l1.Held() {
					t.Fatalf("extension %d refused", i+1)
				}
				if _, ok := take(); ok {
					t.Fatalf("lease taken from a holder that keeps extending it (after %v)", time.Duration(i+1)*ttl/3)
				}
			}
			if pttl := b.Client.PTTL(bg, key).Val(); pttl <= ttl-time.Second || pttl > ttl {
				t.Fatalf("PTTL after an extension = %v, want about %v", pttl, ttl)
			}
			// Not extended in time, it runs out by the queue's clock, and another run takes it:
			// the old holder's Extend refuses (the token is not its own) and leaves the new
			// holder's lease as it is.
			clk.Advance(ttl)
			if l1.Held() {
				t.Fatal("Held after the lease ran out")
			}
			l2, ok := take()
			if !ok {
				t.Fatal("take after the lease ran out refused")
			}
			if extend(l1) || l1.Held() {
				t.Fatal("Extend accepted a lease taken over")
			}
			if got, want := b.Client.Get(bg, key).Val(), leaseValue(l2.expiry, l2.token); got != want {
				t.Fatalf("lease value after a refused Extend = %q, want the new holder's %q", got, want)
			}
			// Run out and not taken (yet): Extend refuses all the same, by the queue's clock,
			// although Redis' own TTL (real time) has not run out: another run may be starting.
			clk.Advance(ttl / 3)
			if !extend(l2) {
				t.Fatal("the new holder's Extend refused")
			}
			clk.Advance(ttl)
			before := b.Client.Get(bg, key).Val()
			if extend(l2) || l2.Held() {
				t.Fatal("Extend revived a lease that had run out")
			}
			if got := b.Client.Get(bg, key).Val(); got != before {
				t.Fatalf("a refused Extend changed the lease from %q to %q", before, got)
			}
			// Gone (Redis restarted, the key lost): Extend refuses and recreates nothing.
			l3, ok := take()
			if !ok {
				t.Fatal("take after the second lease ran out refused")
			}
			noErr(t, b.Client.Del(bg, key).Err())
			if extend(l3) || l3.Held() {
				t.Fatal("Extend accepted a lease whose key is gone")
			}
			if n := b.Client.Exists(bg, key).Val(); n != 0 {
				t.Fatal("a refused Extend recreated the lease")
			}
			// Once lost, lost for good, even if the key came back with the same token: Redis is
			// not even asked.
			stale := leaseValue(q.nowMS()+ms(ttl), l3.token)
			noErr(t, b.Client.Set(bg, key, stale, 0).Err())
			if ok, err := l3.Extend(bg, ttl); err != nil || ok || l3.Held() {
				t.Fatalf("a lost lease extended again: ok=%v err=%v", ok, err)
			}
			if got := b.Client.Get(bg, key).Val(); got != stale {
				t.Fatalf("a lost lease's Extend changed the key to %q", got)
			}
			if _, err := l1.Extend(bg, 0); err == nil {
				t.Fatal("Extend with ttl 0: no error")
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
	if got := lockKey("", "q1", "u1"); got != "cq:{q1}:lock:u1" {
		t.Fatalf("lock key = %q", got)
	}
	if got := lockKey("d", "q1", "u1"); got != "cq:lock:d:{u1}" {
		t.Fatalf("lock key of a lock space = %q", got)
	}
	for _, k := range keys {
		if k[:len("cq:{q1}:")] != "cq:{q1}:" {
			t.Fatalf("key %q outside the hash tag", k)
		}
	}
}
