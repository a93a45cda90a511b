package httpapi

import (
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/carqueue/carqueue/local/caremu"
	"github.com/carqueue/carqueue/local/caremu/caremutest"
	"github.com/carqueue/carqueue/shared/car"
	"github.com/carqueue/carqueue/shared/queue"
	"github.com/carqueue/carqueue/shared/redistest"
	"github.com/carqueue/carqueue/shared/session"
	"github.com/carqueue/carqueue/shared/testkit"
	"github.com/carqueue/carqueue/shared/ticket"
	"github.com/tencentyun/scf-go-lib/events"
)

// twoQueues is a deployment of queue "a" (project cap-a, 1 slot) and queue "b" (cap-b,
// 2 slots) on one emulated CAR account, behind one API.
type twoQueues struct {
	t   *testing.T
	clk *testkit.Clock
	api *API
	emu *caremu.Emulator
	ids [2]string // the queues' ids (unique per test)
}

func newTwoQueues(t *testing.T, b redistest.Backend) *twoQueues {
	t.Helper()
	clk := testkit.NewClock()
	log := slog.New(slog.DiscardHandler)
	emu, srv := caremutest.Server(t, caremu.Options{Projects: map[string]int{"cap-a": 1, "cap-b": 2},
		CleanupDelay: time.Millisecond, Now: clk.Now, Logger: log})
	cc := caremutest.Client(t, srv, car.Config{Logger: log})
	space := redistest.Prefix(t, b.Client)
	homes, err := queue.NewHomes(b.Client, space, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	dep := session.NewDeployment(homes)
	tq := &twoQueues{t: t, clk: clk, emu: emu, ids: [2]string{space + "a", space + "b"}}
	var qs []Queue
	for i, spec := range []struct {
		project string
		slots   int
	}{{"cap-a", 1}, {"cap-b", 2}} {
		q, err := queue.New(b.Client, queue.Options{
			QueueID: tq.ids[i], LockSpace: space, Capacity: spec.slots, QueueIdleTimeout: idleTimeout,
			HeartbeatTimeout: hbTimeout, ReadyTimeout: readyTimeout, ClaimLease: 20 * time.Second,
			GoneRetention: 10 * time.Minute, RateWindow: 5 * time.Minute, Now: clk.Now,
		})
		if err != nil {
			t.Fatal(err)
		}
		svc, err := session.New(q, cc, session.Options{
			QueueID: tq.ids[i], ProjectID: spec.project, Deployment: dep,
			LockTTL: 30 * time.Second, CARBudget: 25 * time.Second,
			StopWait: 2 * time.Second, ReleaseRetryMin: time.Second, ReleaseRetryMax: time.Minute,
			HeartbeatInterval: hbTimeout / 4, HeartbeatTimeout: hbTimeout, PollMin: time.Second, PollMax: 30 * time.Second,
			Logger: log, Now: clk.Now, Jitter: func() float64 { return 0.5 },
		})
		if err != nil {
			t.Fatal(err)
		}
		qs = append(qs, Queue{ID: tq.ids[i], ProjectID: spec.project, Sessions: svc})
	}
	signer, _ := ticket.New(testSecret, "")
	if tq.api, err = New(Deps{Queues: qs, Tickets: signer, AdminToken: testAdminToken, Logger: log, Now: clk.Now}); err != nil {
		t.Fatal(err)
	}
	return tq
}

func (tq *twoQueues) post(route string, body map[string]any) answer {
	tq.t.Helper()
	b, _ := json.Marshal(body)
	resp, err := tq.api.Handler(route)(context.Background(), events.APIGatewayRequest{Method: "POST", Path: "/" + route, Body: string(b),
		Headers: map[string]string{"x-scf-remote-addr": "198.51.100.7", "authorization": "Bearer " + testAdminToken}})
	if err != nil {
		tq.t.Fatal(err)
	}
	return decode(tq.t, resp)
}

func (tq *twoQueues) start(user string, extra map[string]any) answer {
	tq.t.Helper()
	body := map[string]any{"UserId": user, "ClientSession": "cs-" + user}
	for k, v := range extra {
		body[k] = v
	}
	return tq.post("start", body)
}

func TestQueuesAreRoutedAndIndependent(t *testing.T) {
	eachBackend(t, func(t *testing.T, b redistest.Backend) {
		tq := newTwoQueues(t, b)
		qa, qb := tq.ids[0], tq.ids[1]

		// Queue a is full (one slot), and its next user waits.
		a1 := tq.start("a1", nil) // no QueueId or ProjectId: the first queue
		want(t, a1, http.StatusOK, 0, "Ready")
		a2 := tq.start("a2", map[string]any{"ProjectId": "cap-a"})
		want(t, a2, http.StatusOK, 0, "Queued")
		// A full queue a never delays b: b's users are admitted at once, by QueueId or ProjectId.
		want(t, tq.start("b1", map[string]any{"QueueId": qb}), http.StatusOK, 0, "Ready")
		b2 := tq.start("b2", map[string]any{"ProjectId": "cap-b"})
		want(t, b2, http.StatusOK, 0, "Ready")
		b3 := tq.start("b3", map[string]any{"QueueId": qb})
		want(t, b3, http.StatusOK, 0, "Queued")

		// Tickets are bound to their queue: b2's works in b, not in a.
		want(t, tq.post("poll", map[string]any{"UserId": "b2", "Ticket": b2.Data.Ticket, "QueueId": qb}), http.StatusOK, 0, "Ready")
		other := tq.post("poll", map[string]any{"UserId": "b2", "Ticket": b2.Data.Ticket})
		want(t, other, http.StatusUnauthorized, int(CodeBadTicket), "")

		// A user is in one queue at a time: a2 (waiting in a) cannot start in b.
		dup := tq.start("a2", map[string]any{"QueueId": qb})
		want(t, dup, http.StatusConflict, int(CodeElsewhere), "")
		if !strings.Contains(dup.Env.Msg, qa) {
			t.Fatalf("409 %q should name queue a", dup.Env.Msg)
		}

		// A stop in a frees only a's slot: a2 gets it, b is untouched.
		want(t, tq.post("stop", map[string]any{"UserId": "a1", "Ticket": a1.Data.Ticket, "QueueId": qa}), http.StatusOK, 0, "Stopped")
		stA, _ := tq.emu.ProjectState("cap-a")
		stB, _ := tq.emu.ProjectState("cap-b")
		if len(stA.Sessions) != 0 || stA.Cleaning != 1 || len(stB.Sessions) != 2 || stB.Cleaning != 0 {
			t.Fatalf("after a1's stop: a %+v, b %+v", stA, stB)
		}
		tq.clk.Advance(time.Millisecond) // a's slot cleans up
		want(t, tq.post("poll", map[string]any{"UserId": "a2", "Ticket": a2.Data.Ticket, "QueueId": qa}), http.StatusOK, 0, "Ready")
		want(t, tq.post("poll", map[string]any{"UserId": "b3", "Ticket": b3.Data.Ticket, "QueueId": qb}), http.StatusOK, 0, "Queued")

		// /stats: the first queue at the top, every queue under Queues; ?QueueId= picks one.
		st := tq.post("stats", map[string]any{})
		want(t, st, http.StatusOK, 0, "")
		if st.Map["QueueId"] != qa || st.Map["Queued"] != float64(0) || st.Map["Holding"] != float64(1) {
			t.Fatalf("top level of /stats: %v", st.Map)
		}
		all, _ := st.Map["Queues"].([]any)
		if len(all) != 2 {
			t.Fatalf("Queues: %v", st.Map["Queues"])
		}
		if bq := all[1].(map[string]any); bq["QueueId"] != qb || bq["Holding"] != float64(2) || bq["Queued"] != float64(1) || bq["Capacity"] != float64(2) {
			t.Fatalf("queue b in /stats: %v", bq)
		}
		resp, _ := tq.api.Handler("stats")(context.Background(), events.APIGatewayRequest{Method: "GET", Path: "/stats",
			QueryString: events.APIGatewayQueryString{"QueueId": {qb}}, Headers: map[string]string{"authorization": "Bearer " + testAdminToken}})
		one := decode(t, resp)
		if one.Map["QueueId"] != qb || one.Map["Queues"] != nil {
			t.Fatalf("/stats?QueueId=b: %v", one.Map)
		}
	})
}

func TestUnknownQueueOrProjectIs400NamingTheField(t *testing.T) {
	eachBackend(t, func(t *testing.T, b redistest.Backend) {
		tq := newTwoQueues(t, b)
		for _, tc := range []struct {
			extra map[string]any
			msg   string
		}{
			{map[string]any{"QueueId": "nope"}, `QueueId: no queue "nope" here`},
			{map[string]any{"QueueId": "a{b}"}, "QueueId: 1–64 characters"},
			{map[string]any{"QueueId": 7}, "QueueId: must be a string"},
			{map[string]any{"ProjectId": "cap-z"}, `ProjectId: no queue serves project "cap-z"`},
			{map[string]any{"QueueId": tq.ids[0], "ProjectId": "cap-b"}, `ProjectId: this queue serves ProjectId "cap-a" only`},
			{map[string]any{"ProjectId": "cap-a", "ApplicationId": "app-x"}, "ApplicationId: this queue serves the configured default only"},
		} {
			a := tq.start("u1", tc.extra)
			want(t, a, http.StatusBadRequest, int(CodeInvalidField), "")
			if !strings.Contains(a.Env.Msg, tc.msg) {
				t.Errorf("%v: Msg %q, want %q", tc.extra, a.Env.Msg, tc.msg)
			}
		}
		// Nothing changed: u1 then joins the empty queue a and is admitted.
		want(t, tq.start("u1", nil), http.StatusOK, 0, "Ready")
	})
}
