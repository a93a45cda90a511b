package session

import (
	"context"
	"errors"
	"math"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/carqueue/carqueue/shared/queue"
	"github.com/carqueue/carqueue/shared/testkit"
)

// blockingStats is a Stats whose calls are counted and, while armed, block until released.
type blockingStats struct {
	calls   atomic.Int64
	mu      sync.Mutex
	rate    float64
	err     error
	gate    chan struct{} // nil: answer at once
	entered chan struct{} // told when a call waits at the gate
}

func (b *blockingStats) Stats(ctx context.Context) (queue.Stats, error) {
	b.calls.Add(1)
	b.mu.Lock()
	gate, entered, rate, err := b.gate, b.entered, b.rate, b.err
	b.mu.Unlock()
	if gate != nil {
		entered <- struct{}{}
		<-gate
	}
	return queue.Stats{AdmissionsPerMinute: rate, RecentAdmissions: MinETAAdmissions}, err
}

// arm makes the next calls block until the returned release is called, and answer rate.
func (b *blockingStats) arm(rate float64) (entered <-chan struct{}, release func()) {
	b.mu.Lock()
	defer b.mu.Unlock()
	gate, ent := make(chan struct{}), make(chan struct{}, 100)
	b.gate, b.entered, b.rate = gate, ent, rate
	return ent, func() {
		b.mu.Lock()
		b.gate = nil
		b.mu.Unlock()
		close(gate)
	}
}

func (b *blockingStats) set(rate float64, err error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.rate, b.err = rate, err
}

// The rate cache is filled by one caller at a time: when it is stale, a burst of views runs
// Stats once, and the other callers answer at once with the stale rate.
func TestRateCacheFilledByOneCallerAtATime(t *testing.T) {
	clk := testkit.NewClock()
	bs := &blockingStats{rate: 30}
	s := newService(t, &fakeQueue{stats: bs.Stats}, &fakeCAR{}, testOptions(clk.Now))
	ctx := context.Background()
	queued := queue.Status{State: queue.StateQueued, Position: 3, Length: 10}

	// 30 admissions a minute, position 3: 6 s.
	if v := s.view(ctx, queued); v.ETA != 6*time.Second || bs.calls.Load() != 1 {
		t.Fatalf("first view: ETA %v after %d Stats calls, want 6s after 1", v.ETA, bs.calls.Load())
	}
	if v := s.view(ctx, queued); v.ETA != 6*time.Second || bs.calls.Load() != 1 {
		t.Fatalf("fresh cache: ETA %v after %d Stats calls, want 6s and no new call", v.ETA, bs.calls.Load())
	}

	clk.Advance(rateTTL)
	bs.calls.Store(0)
	entered, release := bs.arm(60)
	const n = 50
	etas := make(chan time.Duration, n)
	var wg sync.WaitGroup
	for range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			etas <- s.view(ctx, queued).ETA
		}()
	}
	timeout := time.NewTimer(10 * time.Second) // a bound on a failure, never waited out when passing
	defer timeout.Stop()
	select {
	case <-entered:
	case <-timeout.C:
		t.Fatal("no caller refreshed the stale rate")
	}
	// The refresher is blocked in Stats; everyone else must answer without waiting for it.
	for i := range n - 1 {
		select {
		case eta := <-etas:
			if eta != 6*time.Second {
				t.Errorf("caller %d during the refresh: ETA %v, want the stale 6s", i, eta)
			}
		case <-timeout.C:
			release()
			wg.Wait()
			t.Fatalf("only %d of %d callers answered while the rate was being refreshed (%d Stats calls)", i, n-1, bs.calls.Load())
		}
	}
	if c := bs.calls.Load(); c != 1 {
		t.Errorf("%d Stats calls while the cache was refreshed, want 1", c)
	}
	release()
	wg.Wait()
	if eta := <-etas; eta != 3*time.Second {
		t.Errorf("the refresher: ETA %v, want 3s from the new rate", eta)
	}
	if v := s.view(ctx, queued); v.ETA != 3*time.Second || bs.calls.Load() != 1 {
		t.Errorf("after the refresh: ETA %v after %d Stats calls, want 3s and no new call", v.ETA, bs.calls.Load())
	}
}

// A failed read keeps the last known rate and is retried by the next caller.
func TestRateCacheKeepsLastRateOnError(t *testing.T) {
	clk := testkit.NewClock()
	bs := &blockingStats{}
	s := newService(t, &fakeQueue{stats: bs.Stats}, &fakeCAR{}, testOptions(clk.Now))
	ctx := context.Background()
	queued := queue.Status{State: queue.StateQueued, Position: 2, Length: 2}

	bs.set(0, errors.New("redis down"))
	if v := s.view(ctx, queued); v.ETA != 0 {
		t.Fatalf("no rate known: ETA %v, want 0", v.ETA)
	}
	bs.set(0, nil) // measured, but nothing admitted yet
	if v := s.view(ctx, queued); v.ETA != 0 || bs.calls.Load() != 2 {
		t.Fatalf("after a failed read: ETA %v after %d calls, want 0 after a retry", v.ETA, bs.calls.Load())
	}
	clk.Advance(rateTTL)
	bs.set(40, nil)
	if v := s.view(ctx, queued); v.ETA != 3*time.Second { // ceil(2·60/40)
		t.Fatalf("ETA %v, want 3s", v.ETA)
	}
	clk.Advance(rateTTL)
	bs.set(0, errors.New("redis down"))
	if v := s.view(ctx, queued); v.ETA != 3*time.Second {
		t.Fatalf("read failed: ETA %v, want the last known 3s", v.ETA)
	}
	bs.set(120, nil)
	if v := s.view(ctx, queued); v.ETA != time.Second || bs.calls.Load() != 5 {
		t.Fatalf("ETA %v after %d calls, want 1s after a retry right away", v.ETA, bs.calls.Load())
	}
}

func TestNextPoll(t *testing.T) {
	var jitter float64
	o := testOptions(nil)
	o.PollMin, o.PollMax = time.Second, 30*time.Second
	o.Jitter = func() float64 { return jitter }
	s := newService(t, &fakeQueue{}, &fakeCAR{}, o)
	for _, tt := range []struct {
		position int64
		base     time.Duration // PollMin × √position, capped at PollMax
	}{
		{-3, time.Second}, {0, time.Second}, {1, time.Second}, {2, 1414 * time.Millisecond},
		{4, 2 * time.Second}, {100, 10 * time.Second}, {899, 29983 * time.Millisecond},
		{900, 30 * time.Second}, {901, 30 * time.Second}, {1_000_000, 30 * time.Second}, {math.MaxInt64, 30 * time.Second},
	} {
		for _, j := range []float64{0, 0.25, 0.5, 0.999999} {
			jitter = j
			got := s.nextPoll(tt.position)
			want := time.Duration(float64(tt.base.Milliseconds())*(0.8+0.4*j)) * time.Millisecond
			if d := got - want; d < -time.Millisecond || d > time.Millisecond {
				t.Errorf("nextPoll(%d) with jitter %v = %v, want %v", tt.position, j, got, want)
			}
			if lo, hi := tt.base*8/10, tt.base*12/10; got < lo-time.Millisecond || got > hi {
				t.Errorf("nextPoll(%d) = %v outside ±20%% of %v", tt.position, got, tt.base)
			}
		}
	}

	// The default jitter spreads clients over the whole band, never outside it.
	s = newService(t, &fakeQueue{}, &fakeCAR{}, Options{LockTTL: 2, CARBudget: 1, HeartbeatInterval: 1, HeartbeatTimeout: 1,
		PollMin: time.Second, PollMax: 30 * time.Second, StopWait: 1, ReleaseRetryMin: 1, ReleaseRetryMax: 1, Logger: quietLogger()})
	seen := map[time.Duration]bool{}
	for range 1000 {
		d := s.nextPoll(100)
		if d < 8*time.Second || d >= 12*time.Second {
			t.Fatalf("nextPoll(100) = %v, want in [8s, 12s)", d)
		}
		seen[d] = true
	}
	if len(seen) < 100 {
		t.Errorf("default jitter gave only %d distinct values in 1000 draws", len(seen))
	}

	// Tiny intervals never round to 0.
	o.PollMin, o.PollMax, jitter = time.Microsecond, time.Microsecond, 0
	if d := newService(t, &fakeQueue{}, &fakeCAR{}, o).nextPoll(1); d != time.Millisecond {
		t.Errorf("nextPoll with a 1µs PollMin = %v, want 1ms", d)
	}
}

func TestViewByState(t *testing.T) {
	clk := testkit.NewClock()
	bs := &blockingStats{rate: 0}
	o := testOptions(clk.Now)
	o.Jitter = func() float64 { return 0.5 } // no jitter: ×1
	s := newService(t, &fakeQueue{stats: bs.Stats}, &fakeCAR{}, o)
	ctx := context.Background()
	tests := []struct {
		st   queue.Status
		want View
	}{
		{queue.Status{State: queue.StateQueued, Position: 4, Length: 9}, View{Status: StatusQueued, Position: 4, Length: 9, NextPoll: 2 * time.Second}},
		{queue.Status{State: queue.StateAdmitting}, View{Status: StatusAdmitting, NextPoll: time.Second}},
		{queue.Status{State: queue.StateReady, ServerSession: "ss"}, View{Status: StatusReady, ServerSession: "ss", NextHeartbeat: 15 * time.Second, ReconnectWindow: 60 * time.Second}},
		{queue.Status{State: queue.StateActive, ServerSession: "ss"}, View{Status: StatusReady, ServerSession: "ss", NextHeartbeat: 15 * time.Second, ReconnectWindow: 60 * time.Second}},
		{queue.Status{State: queue.StateReleasing}, View{Status: StatusExpired}},
		{queue.Status{State: queue.StateNone, Reason: queue.ReasonIdle}, View{Status: StatusExpired, Reason: queue.ReasonIdle}},
		{queue.Status{}, View{Status: StatusExpired}},
	}
	for _, tt := range tests {
		if got := s.view(ctx, tt.st); got != tt.want {
			t.Errorf("view(%+v) = %+v, want %+v", tt.st, got, tt.want)
		}
	}
	// ETA rounds up to whole seconds.
	clk.Advance(rateTTL)
	bs.set(7, nil)
	if v := s.view(ctx, queue.Status{State: queue.StateQueued, Position: 1, Length: 1}); v.ETA != 9*time.Second { // 60/7 = 8.57
		t.Errorf("ETA %v, want 9s", v.ETA)
	}
}

// TestNoETAFromTooFewAdmissions: the rate of one or two admissions gives no ETA.
func TestNoETAFromTooFewAdmissions(t *testing.T) {
	for _, n := range []int64{1, MinETAAdmissions - 1, MinETAAdmissions} {
		got := rateOf(queue.Stats{AdmissionsPerMinute: 30, RecentAdmissions: n})
		if (n >= MinETAAdmissions) != (got == 30) {
			t.Fatalf("%d admissions: rate %v", n, got)
		}
	}
}
