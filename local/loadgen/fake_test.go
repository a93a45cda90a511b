package loadgen

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// fakeSystem is a tiny, single-process model of the contract: a line, a capacity, heartbeat
// deadlines checked lazily on each request. Its bug switches let the tests check that Run
// notices a broken promise, and that it reports nothing on a correct system.
type fakeSystem struct {
	mu        sync.Mutex
	capacity  int
	hbTimeout time.Duration
	lifo      bool // bug: admit the newest user first
	overbook  bool // bug: admit one more than capacity
	line      []string
	hold      map[string]*fakeHolder
	gone      map[string]string
	admitted  int
}

type fakeHolder struct {
	active   bool
	deadline time.Time
}

func newFake(capacity int, hbTimeout time.Duration) *fakeSystem {
	return &fakeSystem{capacity: capacity, hbTimeout: hbTimeout, hold: map[string]*fakeHolder{}, gone: map[string]string{}}
}

func (f *fakeSystem) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	route := strings.TrimPrefix(r.URL.Path, "/")
	if route == "emulator/state" {
		http.NotFound(w, r)
		return
	}
	var in struct{ UserId string }
	_ = json.NewDecoder(r.Body).Decode(&in)
	f.mu.Lock()
	data := f.handle(route, in.UserId)
	f.mu.Unlock()
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(map[string]any{"Code": 0, "Msg": "OK", "Data": data})
}

func (f *fakeSystem) handle(route, u string) map[string]any {
	now := time.Now()
	for id, h := range f.hold { // the reaper, lazily
		if now.After(h.deadline) {
			delete(f.hold, id)
			f.gone[id] = map[bool]string{true: "heartbeat_timeout", false: "never_started"}[h.active]
		}
	}
	switch route {
	case "stats":
		return map[string]any{"Queued": len(f.line), "Ready": len(f.hold), "Capacity": f.capacity, "AdmittedTotal": f.admitted}
	case "start", "reconnect":
		if _, ok := f.hold[u]; !ok && !slices.Contains(f.line, u) {
			f.line = append(f.line, u)
			delete(f.gone, u)
		}
		return f.status(u, now)
	case "poll":
		return f.status(u, now)
	case "heartbeat":
		h, ok := f.hold[u]
		if !ok {
			return map[string]any{"Status": "Expired", "Reason": f.gone[u]}
		}
		h.active, h.deadline = true, now.Add(f.hbTimeout)
		return map[string]any{"Status": "Active", "NextHeartbeatMs": f.hbTimeout.Milliseconds() / 4}
	case "stop":
		if i := slices.Index(f.line, u); i >= 0 {
			f.line = slices.Delete(f.line, i, i+1)
			f.gone[u] = "stopped"
		}
		if _, ok := f.hold[u]; ok {
			delete(f.hold, u)
			f.gone[u] = "stopped"
		}
		return map[string]any{"Status": "Stopped"}
	}
	return map[string]any{}
}

// status admits u if it is next (the head, or the tail when lifo) and a slot is free.
func (f *fakeSystem) status(u string, now time.Time) map[string]any {
	if _, ok := f.hold[u]; ok {
		return map[string]any{"Status": "Ready", "ServerSession": "ss-" + u, "Ticket": "t-" + u}
	}
	i := slices.Index(f.line, u)
	if i < 0 {
		return map[string]any{"Status": "Expired", "Reason": f.gone[u], "Ticket": "t-" + u}
	}
	next := 0
	if f.lifo {
		next = len(f.line) - 1
	}
	free := f.capacity - len(f.hold)
	if f.overbook {
		free++
	}
	if i == next && free > 0 {
		f.line = slices.Delete(f.line, i, i+1)
		f.hold[u] = &fakeHolder{deadline: now.Add(f.hbTimeout)}
		f.admitted++
		return f.status(u, now)
	}
	return map[string]any{"Status": "Queued", "Position": i + 1, "QueueLength": len(f.line), "NextPollMs": 20, "Ticket": "t-" + u}
}

func runFake(t *testing.T, f *fakeSystem) (Report, error) {
	t.Helper()
	srv := httptest.NewServer(f)
	defer srv.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	return Run(ctx, Config{
		BaseURL: srv.URL, AdminToken: "x", Users: 16, Vanish: 0.25, Reconnect: 0.125, QuitQueued: 0.125,
		Play: 150 * time.Millisecond, Stagger: time.Millisecond, HeartbeatTimeout: f.hbTimeout,
		SampleInterval: 10 * time.Millisecond, DrainTimeout: 5 * time.Second, Seed: 3, MaxRetryDelay: 10 * time.Millisecond,
	})
}

// The fake admits lazily, on the user's own request, so the end-to-end tests here use it only
// for what is deterministic whatever the scheduling: a correct system passes, a broken one
// fails with the matching violation.
func TestRunOnCorrectFake(t *testing.T) {
	r, err := runFake(t, newFake(2, 400*time.Millisecond))
	if err != nil {
		t.Fatalf("Run on a correct system: %v\n%s", err, r)
	}
	if r.Admitted == 0 || r.MaxHolders > 2 || !r.Drained || r.Outcomes[outVanished] != 4 || r.Reconnects != 2 {
		t.Errorf("report:\n%s\nwant users admitted, at most 2 holders, drained, 4 vanished, 2 reconnects", r)
	}
}

func TestRunCatchesBrokenPromises(t *testing.T) {
	tests := []struct {
		name  string
		bug   func(*fakeSystem)
		wants string
	}{
		{"LIFO admission", func(f *fakeSystem) { f.lifo = true }, "FIFO: "},
		{"over capacity", func(f *fakeSystem) { f.overbook = true }, "capacity: "},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFake(2, 400*time.Millisecond)
			tt.bug(f)
			r, err := runFake(t, f)
			if !errors.Is(err, ErrViolations) {
				t.Fatalf("Run = %v, want ErrViolations\n%s", err, r)
			}
			if !slices.ContainsFunc(r.Violations, func(v string) bool { return strings.HasPrefix(v, tt.wants) }) {
				t.Errorf("violations %q, want one starting %q", r.Violations, tt.wants)
			}
		})
	}
}
