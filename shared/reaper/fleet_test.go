package reaper

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/carqueue/carqueue/local/caremu"
	"github.com/carqueue/carqueue/local/caremu/caremutest"
	"github.com/carqueue/carqueue/shared/car"
	"github.com/carqueue/carqueue/shared/queue"
	"github.com/carqueue/carqueue/shared/redistest"
	"github.com/carqueue/carqueue/shared/session"
	"github.com/carqueue/carqueue/shared/testkit"
)

// fleetEnv is n queues of capacity 1 on one backend, in front of one emulated CAR, each with
// its session service and a one-pass reaper, and a Fleet over them.
type fleetEnv struct {
	t      testing.TB
	clk    *testkit.Clock
	emu    *caremu.Emulator
	car    *countingCAR
	queues []*queue.Queue
	svcs   []*session.Service
	member []Member
	rdb    queue.Pipeliner
}

func newFleetEnv(t testing.TB, b redistest.Backend, n int) *fleetEnv {
	t.Helper()
	clk := testkit.NewClock()
	emu, srv := caremutest.Server(t, caremu.Options{Slots: 2 * n, Now: clk.Now})
	e := &fleetEnv{t: t, clk: clk, emu: emu, car: &countingCAR{next: caremutest.Client(t, srv, car.Config{})}, rdb: b.Client}
	prefix := redistest.Prefix(t, b.Client)
	for i := range n {
		id := fmt.Sprintf("%s-%03d", prefix, i)
		base := &env{t: t, id: id, clk: clk, capacity: 1}
		q := base.newQueue(b.Client)
		s := base.newSessions(q, e.car)
		e.queues = append(e.queues, q)
		e.svcs = append(e.svcs, s)
		e.member = append(e.member, Member{ID: id, Reaper: base.newReaper(q, s, nil)})
	}
	return e
}

func (e *fleetEnv) fleet(parallel int) *Fleet {
	e.t.Helper()
	probe := func(ctx context.Context) ([]queue.Work, error) { return queue.Due(ctx, e.rdb, e.queues, time.Minute) }
	f, err := NewFleet(e.member, probe, FleetOptions{Parallel: parallel, Logger: quiet()})
	if err != nil {
		e.t.Fatal(err)
	}
	return f
}

func (e *fleetEnv) join(i int, user string) {
	e.t.Helper()
	if _, err := e.queues[i].Join(context.Background(), user, queue.Client{IP: "10.0.0.1", Session: "cs-" + user}, queue.Trusted); err != nil {
		e.t.Fatal(err)
	}
}

func TestFleetWorksOnlyTheQueuesWithUsers(t *testing.T) {
	for _, b := range redistest.Backends(t) {
		t.Run(b.Name, func(t *testing.T) {
			e := newFleetEnv(t, b, 20)
			e.join(3, "u3")
			e.join(7, "u7a")
			e.join(7, "u7b") // capacity 1: waits
			rep, err := e.fleet(4).Run(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			if rep.Probed != 20 || rep.Busy != 2 || len(rep.Runs) != 2 {
				t.Fatalf("report: probed %d, busy %d, runs %v", rep.Probed, rep.Busy, rep.Runs)
			}
			if r := rep.Runs[e.member[3].ID]; r.Admitted != 1 {
				t.Fatalf("queue 3's run admitted %d", r.Admitted)
			}
			if r := rep.Runs[e.member[7].ID]; r.Admitted != 1 {
				t.Fatalf("queue 7's run admitted %d", r.Admitted)
			}
			if got := e.emu.State().Sessions; strings.Join(got, ",") != "u3,u7a" {
				t.Fatalf("CAR sessions %v", got)
			}
			if n := e.car.count("ApplyConcurrent"); n != 2 {
				t.Fatalf("%d ApplyConcurrent calls, want 2", n)
			}
		})
	}
}

func TestFleetStartsAtAnotherQueueEachTime(t *testing.T) {
	b := redistest.Embedded(t)
	e := newFleetEnv(t, b, 10)
	f := e.fleet(1) // one queue at a time: the order is the rotation's
	first := map[string]int{}
	for round := range 10 {
		// Queues 3 and 7 each get a user; whoever is served first admits first.
		u3, u7 := fmt.Sprintf("r%d-3", round), fmt.Sprintf("r%d-7", round)
		e.join(3, u3)
		e.join(7, u7)
		before := len(e.car.order())
		if _, err := f.Run(context.Background()); err != nil {
			t.Fatal(err)
		}
		order := e.car.order()[before:]
		if len(order) < 2 {
			t.Fatalf("round %d: CAR saw %v", round, order)
		}
		first[order[0][strings.LastIndex(order[0], "-")+1:]]++ // the queue: 3 or 7
		for _, q := range []int{3, 7} {                        // leave the slots free for the next round
			if _, err := e.svcs[q].Stop(context.Background(), map[int]string{3: u3, 7: u7}[q], queue.Trusted); err != nil {
				t.Fatal(err)
			}
		}
		e.clk.Advance(3 * time.Second) // the emulator's clean-up
	}
	if len(first) != 2 {
		t.Fatalf("the same queue was served first every time: %v", first)
	}
}

func TestFleetErrorsNameTheirQueue(t *testing.T) {
	b := redistest.Embedded(t)
	e := newFleetEnv(t, b, 2)
	boom := errors.New("probe down")
	f, err := NewFleet(e.member, func(context.Context) ([]queue.Work, error) { return nil, boom }, FleetOptions{Parallel: 1, Logger: quiet()})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.Run(context.Background()); !errors.Is(err, boom) {
		t.Fatalf("probe error: %v", err)
	}
	// A Capacity-0 queue whose CAR Total cannot be read: the error names the queue, the other
	// queue's work stands.
	e.member[0].SyncCARTotal = func(context.Context) error { return errors.New("CAR down") }
	f, _ = NewFleet(e.member, func(context.Context) ([]queue.Work, error) {
		return []queue.Work{{CARTotal: true}, {Users: true}}, nil
	}, FleetOptions{Parallel: 2, Logger: quiet()})
	e.join(1, "u1")
	rep, err := f.Run(context.Background())
	if err == nil || !strings.Contains(err.Error(), "queue "+e.member[0].ID+": CAR down") {
		t.Fatalf("err %v", err)
	}
	if rep.Runs[e.member[1].ID].Admitted != 1 {
		t.Fatalf("queue 1 was not worked: %+v", rep.Runs)
	}
	for _, bad := range []struct {
		m []Member
		p Probe
		o FleetOptions
	}{{nil, f.probe, FleetOptions{Parallel: 1}}, {e.member, nil, FleetOptions{Parallel: 1}}, {e.member, f.probe, FleetOptions{}}, {[]Member{{ID: "x"}}, f.probe, FleetOptions{Parallel: 1}}} {
		if _, err := NewFleet(bad.m, bad.p, bad.o); err == nil {
			t.Fatalf("NewFleet accepted %+v", bad)
		}
	}
}

// TestFleetDeliversRecordsOfIdleQueues: a queue nobody is in any more still gets its records
// to the webhook, and a failing delivery does not fail the invocation.
func TestFleetDeliversRecordsOfIdleQueues(t *testing.T) {
	for _, b := range redistest.Backends(t) {
		t.Run(b.Name, func(t *testing.T) {
			e := newFleetEnv(t, b, 3)
			var mu sync.Mutex // deliveries of different queues run at once
			calls := map[string]int{}
			for i := range e.member {
				id := e.member[i].ID
				e.member[i].Deliver = func(ctx context.Context) (int, error) {
					mu.Lock()
					defer mu.Unlock()
					calls[id]++
					if id == e.member[2].ID {
						return 0, errors.New("endpoint down")
					}
					return 1, nil
				}
			}
			// Delivery is due only for a queue whose Options.Deliver says a webhook reads it.
			for _, q := range e.queues {
				o := q.Options()
				o.Deliver = true
				nq, err := queue.New(b.Client, o)
				if err != nil {
					t.Fatal(err)
				}
				*q = *nq
			}
			ctx := context.Background()
			for _, i := range []int{0, 2} {
				e.join(i, "gone")
				if _, err := e.queues[i].Stop(ctx, "gone", queue.Trusted); err != nil {
					t.Fatal(err)
				}
			}
			rep, err := e.fleet(2).Run(ctx)
			if err != nil {
				t.Fatalf("a failing delivery failed the invocation: %v", err)
			}
			if calls[e.member[0].ID] != 1 || calls[e.member[1].ID] != 0 || calls[e.member[2].ID] != 1 ||
				rep.Delivered != 1 || rep.DeliveryFailures != 1 {
				t.Fatalf("deliveries %v, report %+v", calls, rep)
			}
		})
	}
}

// leaseSpy tells when its queue's reaper run starts (it takes the lease first).
type leaseSpy struct {
	*queue.Queue
	started chan struct{}
	once    *sync.Once
}

func (s leaseSpy) TakeLease(ctx context.Context, ttl time.Duration) (*queue.Lease, bool, error) {
	s.once.Do(func() { close(s.started) })
	return s.Queue.TakeLease(ctx, ttl)
}

// TestFleetDeliveryDoesNotHoldAdmissionSlots: with one slot (Parallel 1), a delivery waiting
// on a hanging endpoint does not keep the next queue's reaper run (its admissions) waiting:
// deliveries have slots of their own.
func TestFleetDeliveryDoesNotHoldAdmissionSlots(t *testing.T) {
	for _, b := range redistest.Backends(t) {
		t.Run(b.Name, func(t *testing.T) {
			e := newFleetEnv(t, b, 2)
			ctx := context.Background()
			started := []chan struct{}{make(chan struct{}), make(chan struct{})}
			var blocked []string
			var mu sync.Mutex
			for i, q := range e.queues {
				o := q.Options()
				o.Deliver = true
				nq, err := queue.New(b.Client, o)
				if err != nil {
					t.Fatal(err)
				}
				*q = *nq
				e.join(i, "gone")
				if _, err := q.Stop(ctx, "gone", queue.Trusted); err != nil {
					t.Fatal(err)
				}
				e.join(i, "waiting")
				base := &env{t: t, id: e.member[i].ID, clk: e.clk, capacity: 1}
				e.member[i].Reaper = base.newReaper(leaseSpy{Queue: q, started: started[i], once: &sync.Once{}}, e.svcs[i], nil)
				other := started[1-i]
				id := e.member[i].ID
				e.member[i].Deliver = func(ctx context.Context) (int, error) {
					// A hanging endpoint: this delivery ends only once the other queue's run
					// has started (or, if that run waits behind it, after a generous timeout).
					select {
					case <-other:
						return 1, nil
					case <-time.After(10 * time.Second):
						mu.Lock()
						blocked = append(blocked, id)
						mu.Unlock()
						return 0, errors.New("endpoint hangs")
					}
				}
			}
			rep, err := e.fleet(1).Run(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if len(blocked) != 0 || rep.Delivered != 2 || len(rep.Runs) != 2 {
				t.Fatalf("a delivery held the only slot: the run of the other queue waited behind %v; report %+v", blocked, rep)
			}
		})
	}
}
