package caremu

import (
	"errors"
	"fmt"
	"reflect"
	"sync"
	"testing"
	"time"
)

// recorder collects session events.
type recorder struct {
	mu  sync.Mutex
	evs []SessionEvent
}

func (r *recorder) add(ev SessionEvent) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.evs = append(r.evs, ev)
}

// take returns the events so far as "Ended user" lines ("created" for a creation) and forgets them.
func (r *recorder) take() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := []string{}
	for _, ev := range r.evs {
		what := string(ev.Ended)
		if what == "" {
			what = "created"
		}
		out = append(out, what+" "+ev.Session.UserID)
	}
	r.evs = nil
	return out
}

func wantEvents(t *testing.T, r *recorder, want ...string) {
	t.Helper()
	if want == nil {
		want = []string{}
	}
	if got := r.take(); !reflect.DeepEqual(got, want) {
		t.Fatalf("events %q, want %q", got, want)
	}
}

func TestSubscribeReportsSessionsCreatedAndEnded(t *testing.T) {
	e, clock := newTestEmulator(t, Options{Slots: 3, ReconnectWindow: 90 * time.Second})
	var rec recorder
	e.Subscribe(rec.add)

	wantCode(t, "apply a", apply(t, e, "a"), "")
	wantEvents(t, &rec) // a lock is no session
	ss1, code := create(t, e, "a")
	wantCode(t, "create a", code, "")
	wantEvents(t, &rec, "created a")

	// A newer CreateSession replaces the session: the old one ends first.
	ss2, _ := create(t, e, "a")
	rec.mu.Lock()
	got := rec.evs
	rec.mu.Unlock()
	if len(got) != 2 || got[0].Session.ServerSession != ss1 || got[0].Ended != EndReplaced ||
		got[1].Session.ServerSession != ss2 || got[1].Ended != "" || got[1].Session.ClientSession != "cs-a" {
		t.Fatalf("second CreateSession: events %+v, want %s replaced, then %s created for cs-a", got, ss1, ss2)
	}
	wantEvents(t, &rec, "replaced a", "created a")

	wantCode(t, "destroy a", destroy(t, e, "a"), "")
	wantEvents(t, &rec, "destroyed a")

	// A lock destroyed before CreateSession ends no session.
	wantCode(t, "apply b", apply(t, e, "b"), "")
	wantCode(t, "destroy b", destroy(t, e, "b"), "")
	wantEvents(t, &rec)

	// Reclaimed after the reconnect window (noticed by the next call that sweeps).
	wantCode(t, "apply c", apply(t, e, "c"), "")
	create(t, e, "c")
	wantEvents(t, &rec, "created c")
	e.Disconnect("c")
	clock.Advance(90 * time.Second)
	_ = e.State()
	wantEvents(t, &rec, "reclaimed c")
}

func TestAttachChecksServerAndClientSession(t *testing.T) {
	e, _ := newTestEmulator(t, Options{Slots: 3})
	apply(t, e, "a")
	ss, _ := create(t, e, "a")

	if _, _, err := e.Attach("emu-never-issued", "cs-a"); !errors.Is(err, ErrUnknownSession) {
		t.Errorf("unknown ServerSession: err %v, want ErrUnknownSession", err)
	}
	if _, _, err := e.Attach(ss, "cs-somebody-else"); !errors.Is(err, ErrClientMismatch) {
		t.Errorf("another ClientSession: err %v, want ErrClientMismatch", err)
	}
	info, detach, err := e.Attach(ss, "cs-a")
	if err != nil {
		t.Fatal(err)
	}
	detach()
	detach() // idempotent
	if want := (SessionInfo{UserID: "a", ServerSession: ss, ClientSession: "cs-a"}); info != want {
		t.Errorf("info %+v, want %+v", info, want)
	}

	// After a newer CreateSession the old ServerSession is spent.
	ss2, _ := create(t, e, "a")
	if _, _, err := e.Attach(ss, "cs-a"); !errors.Is(err, ErrUnknownSession) {
		t.Errorf("replaced ServerSession: err %v, want ErrUnknownSession", err)
	}
	destroy(t, e, "a")
	if _, _, err := e.Attach(ss2, "cs-a"); !errors.Is(err, ErrUnknownSession) {
		t.Errorf("destroyed session: err %v, want ErrUnknownSession", err)
	}

	// A session that runs without a client has no page to attach.
	apply(t, e, "b")
	a := call(t, e, actionCreate, map[string]string{"UserId": "b", "UserIp": "1.1.1.1", "RunMode": "RunWithoutClient"})
	if _, _, err := e.Attach(a.Response.ServerSession, ""); !errors.Is(err, ErrClientMismatch) {
		t.Errorf("RunWithoutClient: err %v, want ErrClientMismatch", err)
	}
}

// A page's leaving starts the reconnect window, only once the last page has
// left; attaching again inside it keeps the session.
func TestAttachDetachDrivesTheReconnectWindow(t *testing.T) {
	e, clock := newTestEmulator(t, Options{Slots: 2, ReconnectWindow: 90 * time.Second})
	var rec recorder
	e.Subscribe(rec.add)
	apply(t, e, "a")
	ss, _ := create(t, e, "a")
	rec.take()

	_, d1, _ := e.Attach(ss, "cs-a")
	_, d2, _ := e.Attach(ss, "cs-a") // a second page (a reconnect racing the old one)
	d1()
	clock.Advance(time.Hour)
	_ = e.State()
	wantEvents(t, &rec) // one page still attached

	d2()
	clock.Advance(89 * time.Second)
	_, d3, err := e.Attach(ss, "cs-a") // back inside the window
	if err != nil {
		t.Fatalf("attach inside the window: %v", err)
	}
	clock.Advance(time.Hour)
	_ = e.State()
	wantEvents(t, &rec)

	d3()
	clock.Advance(90 * time.Second)
	_ = e.State()
	wantEvents(t, &rec, "reclaimed a")
}

// The old page of a replaced session leaving must not start the window of the user's newer session.
func TestDetachOfAReplacedSessionLeavesTheNewerAlone(t *testing.T) {
	e, clock := newTestEmulator(t, Options{Slots: 1, ReconnectWindow: 90 * time.Second})
	apply(t, e, "a")
	ss, _ := create(t, e, "a")
	_, detach, _ := e.Attach(ss, "cs-a")
	create(t, e, "a")
	detach()
	clock.Advance(time.Hour)
	if st := e.State(); !reflect.DeepEqual(st.Sessions, []string{"a"}) {
		t.Fatalf("the newer session must stay: %+v", st)
	}
}

// A callback may call the emulator (its events are delivered after it returns), and cancel stops the calls.
func TestSubscribeCallbackMayCallTheEmulator(t *testing.T) {
	e, clock := newTestEmulator(t, Options{Slots: 2, ReconnectWindow: time.Second})
	var rec recorder
	cancel := e.Subscribe(func(ev SessionEvent) {
		rec.add(ev)
		if ev.Ended == "" && ev.Session.UserID == "a" {
			clock.Advance(time.Second) // b's window passes; State sweeps it from inside the callback
			_ = e.State()
		}
	})
	apply(t, e, "a")
	apply(t, e, "b")
	create(t, e, "b")
	e.Disconnect("b")
	rec.take()
	create(t, e, "a")
	wantEvents(t, &rec, "created a", "reclaimed b")

	cancel()
	destroy(t, e, "a")
	wantEvents(t, &rec)
}

// Under concurrent calls every session is reported created, then ended, exactly once each.
func TestSubscribeOrderUnderConcurrency(t *testing.T) {
	e, _ := newTestEmulator(t, Options{Slots: 8 * 20}) // destroyed slots stay cleaning: the clock stands still
	var mu sync.Mutex
	state := map[string]string{} // ServerSession → "created" / ended reason
	var bad []string
	e.Subscribe(func(ev SessionEvent) {
		mu.Lock()
		defer mu.Unlock()
		ss := ev.Session.ServerSession
		switch prev := state[ss]; {
		case ev.Ended == "" && prev == "":
			state[ss] = "created"
		case ev.Ended != "" && prev == "created":
			state[ss] = string(ev.Ended)
		default:
			bad = append(bad, fmt.Sprintf("%s: %q after %q", ss, ev.Ended, prev))
		}
	})
	var wg sync.WaitGroup
	for u := range 8 {
		user := fmt.Sprintf("u%d", u)
		wg.Go(func() {
			for range 20 {
				apply(t, e, user)
				create(t, e, user)
				create(t, e, user)
				destroy(t, e, user)
			}
		})
		wg.Go(func() {
			for range 50 {
				_ = e.State()
			}
		})
	}
	wg.Wait()
	_ = e.State() // deliver what the last callers left to a delivery under way
	mu.Lock()
	defer mu.Unlock()
	if len(bad) > 0 {
		t.Fatalf("out of order: %v", bad)
	}
	if len(state) != 8*20*2 {
		t.Fatalf("%d sessions reported, want %d", len(state), 8*20*2)
	}
	for ss, s := range state {
		if s == "created" {
			t.Errorf("%s never reported ended", ss)
		}
	}
}
