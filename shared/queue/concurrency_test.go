package queue

import (
	"errors"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"github.com/carqueue/carqueue/shared/testkit"
)

// TestFIFO: admission order is first-join order; re-joins and polls move nobody.
func TestFIFO(t *testing.T) {
	o := testOptions(3)
	o.QueueIdleTimeout = time.Hour
	forBackends(t, o, func(t *testing.T, q *Queue, clk *testkit.Clock) {
		rng := rand.New(rand.NewPCG(1, 2))
		const n = 60
		joined := 0
		var admitted []string
		var holding []string
		for len(admitted) < n {
			switch op := rng.IntN(5); {
			case op == 0 && joined < n:
				must[Status](t)(q.Join(bg, user(joined), Client{IP: "198.51.100.1", Session: "cs"}, Trusted))
				joined++
			case op == 1 && joined > len(admitted):
				// re-join of a waiting user (admitted ones would join anew, at the back)
				must[Status](t)(q.Join(bg, user(len(admitted)+rng.IntN(joined-len(admitted))), Client{IP: "198.51.100.2", Session: "newer"}, Trusted))
			case op == 2 && joined > 0:
				must[Status](t)(q.Poll(bg, user(rng.IntN(joined)), Client{}, Trusted))
			case op == 3:
				for _, c := range must[[]Claim](t)(q.Claim(bg, 1+rng.IntN(3))) {
					noErr(t, q.MarkReady(bg, c, "ss"))
					admitted = append(admitted, c.UserID)
					holding = append(holding, c.UserID)
				}
			case op == 4 && len(holding) > 0:
				u := holding[0]
				holding = holding[1:]
				must[State](t)(q.Stop(bg, u, Trusted))
				noErr(t, q.Released(bg, u))
			case joined == n && len(holding) == 3:
				u := holding[0]
				holding = holding[1:]
				must[State](t)(q.Stop(bg, u, Trusted))
				noErr(t, q.Released(bg, u))
			}
			if s := must[Stats](t)(q.Stats(bg)); s.Admitting+s.Ready+s.Active+s.Releasing > 3 {
				t.Fatalf("capacity exceeded: %+v", s)
			}
		}
		for i, u := range admitted {
			if u != user(i) {
				t.Fatalf("admission %d was %s, want %s (order %v)", i, u, user(i), admitted)
			}
		}
	})
}

// TestConcurrentHammer: 64 goroutines join, poll, claim, finish claims, heartbeat, stop,
// reattach, reap and release at once while the clock moves. A checker reads consistent
// snapshots (one script) throughout; at the end every user who ever joined is still queued,
// holding, or gone with a reason.
func TestConcurrentHammer(t *testing.T) {
	const (
		workers  = 64
		iters    = 40
		capacity = 5
		nUsers   = 96
	)
	opts := testOptions(capacity)
	opts.QueueIdleTimeout, opts.HeartbeatTimeout, opts.ReadyTimeout = 20*time.Second, 15*time.Second, 10*time.Second
	opts.ClaimLease, opts.GoneRetention = 8*time.Second, 24*time.Hour
	forBackends(t, opts, func(t *testing.T, q *Queue, clk *testkit.Clock) {
		var (
			joined  sync.Map
			wg      sync.WaitGroup
			errMu   sync.Mutex
			errs    []error
			stopChk = make(chan struct{})
			chkDone = make(chan struct{})
		)
		fail := func(err error) {
			errMu.Lock()
			errs = append(errs, err)
			errMu.Unlock()
		}
		go func() { // the checker: invariants and capacity on atomic snapshots
			defer close(chkDone)
			for {
				select {
				case <-stopChk:
					return
				default:
				}
				if err := q.CheckInvariants(bg); err != nil {
					fail(err)
					return
				}
			}
		}()
		for w := range workers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				rng := rand.New(rand.NewPCG(uint64(w), 7))
				var mine []Claim
				for range iters {
					u := user(rng.IntN(nUsers))
					var err error
					switch rng.IntN(12) {
					case 0, 1:
						if _, err = q.Join(bg, u, Client{IP: "2001:db8::1", Session: "cs|" + u}, Trusted); err == nil {
							joined.Store(u, true)
						}
					case 2:
						_, err = q.Poll(bg, u, Client{IP: "198.51.100.9", Session: []string{"", "cs2"}[rng.IntN(2)]}, Trusted)
					case 3:
						var cs []Claim
						cs, err = q.Claim(bg, 1+rng.IntN(2))
						mine = append(mine, cs...)
					case 4:
						if c, ok, e := q.Reattach(bg, u, Client{}, Trusted); e != nil {
							err = e
						} else if ok {
							mine = append(mine, c)
						}
					case 5, 6:
						if len(mine) > 0 {
							c := mine[0]
							mine = mine[1:]
							switch rng.IntN(4) {
							case 0:
								err = q.Requeue(bg, c)
							case 1:
								err = q.Refuse(bg, c, rng.IntN(2) == 0)
							default:
								err = q.MarkReady(bg, c, "ss")
							}
							if errors.Is(err, ErrLeaseLost) {
								err = nil
							}
						}
					case 7:
						_, err = q.Heartbeat(bg, u, Trusted)
					case 8:
						if rng.IntN(3) == 0 {
							_, err = q.Stop(bg, u, Trusted)
						}
					case 9:
						_, err = q.Reap(bg, 1+rng.IntN(5))
					case 10:
						var rel []string
						if rel, err = q.Releasing(bg, 3); err == nil {
							for _, r := range rel {
								if e := q.Released(bg, r); e != nil && !errors.Is(e, ErrNotHolding) {
									err = e
								}
							}
						}
					case 11:
						clk.Advance(time.Duration(rng.IntN(500)) * time.Millisecond)
					}
					if err != nil {
						fail(err)
					}
				}
			}()
		}
		wg.Wait()
		close(stopChk)
		<-chkDone
		if len(errs) > 0 {
			t.Fatalf("%d errors, first: %v", len(errs), errs[0])
		}
		mustInvariants(t, q)
		s := must[Stats](t)(q.Stats(bg))
		if held := s.Admitting + s.Ready + s.Active + s.Releasing; held > capacity {
			t.Fatalf("capacity exceeded: %+v", s)
		}
		n := 0
		joined.Range(func(k, _ any) bool {
			n++
			args := []any{clk.Now().UnixMilli(), q.cycle, k.(string)}
			v, err := q.run(bg, peekScript, args...)
			if err != nil {
				t.Fatal(err)
			}
			st, err := replyStatus(v.([]any)[0])
			if err != nil {
				t.Fatal(err)
			}
			if st.State == StateNone && st.Reason == "" {
				t.Errorf("user %s was lost: neither waiting, holding nor gone with a reason", k)
			}
			return true
		})
		if n == 0 || s.AdmittedTotal == 0 {
			t.Fatalf("the hammer did nothing: %d joined, %+v", n, s)
		}
		t.Logf("%d users joined; stats %+v", n, s)
	})
}
