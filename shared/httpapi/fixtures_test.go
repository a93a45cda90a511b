package httpapi

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/carqueue/carqueue/shared/queue"
	"github.com/carqueue/carqueue/shared/redistest"
	"github.com/tencentyun/scf-go-lib/events"
)

// loadEvent reads a fixture as the SCF runtime would hand it to the handler (json.Unmarshal
// into the handler's argument type), after filling in the per-test ticket and token.
func loadEvent(t *testing.T, path, tk string) events.APIGatewayRequest {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	s := strings.NewReplacer("{{TICKET}}", tk, "{{ADMIN_TOKEN}}", testAdminToken).Replace(string(b))
	var ev events.APIGatewayRequest
	if err := json.Unmarshal([]byte(s), &ev); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return ev
}

// TestFixtures drives every route with the event fixtures of both forms (API gateway with
// requestContext; function URL without it), through the one-function-per-route handlers.
func TestFixtures(t *testing.T) {
	eachBackend(t, func(t *testing.T, b redistest.Backend) {
		for _, form := range []struct{ dir, ip string }{{"apigw", "203.0.113.10"}, {"url", "198.51.100.20"}} {
			t.Run(form.dir, func(t *testing.T) {
				e := newEnv(t, b, envOpts{capacity: 1})
				ev := func(route string) events.APIGatewayRequest {
					return loadEvent(t, filepath.Join("testdata", form.dir, route+".json"), e.ticket("fixture-user"))
				}
				a := e.do("start", ev("start"))
				want(t, a, 200, 0, StatusReady)
				if _, ok := e.signer.Verify(e.queueID, "fixture-user", a.Data.Ticket); !ok || a.Data.ServerSession == "" || a.Env.RequestId != "req-start-1" {
					t.Fatalf("start: %+v %s", a.Data, a.Env.RequestId)
				}
				if a.Header["Access-Control-Allow-Origin"] != "*" {
					t.Fatalf("CORS header missing: %v", a.Header)
				}
				st, _ := e.q.Join(context.Background(), "fixture-user", queue.Client{}, queue.Trusted)
				if ip, cs := st.Client.IP, st.Client.Session; ip != form.ip || cs != "cs-fixture-1" {
					t.Fatalf("stored ip %q session %q, want %q", ip, cs, form.ip)
				}
				first := a.Data.ServerSession

				a = e.do("poll", ev("poll"))
				want(t, a, 200, 0, StatusReady)
				if a.Data.ServerSession != first || a.Env.RequestId != "req-poll-1" {
					t.Fatalf("poll: %+v", a.Data)
				}
				a = e.do("heartbeat", ev("heartbeat"))
				want(t, a, 200, 0, StatusActive)
				if a.Data.NextHeartbeatMs != hbTimeout.Milliseconds()/4 {
					t.Fatalf("NextHeartbeatMs %d", a.Data.NextHeartbeatMs)
				}
				a = e.do("reconnect", ev("reconnect"))
				want(t, a, 200, 0, StatusReady)
				if a.Data.ServerSession == "" || a.Data.ServerSession == first {
					t.Fatalf("reconnect must create a new session: %+v", a.Data)
				}
				a = e.do("stats", ev("stats"))
				want(t, a, 200, 0, "")
				if a.Map["Capacity"] != 1.0 || a.Map["AdmittedTotal"].(float64) < 1 {
					t.Fatalf("stats: %v", a.Map)
				}
				a = e.do("stop", ev("stop"))
				want(t, a, 200, 0, StatusStopped)
				if s := e.emu.State(); len(s.Sessions) != 0 || len(s.Locked) != 0 {
					t.Fatalf("session not destroyed at once: %+v", s)
				}
				a = e.do("poll", ev("poll"))
				want(t, a, 200, 0, StatusExpired)
			})
		}
	})
}
