package session

import (
	"context"
	"errors"
	"log/slog"
	"testing"
	"time"

	"github.com/carqueue/carqueue/local/caremu"
	"github.com/carqueue/carqueue/local/caremu/caremutest"
	"github.com/carqueue/carqueue/shared/car"
	"github.com/carqueue/carqueue/shared/queue"
	"github.com/carqueue/carqueue/shared/redistest"
	"github.com/carqueue/carqueue/shared/testkit"
)

// deployEnv is two queues of one deployment (one lock space, one Homes) in front of one
// emulated CAR account hosting both projects: A with capA slots, B with capB (its queue
// follows CAR's Total when capacityB is 0).
type deployEnv struct {
	clk  *testkit.Clock
	emu  *caremu.Emulator
	a, b *Service
	qa   *queue.Queue
	qb   *queue.Queue
}

func newDeployEnv(t *testing.T, be redistest.Backend, capA, capB, capacityB int) *deployEnv {
	t.Helper()
	clk := testkit.NewClock()
	emu, srv := caremutest.Server(t, caremu.Options{Projects: map[string]int{"cap-a": capA, "cap-b": capB}, Now: clk.Now,
		CleanupDelay: time.Millisecond, Logger: slog.New(slog.DiscardHandler)})
	cc := caremutest.Client(t, srv, car.Config{})
	space := redistest.Prefix(t, be.Client)
	homes, err := queue.NewHomes(be.Client, space, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	dep := NewDeployment(homes)
	mk := func(id, project string, capacity int) (*queue.Queue, *Service) {
		q, err := queue.New(be.Client, queue.Options{
			QueueID: space + id, LockSpace: space, Capacity: capacity,
			QueueIdleTimeout: time.Minute, HeartbeatTimeout: testHeartbeatTimeout, ReadyTimeout: time.Minute,
			ClaimLease: 30 * time.Second, GoneRetention: 10 * time.Minute, RateWindow: 5 * time.Minute, Now: clk.Now,
		})
		if err != nil {
			t.Fatal(err)
		}
		o := testOptions(clk.Now)
		o.QueueID, o.ProjectID, o.Deployment, o.CARTotalRefresh = space+id, project, dep, 30*time.Second
		return q, newService(t, q, cc, o)
	}
	e := &deployEnv{clk: clk, emu: emu}
	e.qa, e.a = mk("a", "cap-a", capA)
	e.qb, e.b = mk("b", "cap-b", capacityB)
	return e
}

func TestOneQueueAtATimeInADeployment(t *testing.T) {
	eachBackend(t, func(t *testing.T, be redistest.Backend) {
		e := newDeployEnv(t, be, 1, 1, 1)
		ctx := context.Background()
		cl := queue.Client{IP: "10.0.0.1", Session: "cs-alice"}
		v, err := e.a.Start(ctx, "alice", cl, queue.Unproven)
		if err != nil || v.Status != StatusReady {
			t.Fatalf("alice in A: %+v %v", v, err)
		}
		// Holding A, alice is refused by B, and B changes nothing.
		_, err = e.b.Start(ctx, "alice", cl, queue.Unproven)
		var ee *ElsewhereError
		if !errors.As(err, &ee) || !errors.Is(err, ErrElsewhere) || ee.QueueID != e.qa.Options().QueueID {
			t.Fatalf("alice in B while holding A: err %v, want ErrElsewhere naming A", err)
		}
		if st, _ := e.qb.StateOf(ctx, "alice"); st != queue.StateNone {
			t.Fatalf("B knows alice as %q after refusing her", st)
		}
		// Starting again in A is fine (the same queue).
		if _, err := e.a.Start(ctx, "alice", queue.Client{IP: "10.0.0.1", Session: "cs-alice-2"}, queue.Granted); err != nil {
			t.Fatalf("alice again in A: %v", err)
		}
		// Once she left A, B lets her in, and A's slot is free for bob.
		if _, err := e.a.Stop(ctx, "alice", queue.Trusted); err != nil {
			t.Fatal(err)
		}
		e.clk.Advance(time.Millisecond) // the emulator's clean-up
		v, err = e.b.Start(ctx, "alice", cl, queue.Unproven)
		if err != nil || v.Status != StatusReady {
			t.Fatalf("alice in B after leaving A: %+v %v", v, err)
		}
		v, err = e.a.Start(ctx, "bob", queue.Client{IP: "10.0.0.2", Session: "cs-bob"}, queue.Unproven)
		if err != nil || v.Status != StatusReady {
			t.Fatalf("bob in A: %+v %v", v, err)
		}
		if st, _ := e.emu.ProjectState("cap-b"); len(st.Sessions) != 1 || st.Sessions[0] != "alice" {
			t.Fatalf("B's CAR sessions %v, want [alice]", st.Sessions)
		}
		if st, _ := e.emu.ProjectState("cap-a"); len(st.Sessions) != 1 || st.Sessions[0] != "bob" {
			t.Fatalf("A's CAR sessions %v, want [bob]", st.Sessions)
		}
	})
}

func TestCapacityZeroIsCARsTotal(t *testing.T) {
	eachBackend(t, func(t *testing.T, be redistest.Backend) {
		e := newDeployEnv(t, be, 1, 2, 0)
		ctx := context.Background()
		join := func(u string) View {
			t.Helper()
			v, err := e.b.Start(ctx, u, queue.Client{IP: "10.0.0.1", Session: "cs-" + u}, queue.Unproven)
			if err != nil {
				t.Fatal(err)
			}
			return v
		}
		if v := join("u1"); v.Status != StatusQueued {
			t.Fatalf("before CAR's Total is known: %s, want Queued", v.Status)
		}
		if err := e.b.SyncCARTotal(ctx); err != nil {
			t.Fatal(err)
		}
		if st, _ := e.b.Stats(ctx); st.Capacity != 2 {
			t.Fatalf("capacity %d, want CAR's Total 2", st.Capacity)
		}
		if v, _ := e.b.Poll(ctx, "u1", queue.Client{}, queue.Trusted); v.Status != StatusReady {
			t.Fatalf("u1 after the Total: %s", v.Status)
		}
		if v := join("u2"); v.Status != StatusReady {
			t.Fatalf("u2: %s, want Ready (2 slots)", v.Status)
		}
		if v := join("u3"); v.Status != StatusQueued {
			t.Fatalf("u3: %s, want Queued (2 slots)", v.Status)
		}
		// Within the refresh, no CAR call; a configured queue never calls.
		if err := e.b.SyncCARTotal(ctx); err != nil {
			t.Fatal(err)
		}
		if err := e.a.SyncCARTotal(ctx); err != nil {
			t.Fatal(err)
		}
	})
}
