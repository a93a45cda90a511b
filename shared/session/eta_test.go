package session

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/carqueue/carqueue/shared/queue"
	"github.com/carqueue/carqueue/shared/testkit"
)

// paceQueue is a queue whose Stats answer a settable rate and admission counter, and whose
// controls say whether admission is paused.
type paceQueue struct {
	*fakeQueue
	mu       sync.Mutex
	rate     float64
	recent   int64
	admitted int64
	paused   atomic.Bool
}

func newPaceQueue(rate float64, admitted int64) *paceQueue {
	q := &paceQueue{fakeQueue: &fakeQueue{}, rate: rate, recent: 50, admitted: admitted}
	q.fakeQueue.stats = q.readStats
	return q
}

func (q *paceQueue) readStats(context.Context) (queue.Stats, error) {
	q.mu.Lock()
	defer q.mu.Unlock()
	return queue.Stats{AdmissionsPerMinute: q.rate, RecentAdmissions: q.recent, AdmittedTotal: q.admitted}, nil
}

func (q *paceQueue) admit(n int64) {
	q.mu.Lock()
	q.admitted += n
	q.mu.Unlock()
}

func (q *paceQueue) Controls(context.Context) (queue.Controls, error) {
	return queue.Controls{Paused: q.paused.Load()}, nil
}

// etaAt advances the clock by d and returns the ETA of position 3 and perPlace.
func etaAt(t *testing.T, s *Service, clk *testkit.Clock, d time.Duration) (time.Duration, time.Duration) {
	t.Helper()
	clk.Advance(d)
	ctx := context.Background()
	v := s.view(ctx, queue.Status{State: queue.StateQueued, Position: 3, Length: 10})
	return v.ETA, s.perPlace(ctx)
}

// An ETA is position × the average gap between admissions, and perPlace is that gap.
func TestETAIsPositionTimesGap(t *testing.T) {
	clk := testkit.NewClock()
	q := newPaceQueue(30, 100) // one admission every 2 s
	s := newService(t, q, &fakeCAR{}, testOptions(clk.Now))
	if eta, per := etaAt(t, s, clk, 0); eta != 6*time.Second || per != 2*time.Second {
		t.Fatalf("ETA %v, perPlace %v; want 6s and 2s", eta, per)
	}
	q.mu.Lock()
	q.rate = 7 // 8.57 s a place: position 3 is 25.7 s, told as 26
	q.mu.Unlock()
	if eta, per := etaAt(t, s, clk, rateTTL); eta != 26*time.Second || per.Round(time.Millisecond) != 8571*time.Millisecond {
		t.Fatalf("ETA %v, perPlace %v; want 26s and 8.571s", eta, per)
	}
}

// Too few admissions measured: no ETA, and perPlace 0 so the join stores none.
func TestETANoneFromTooFewAdmissions(t *testing.T) {
	clk := testkit.NewClock()
	q := newPaceQueue(30, 2)
	q.recent = MinETAAdmissions - 1
	s := newService(t, q, &fakeCAR{}, testOptions(clk.Now))
	if eta, per := etaAt(t, s, clk, 0); eta != 0 || per != 0 {
		t.Fatalf("from %d admissions: ETA %v, perPlace %v; want none", q.recent, eta, per)
	}
	q.mu.Lock()
	q.recent, q.admitted = MinETAAdmissions, 3
	q.mu.Unlock()
	if eta, _ := etaAt(t, s, clk, rateTTL); eta != 6*time.Second {
		t.Fatalf("from %d admissions: ETA %v, want 6s", MinETAAdmissions, eta)
	}
}

// When admission stops moving for longer than StallMin (fast queues), the window's rate still
// remembers the earlier admissions; no ETA is told until one is seen again.
func TestETAWithheldWhenAdmissionStalls(t *testing.T) {
	clk := testkit.NewClock()
	q := newPaceQueue(30, 100) // a gap of 2 s: the stall limit is StallMin
	s := newService(t, q, &fakeCAR{}, testOptions(clk.Now))
	if eta, _ := etaAt(t, s, clk, 0); eta != 6*time.Second {
		t.Fatalf("ETA %v, want 6s", eta)
	}
	// Nothing admitted for StallMin, read every rateTTL: still told (the first read counts as
	// the last movement of a fresh instance).
	for el := rateTTL; el <= StallMin; el += rateTTL {
		if eta, _ := etaAt(t, s, clk, rateTTL); eta != 6*time.Second {
			t.Fatalf("%v without an admission: ETA %v, want 6s", el, eta)
		}
	}
	if eta, per := etaAt(t, s, clk, time.Second); eta != 0 || per != 0 {
		t.Fatalf("%v without an admission: ETA %v, perPlace %v; want none", StallMin+time.Second, eta, per)
	}
	// Still nothing after the next read.
	if eta, _ := etaAt(t, s, clk, rateTTL); eta != 0 {
		t.Fatalf("still stalled: ETA %v, want none", eta)
	}
	// An admission, seen at the next refresh: told again.
	q.admit(1)
	if eta, _ := etaAt(t, s, clk, 0); eta != 0 {
		t.Fatalf("before the cache refreshes: ETA %v, want none", eta)
	}
	if eta, per := etaAt(t, s, clk, rateTTL); eta != 6*time.Second || per != 2*time.Second {
		t.Fatalf("after an admission: ETA %v, perPlace %v; want 6s and 2s", eta, per)
	}
}

// A slow queue (long gaps) is judged by StallGaps gaps, not StallMin.
func TestETAStallLimitFollowsTheGap(t *testing.T) {
	clk := testkit.NewClock()
	q := newPaceQueue(0.5, 100) // one admission every 2 min: limit StallGaps × 2 min = 8 min
	s := newService(t, q, &fakeCAR{}, testOptions(clk.Now))
	if eta, per := etaAt(t, s, clk, 0); eta != 6*time.Minute || per != 2*time.Minute {
		t.Fatalf("ETA %v, perPlace %v; want 6m and 2m", eta, per)
	}
	if eta, _ := etaAt(t, s, clk, 8*time.Minute); eta != 6*time.Minute {
		t.Fatalf("8 min without an admission: ETA %v, want 6m", eta)
	}
	if eta, _ := etaAt(t, s, clk, time.Second); eta != 0 {
		t.Fatalf("8 min 1 s without an admission: ETA %v, want none", eta)
	}
	// Admissions keep coming (each read sees the counter grow): told throughout.
	q.admit(1)
	for i := 0; i < 20; i++ {
		q.admit(1)
		if eta, _ := etaAt(t, s, clk, 2*time.Minute); eta != 6*time.Minute {
			t.Fatalf("read %d with admissions: ETA %v, want 6m", i, eta)
		}
	}
}

// While the operator has paused admission no place moves: no ETA, none stored at a join; at
// resume the ETA comes back at once.
func TestETAWithheldWhilePaused(t *testing.T) {
	clk := testkit.NewClock()
	q := newPaceQueue(30, 100)
	s := newService(t, q, &fakeCAR{}, testOptions(clk.Now))
	q.paused.Store(true)
	if eta, per := etaAt(t, s, clk, 0); eta != 0 || per != 0 {
		t.Fatalf("paused: ETA %v, perPlace %v; want none", eta, per)
	}
	q.paused.Store(false)
	if eta, _ := etaAt(t, s, clk, controlsTTL); eta != 6*time.Second {
		t.Fatalf("resumed: ETA %v, want 6s", eta)
	}
}

// The stall judgement reads the admission counter from the same Stats call as the rate: one
// call per rateTTL, whatever the number of polls.
func TestETAOneStatsReadPerTTL(t *testing.T) {
	clk := testkit.NewClock()
	q := newPaceQueue(30, 100)
	var calls atomic.Int64
	q.fakeQueue.stats = func(ctx context.Context) (queue.Stats, error) {
		calls.Add(1)
		return q.readStats(ctx)
	}
	s := newService(t, q, &fakeCAR{}, testOptions(clk.Now))
	for i := 0; i < 100; i++ {
		etaAt(t, s, clk, 10*time.Millisecond) // 1 s of polls
	}
	if n := calls.Load(); n != 1 {
		t.Fatalf("%d Stats calls for 100 polls within rateTTL, want 1", n)
	}
}
