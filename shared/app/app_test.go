package app

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/carqueue/carqueue/local/caremu"
	"github.com/carqueue/carqueue/shared/car"
	"github.com/carqueue/carqueue/shared/config"
	"github.com/carqueue/carqueue/shared/queue"
	"github.com/carqueue/carqueue/shared/redistest"
	"github.com/carqueue/carqueue/shared/session"
	"github.com/carqueue/carqueue/shared/ticket"
	"github.com/tencentyun/scf-go-lib/events"
)

type envelope struct {
	Code int
	Msg  string
	Data map[string]any
}

func call(t *testing.T, route string, body map[string]any, headers map[string]string) (int, envelope) {
	t.Helper()
	b, _ := json.Marshal(body)
	resp, err := HTTP(route)(context.Background(), events.APIGatewayRequest{
		Method: "POST", Path: "/" + route, Body: string(b), Headers: headers})
	if err != nil {
		t.Fatalf("Go error from the handler: %v", err)
	}
	var e envelope
	if err := json.Unmarshal([]byte(resp.Body), &e); err != nil {
		t.Fatalf("%v: %s", err, resp.Body)
	}
	return resp.StatusCode, e
}

// TestLazyBuildFromEnvironment goes through the real entry points (HTTP, Reaper) with the
// process environment: a bad configuration answers 503 naming the variable, and the next
// invocation after the fix builds the instance.
func TestLazyBuildFromEnvironment(t *testing.T) {
	for _, b := range redistest.Backends(t) {
		t.Run(b.Name, func(t *testing.T) {
			t.Cleanup(instance.reset)
			emu, err := caremu.New(caremu.Options{Slots: 1, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
			if err != nil {
				t.Fatal(err)
			}
			srv := httptest.NewServer(emu)
			t.Cleanup(srv.Close)
			queueID := redistest.Prefix(t, b.Client)
			redisEnv := b.Env()
			for k, v := range map[string]string{
				LocalEnv: "1", "REDIS_ADDR": redisEnv["REDIS_ADDR"], "REDIS_PASSWORD": redisEnv["REDIS_PASSWORD"], "REDIS_DB": redisEnv["REDIS_DB"],
				"QUEUE_ID": queueID, "CAR_ENDPOINT": strings.TrimPrefix(srv.URL, "http://"), "CAR_SCHEME": "http",
				car.EnvSecretID: caremu.LocalSecretID, car.EnvSecretKey: caremu.LocalSecretKey,
				"CAPACITY": "not-a-number", "ADMIN_TOKEN": "admin-token-for-test",
			} {
				t.Setenv(k, v)
			}

			status, e := call(t, "start", map[string]any{"UserId": "alice", "ClientSession": "cs"}, nil)
			if status != 503 || e.Code != 5032 || !strings.Contains(e.Msg, "CAPACITY") || strings.Contains(e.Msg, "not-a-number") {
				t.Fatalf("misconfigured: %d %+v", status, e)
			}
			if err := Reaper()(context.Background(), events.TimerEvent{}); err == nil {
				t.Fatal("reaper must fail while misconfigured")
			}

			t.Setenv("CAPACITY", "1")
			status, e = call(t, "start", map[string]any{"UserId": "alice", "ClientSession": "cs"}, nil)
			if status != 200 || e.Data["Status"] != "Ready" {
				t.Fatalf("after the fix: %d %+v", status, e)
			}
			tk, _ := ticket.New("carqueue-local-dev-ticket-secret", "")
			if tkt, _ := e.Data["Ticket"].(string); !verifies(tk, queueID, "alice", tkt) {
				t.Fatal("local mode must sign with the documented dev secret")
			}
			status, e = call(t, "heartbeat", map[string]any{"UserId": "alice", "Ticket": e.Data["Ticket"]}, nil)
			if status != 200 || e.Data["Status"] != "Active" {
				t.Fatalf("heartbeat: %d %+v", status, e)
			}
			if err := Reaper()(context.Background(), events.TimerEvent{}); err != nil {
				t.Fatalf("reaper: %v", err)
			}
			status, e = call(t, "stats", nil, map[string]string{"Authorization": "Bearer admin-token-for-test"})
			if status != 200 || e.Data["Active"] != 1.0 || e.Data["CARTotal"] != 1.0 || e.Data["CARRunning"] != 1.0 {
				t.Fatalf("stats: %d %+v", status, e)
			}
			first, _ := instance.get()
			second, _ := instance.get()
			if first != second {
				t.Fatal("the instance must be built once")
			}
		})
	}
}

func TestBuildOutsideLocalNeedsSecrets(t *testing.T) {
	_, err := Build(func(k string) string {
		return map[string]string{"REDIS_ADDR": "127.0.0.1:1", "CAR_PROJECT_ID": "cap-1", "CAPACITY": "2"}[k]
	}, false)
	if err == nil || !strings.Contains(err.Error(), "TICKET_SECRET") {
		t.Fatalf("want TICKET_SECRET required, got %v", err)
	}
	if msg := unavailableMsg(err); msg != "server misconfigured: check TICKET_SECRET" {
		t.Fatalf("msg %q", msg)
	}
}

// TestRedisDown: an unreachable Redis answers 503 / 5030 with Retry-After, not a Go error.
func TestRedisDown(t *testing.T) {
	t.Cleanup(instance.reset)
	t.Setenv(LocalEnv, "1")
	t.Setenv("REDIS_ADDR", "127.0.0.1:1") // nothing listens on port 1
	b, _ := json.Marshal(map[string]any{"UserId": "alice", "ClientSession": "cs"})
	resp, err := HTTP("start")(context.Background(), events.APIGatewayRequest{Method: "POST", Body: string(b)})
	if err != nil {
		t.Fatal(err)
	}
	var e envelope
	_ = json.Unmarshal([]byte(resp.Body), &e)
	if resp.StatusCode != 503 || e.Code != 5030 || resp.Headers["Retry-After"] == "" {
		t.Fatalf("%d %s", resp.StatusCode, resp.Body)
	}
}

// TestConfigConstantsMatchThePackages: shared/config stays free of the domain packages, so it
// repeats two of their numbers in its limits and timing rules; this keeps them equal.
func TestConfigConstantsMatchThePackages(t *testing.T) {
	if config.WrapUp != session.BookkeepingTimeout {
		t.Errorf("config.WrapUp = %v, session.BookkeepingTimeout = %v", config.WrapUp, session.BookkeepingTimeout)
	}
	if config.MaxBatch != queue.MaxBatch {
		t.Errorf("config.MaxBatch = %d, queue.MaxBatch = %d", config.MaxBatch, queue.MaxBatch)
	}
}

func verifies(s *ticket.Signer, queueID, user, tk string) bool {
	_, ok := s.Verify(queueID, user, tk)
	return ok
}

// TestQueuesFromConfiguration builds a deployment of two queues from QUEUES (one following
// CAR's Total) in front of one emulated account hosting both projects, and drives it through
// the functions' entry points.
func TestQueuesFromConfiguration(t *testing.T) {
	for _, b := range redistest.Backends(t) {
		t.Run(b.Name, func(t *testing.T) {
			t.Cleanup(instance.reset)
			emu, err := caremu.New(caremu.Options{Projects: map[string]int{"cap-a": 1, "cap-b": 3}, Logger: slog.New(slog.DiscardHandler)})
			if err != nil {
				t.Fatal(err)
			}
			srv := httptest.NewServer(emu)
			t.Cleanup(srv.Close)
			id := redistest.Prefix(t, b.Client) // in every key: queue ids and user ids
			redisEnv := b.Env()
			for k, v := range map[string]string{
				LocalEnv: "1", "REDIS_ADDR": redisEnv["REDIS_ADDR"], "REDIS_PASSWORD": redisEnv["REDIS_PASSWORD"], "REDIS_DB": redisEnv["REDIS_DB"],
				"CAR_ENDPOINT": strings.TrimPrefix(srv.URL, "http://"), "CAR_SCHEME": "http",
				car.EnvSecretID: caremu.LocalSecretID, car.EnvSecretKey: caremu.LocalSecretKey, "ADMIN_TOKEN": "admin-token-for-test",
				"REAPER_RUN_TIME": "30s", "QUEUES": `[{"Id":"` + id + `a","ProjectId":"cap-a","Capacity":1},{"Id":"` + id + `b","ProjectId":"cap-b","Capacity":0}]`,
			} {
				t.Setenv(k, v)
			}
			admin := map[string]string{"Authorization": "Bearer admin-token-for-test"}
			start := func(user string, fields map[string]any) (int, envelope) {
				body := map[string]any{"UserId": id + user, "ClientSession": "cs-" + user}
				for k, v := range fields {
					body[k] = v
				}
				return call(t, "start", body, nil)
			}
			if status, e := start("a1", nil); status != 200 || e.Data["Status"] != "Ready" {
				t.Fatalf("a1 in the default queue: %d %+v", status, e)
			}
			// Queue b's capacity is CAR's Total, unknown until the reaper reads it.
			if status, e := start("b1", map[string]any{"ProjectId": "cap-b"}); status != 200 || e.Data["Status"] != "Queued" {
				t.Fatalf("b1 before CAR's Total: %d %+v", status, e)
			}
			if err := Reaper()(context.Background(), events.TimerEvent{}); err != nil {
				t.Fatalf("reaper: %v", err)
			}
			if st := emu.State(); strings.Join(st.Sessions, ",") != id+"a1,"+id+"b1" {
				t.Fatalf("CAR sessions after the reaper: %v", st.Sessions)
			}
			status, e := call(t, "stats", map[string]any{"QueueId": id + "b"}, admin)
			if status != 200 || e.Data["Capacity"] != 3.0 || e.Data["Ready"] != 1.0 || e.Data["CARTotal"] != 3.0 {
				t.Fatalf("stats of b: %d %+v", status, e)
			}
			status, e = call(t, "stats", nil, admin)
			if qs, _ := e.Data["Queues"].([]any); status != 200 || len(qs) != 2 || e.Data["QueueId"] != id+"a" {
				t.Fatalf("stats: %d %+v", status, e)
			}
			// a1 holds queue a: queue b refuses it.
			if status, e := start("a1", map[string]any{"QueueId": id + "b"}); status != 409 || e.Code != 4090 {
				t.Fatalf("a1 in b: %d %+v", status, e)
			}
		})
	}
}
