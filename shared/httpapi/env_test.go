package httpapi

import (
	"context"
	"encoding/json"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/carqueue/carqueue/local/caremu"
	"github.com/carqueue/carqueue/local/caremu/caremutest"
	"github.com/carqueue/carqueue/shared/car"
	"github.com/carqueue/carqueue/shared/queue"
	"github.com/carqueue/carqueue/shared/reaper"
	"github.com/carqueue/carqueue/shared/redistest"
	"github.com/carqueue/carqueue/shared/session"
	"github.com/carqueue/carqueue/shared/testkit"
	"github.com/carqueue/carqueue/shared/ticket"
	"github.com/tencentyun/scf-go-lib/events"
)

const (
	testSecret     = "test-ticket-secret-0123456789"
	testAdminToken = "test-admin-token"
	testProject    = "cap-test"
	idleTimeout    = 20 * time.Second
	hbTimeout      = 30 * time.Second
	readyTimeout   = 15 * time.Second
	cleanupDelay   = 2 * time.Second
)

// env is the whole stack of one test: a queue on a redistest backend, the CAR emulator
// behind httptest, the real CAR client, the session service, the reaper and the API.
type env struct {
	t       testing.TB
	backend redistest.Backend
	clock   *testkit.Clock
	queueID string
	q       *queue.Queue
	emu     *caremu.Emulator
	svc     *session.Service
	api     *API
	signer  *ticket.Signer
	logs    *testkit.SyncBuffer
	logger  *slog.Logger

	mu      sync.Mutex
	tickets map[string]string // the newest ticket each user was given
}

type envOpts struct {
	capacity  int // queue capacity [1]
	slots     int // emulator slots [capacity]
	carSecret string
	deps      func(*Deps)
	stopWait  time.Duration          // session.Options.StopWait [2s]
	queue     func(*queue.Options)   // changes to the queue's options
	session   func(*session.Options) // changes to the session service's options
}

func newEnv(t testing.TB, b redistest.Backend, o envOpts) *env {
	t.Helper()
	if o.capacity == 0 {
		o.capacity = 1
	}
	if o.slots == 0 {
		o.slots = o.capacity
	}
	if o.stopWait == 0 {
		o.stopWait = 2 * time.Second
	}
	if o.carSecret == "" {
		o.carSecret = caremu.LocalSecretKey
	}
	e := &env{t: t, backend: b, clock: testkit.NewClock(), logs: &testkit.SyncBuffer{}, tickets: map[string]string{}}
	e.logger = slog.New(slog.NewJSONHandler(e.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("logs:\n%s", e.logs.String())
		}
	})
	e.queueID = redistest.Prefix(t, b.Client)

	qo := queue.Options{
		QueueID: e.queueID, Capacity: o.capacity, QueueIdleTimeout: idleTimeout,
		HeartbeatTimeout: hbTimeout, ReadyTimeout: readyTimeout, ClaimLease: 20 * time.Second,
		GoneRetention: 10 * time.Minute, RateWindow: 5 * time.Minute, Now: e.clock.Now,
	}
	if o.queue != nil {
		o.queue(&qo)
	}
	q, err := queue.New(b.Client, qo)
	if err != nil {
		t.Fatal(err)
	}
	e.q = q
	emu, srv := caremutest.Server(t, caremu.Options{Slots: o.slots, CleanupDelay: cleanupDelay,
		ReconnectWindow: 90 * time.Second, Now: e.clock.Now, Logger: e.logger})
	e.emu = emu
	cc := caremutest.Client(t, srv, car.Config{ProjectID: testProject, Logger: e.logger,
		Getenv: func(k string) string {
			if k == car.EnvSecretKey {
				return o.carSecret
			}
			return caremutest.LocalCredentials(k)
		}})
	so := session.Options{
		LockTTL: 30 * time.Second, CARBudget: 25 * time.Second,
		StopWait: o.stopWait, ReleaseRetryMin: time.Second, ReleaseRetryMax: time.Minute,
		HeartbeatInterval: hbTimeout / 4, HeartbeatTimeout: hbTimeout, PollMin: time.Second, PollMax: 30 * time.Second,
		Logger: e.logger, Now: e.clock.Now, Jitter: func() float64 { return 0.5 },
	}
	if o.session != nil {
		o.session(&so)
	}
	e.svc, err = session.New(q, cc, so)
	if err != nil {
		t.Fatal(err)
	}
	e.signer, _ = ticket.New(testSecret, "")
	d := Deps{
		Sessions: e.svc, Tickets: e.signer, QueueID: e.queueID,
		AdminToken: testAdminToken, ProjectID: testProject, Logger: e.logger, Now: e.clock.Now,
	}
	if o.deps != nil {
		o.deps(&d)
	}
	e.api, err = New(d)
	if err != nil {
		t.Fatal(err)
	}
	return e
}

// eachBackend runs f against miniredis and, with REDIS_ADDR, the real server.
func eachBackend(t *testing.T, f func(t *testing.T, b redistest.Backend)) {
	for _, b := range redistest.Backends(t) {
		t.Run(b.Name, func(t *testing.T) { f(t, b) })
	}
}

// answer is a decoded response.
type answer struct {
	Status int
	Header map[string]string
	Env    struct {
		Code      int
		Msg       string
		RequestId string
		Data      json.RawMessage
	}
	Data Data
	Map  map[string]any
}

func (e *env) do(route string, ev events.APIGatewayRequest) answer {
	e.t.Helper()
	resp, err := e.api.Handler(route)(context.Background(), ev)
	if err != nil {
		e.t.Fatalf("handler returned a Go error: %v", err)
	}
	a := decode(e.t, resp)
	var body struct{ UserId string }
	if a.Data.Ticket != "" && json.Unmarshal([]byte(ev.Body), &body) == nil && body.UserId != "" {
		e.mu.Lock()
		e.tickets[body.UserId] = a.Data.Ticket
		e.mu.Unlock()
	}
	return a
}

func decode(t testing.TB, resp events.APIGatewayResponse) answer {
	t.Helper()
	a := answer{Status: resp.StatusCode, Header: resp.Headers}
	if resp.Headers["Content-Type"] != "application/json" {
		t.Fatalf("Content-Type %q", resp.Headers["Content-Type"])
	}
	if err := json.Unmarshal([]byte(resp.Body), &a.Env); err != nil {
		t.Fatalf("body is not the envelope: %v: %s", err, resp.Body)
	}
	if a.Env.RequestId == "" {
		t.Fatalf("no RequestId: %s", resp.Body)
	}
	if len(a.Env.Data) == 0 || a.Env.Data[0] != '{' {
		t.Fatalf("Data must be an object: %s", resp.Body)
	}
	_ = json.Unmarshal(a.Env.Data, &a.Data)
	_ = json.Unmarshal(a.Env.Data, &a.Map)
	return a
}

// post sends body as JSON to route, from ip (function URL form).
func (e *env) post(route string, body map[string]any) answer {
	e.t.Helper()
	b, _ := json.Marshal(body)
	return e.do(route, events.APIGatewayRequest{Method: "POST", Path: "/" + route, Body: string(b),
		Headers: map[string]string{"x-scf-remote-addr": "198.51.100.7"}})
}

// ticket is the newest ticket the user was given, else a genuine one for a join the queue
// never made (fine for a user it does not know).
func (e *env) ticket(user string) string {
	e.mu.Lock()
	tk, ok := e.tickets[user]
	e.mu.Unlock()
	if ok {
		return tk
	}
	return mustIssue(e.t, e.signer, e.queueID, user)
}

// mustIssue issues a ticket for a join id no queue has made yet.
func mustIssue(t testing.TB, s *ticket.Signer, queueID, user string) string {
	t.Helper()
	tk, err := s.Issue(queueID, user, "999999999")
	if err != nil {
		t.Fatal(err)
	}
	return tk
}

// start is /start as a client that keeps its ticket sends it: with the newest ticket the
// user was given, if any (startAs sends exactly the body given).
func (e *env) start(user, cs string) answer {
	e.t.Helper()
	body := map[string]any{"UserId": user, "ClientSession": cs}
	e.mu.Lock()
	if tk, ok := e.tickets[user]; ok {
		body["Ticket"] = tk
	}
	e.mu.Unlock()
	return e.post("start", body)
}

func (e *env) poll(user string) answer {
	e.t.Helper()
	return e.post("poll", map[string]any{"UserId": user, "Ticket": e.ticket(user)})
}

func (e *env) heartbeat(user string) answer {
	e.t.Helper()
	return e.post("heartbeat", map[string]any{"UserId": user, "Ticket": e.ticket(user)})
}

func (e *env) stop(user string) answer {
	e.t.Helper()
	return e.post("stop", map[string]any{"UserId": user, "Ticket": e.ticket(user)})
}

func (e *env) reconnect(user, cs string) answer {
	e.t.Helper()
	return e.post("reconnect", map[string]any{"UserId": user, "Ticket": e.ticket(user), "ClientSession": cs})
}

func (e *env) stats() answer {
	e.t.Helper()
	return e.do("stats", events.APIGatewayRequest{Method: "GET", Path: "/stats",
		Headers: map[string]string{"Authorization": "Bearer " + testAdminToken}})
}

// reap runs the reaper once, as the timer trigger would.
func (e *env) reap() reaper.Report {
	e.t.Helper()
	r, err := reaper.New(e.q, e.svc, reaper.Options{Batch: 50, Lease: 50 * time.Second, Parallel: 8, MaxReapBatches: 200,
		Now: e.clock.Now, Logger: e.logger})
	if err != nil {
		e.t.Fatal(err)
	}
	rep, err := r.Run(context.Background())
	if err != nil {
		e.t.Fatalf("reaper: %v", err)
	}
	return rep
}

// want checks an answer's HTTP status, Code and Data.Status.
func want(t *testing.T, a answer, status, code int, dataStatus string) {
	t.Helper()
	if a.Status != status || a.Env.Code != code || a.Data.Status != dataStatus {
		t.Fatalf("got HTTP %d Code %d Status %q (Msg %q, Data %s); want HTTP %d Code %d Status %q",
			a.Status, a.Env.Code, a.Data.Status, a.Env.Msg, a.Env.Data, status, code, dataStatus)
	}
}

// checkCapacity asserts the contract's capacity promise on both sides.
func (e *env) checkCapacity(capacity int) {
	e.t.Helper()
	st, err := e.q.Stats(context.Background())
	if err != nil {
		e.t.Fatal(err)
	}
	if h := st.Admitting + st.Ready + st.Active + st.Releasing; h > int64(capacity) {
		e.t.Fatalf("queue holds %d slots, capacity %d", h, capacity)
	}
	if s := e.emu.State(); len(s.Sessions)+len(s.Locked) > capacity {
		e.t.Fatalf("CAR holds %v + %v, capacity %d", s.Sessions, s.Locked, capacity)
	}
}

// fillOneSlot is the common opening of the one-slot flows: "a" takes the slot (and heartbeats
// to Active when active), then "b" and "c" queue behind it at positions 1 and 2.
func (e *env) fillOneSlot(t *testing.T, active bool) {
	t.Helper()
	want(t, e.start("a", "cs"), 200, 0, StatusReady)
	if active {
		want(t, e.heartbeat("a"), 200, 0, StatusActive)
	}
	want(t, e.start("b", "cs"), 200, 0, StatusQueued)
	want(t, e.start("c", "cs"), 200, 0, StatusQueued)
}
