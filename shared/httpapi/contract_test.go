package httpapi

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/carqueue/carqueue/shared/queue"
	"github.com/carqueue/carqueue/shared/redistest"
	"github.com/carqueue/carqueue/shared/session"
	"github.com/carqueue/carqueue/shared/ticket"
	"github.com/redis/go-redis/v9"
	"github.com/tencentyun/scf-go-lib/events"
)

// nothingChanged asserts that the queue is still empty: bad input must not touch it.
func (e *env) nothingChanged() {
	e.t.Helper()
	st, err := e.q.Stats(context.Background())
	if err != nil {
		e.t.Fatal(err)
	}
	if st.Queued+st.Admitting+st.Ready+st.Active+st.Releasing+st.AdmittedTotal != 0 {
		e.t.Fatalf("bad input changed the queue: %+v", st)
	}
	if s := e.emu.State(); len(s.Sessions)+len(s.Locked) != 0 {
		e.t.Fatalf("bad input reached CAR: %+v", s)
	}
}

func TestBadInput(t *testing.T) {
	long := func(n int) string { return strings.Repeat("a", n) }
	okTicket := func(e *env) string { return e.ticket("alice") }
	cases := []struct {
		name   string
		route  string
		body   func(e *env) map[string]any
		status int
		code   int
		msg    string // substring: the field and its limit
	}{
		{"start without UserId", "start", func(e *env) map[string]any { return map[string]any{"ClientSession": "cs"} }, 400, 4001, "UserId: required"},
		{"start empty UserId", "start", func(e *env) map[string]any { return map[string]any{"UserId": "", "ClientSession": "cs"} }, 400, 4001, "UserId: required"},
		{"start UserId 65 chars", "start", func(e *env) map[string]any { return map[string]any{"UserId": long(65), "ClientSession": "cs"} }, 400, 4001, "UserId: at most 64"},
		{"start UserId bad char", "start", func(e *env) map[string]any { return map[string]any{"UserId": "al ice", "ClientSession": "cs"} }, 400, 4001, "[A-Za-z0-9_.@:-]"},
		{"start UserId unicode", "start", func(e *env) map[string]any { return map[string]any{"UserId": "アリス", "ClientSession": "cs"} }, 400, 4001, "UserId"},
		{"start UserId number", "start", func(e *env) map[string]any { return map[string]any{"UserId": 42, "ClientSession": "cs"} }, 400, 4001, "UserId: must be a string"},
		{"start without ClientSession", "start", func(e *env) map[string]any { return map[string]any{"UserId": "alice"} }, 400, 4001, "ClientSession: required"},
		{"start ClientSession 8193", "start", func(e *env) map[string]any { return map[string]any{"UserId": "alice", "ClientSession": long(8193)} }, 400, 4001, "ClientSession: at most 8192"},
		{"start ClientSession object", "start", func(e *env) map[string]any {
			return map[string]any{"UserId": "alice", "ClientSession": map[string]any{}}
		}, 400, 4001, "ClientSession: must be a string"},
		{"start ClientSession control char", "start", func(e *env) map[string]any { return map[string]any{"UserId": "alice", "ClientSession": "a\nb"} }, 400, 4001, "ClientSession: control"},
		{"start other ProjectId", "start", func(e *env) map[string]any {
			return map[string]any{"UserId": "alice", "ClientSession": "cs", "ProjectId": "cap-other"}
		}, 400, 4001, "ProjectId"},
		{"start ProjectId bad chars", "start", func(e *env) map[string]any {
			return map[string]any{"UserId": "alice", "ClientSession": "cs", "ProjectId": "cap/x"}
		}, 400, 4001, "ProjectId: only"},
		{"start ApplicationId not served", "start", func(e *env) map[string]any {
			return map[string]any{"UserId": "alice", "ClientSession": "cs", "ApplicationId": "app-x"}
		}, 400, 4001, "ApplicationId"},
		{"start ApplicationVersionId too long", "start", func(e *env) map[string]any {
			return map[string]any{"UserId": "alice", "ClientSession": "cs", "ApplicationVersionId": long(129)}
		}, 400, 4001, "ApplicationVersionId: at most 128"},
		{"start RequestId too long", "start", func(e *env) map[string]any {
			return map[string]any{"UserId": "alice", "ClientSession": "cs", "RequestId": long(129)}
		}, 400, 4001, "RequestId: at most 128"},
		{"start RequestId with space", "start", func(e *env) map[string]any {
			return map[string]any{"UserId": "alice", "ClientSession": "cs", "RequestId": "a b"}
		}, 400, 4001, "RequestId"},
		{"poll without Ticket", "poll", func(e *env) map[string]any { return map[string]any{"UserId": "alice"} }, 401, 4010, "Ticket: required"},
		{"poll Ticket number", "poll", func(e *env) map[string]any { return map[string]any{"UserId": "alice", "Ticket": 7} }, 401, 4010, "Ticket"},
		{"poll without UserId", "poll", func(e *env) map[string]any { return map[string]any{"Ticket": okTicket(e)} }, 400, 4001, "UserId: required"},
		{"poll ClientSession too long", "poll", func(e *env) map[string]any {
			return map[string]any{"UserId": "alice", "Ticket": okTicket(e), "ClientSession": long(8193)}
		}, 400, 4001, "ClientSession: at most 8192"},
		{"heartbeat without Ticket", "heartbeat", func(e *env) map[string]any { return map[string]any{"UserId": "alice"} }, 401, 4010, "Ticket: required"},
		{"heartbeat bad UserId", "heartbeat", func(e *env) map[string]any { return map[string]any{"UserId": "a/b", "Ticket": okTicket(e)} }, 400, 4001, "UserId"},
		{"reconnect without ClientSession", "reconnect", func(e *env) map[string]any { return map[string]any{"UserId": "alice", "Ticket": okTicket(e)} }, 400, 4001, "ClientSession: required"},
		{"reconnect without Ticket", "reconnect", func(e *env) map[string]any { return map[string]any{"UserId": "alice", "ClientSession": "cs"} }, 401, 4010, "Ticket: required"},
		{"stop without Ticket", "stop", func(e *env) map[string]any { return map[string]any{"UserId": "alice"} }, 401, 4010, "Ticket: required"},
		{"stop null UserId", "stop", func(e *env) map[string]any { return map[string]any{"UserId": nil, "Ticket": okTicket(e)} }, 400, 4001, "UserId: required"},
	}
	eachBackend(t, func(t *testing.T, b redistest.Backend) {
		e := newEnv(t, b, envOpts{capacity: 1})
		for _, tc := range cases {
			t.Run(tc.name, func(t *testing.T) {
				a := e.post(tc.route, tc.body(e))
				if a.Status != tc.status || a.Env.Code != tc.code || !strings.Contains(a.Env.Msg, tc.msg) {
					t.Fatalf("got %d/%d %q; want %d/%d containing %q", a.Status, a.Env.Code, a.Env.Msg, tc.status, tc.code, tc.msg)
				}
				e.nothingChanged()
			})
		}
	})
}

// TestDuplicateKeys: a body that names a field twice is refused with the key named, before
// anything changes: decoders disagree on which copy wins, so such a body means nothing sure.
func TestDuplicateKeys(t *testing.T) {
	e := newEnv(t, redistest.Embedded(t), envOpts{})
	for _, c := range []struct{ body, key string }{
		{`{"UserId":"alice","ClientSession":"cs","UserId":"mallory"}`, `"UserId"`},
		{`{"UserId":"alice","ClientSession":"a","ClientSession":"b"}`, `"ClientSession"`},
		{`{"UserId":"alice","ClientSession":"cs","X":1,"X":{"y":2}}`, `"X"`},
	} {
		a := e.do("start", events.APIGatewayRequest{Method: "POST", Body: c.body})
		if a.Status != 400 || a.Env.Code != 4002 || !strings.Contains(a.Env.Msg, c.key) || !strings.Contains(a.Env.Msg, "more than once") {
			t.Errorf("body %s: got %d/%d %q", c.body, a.Status, a.Env.Code, a.Env.Msg)
		}
	}
	// The same key inside a nested value is no duplicate of the body's fields.
	want(t, e.do("start", events.APIGatewayRequest{Method: "POST",
		Body: `{"UserId":"bob","ClientSession":"cs","Extra":{"UserId":"x"}}`}), 200, 0, StatusReady)
	st, _ := e.q.Stats(context.Background())
	if st.Ready != 1 || st.Queued != 0 {
		t.Fatalf("only bob's valid /start may change the queue: %+v", st)
	}
}

func TestMalformedBodies(t *testing.T) {
	e := newEnv(t, redistest.Embedded(t), envOpts{})
	for _, body := range []string{"", "   ", "not json", "[1,2]", `"str"`, "null", `{"UserId":"a"} {}`, `{"UserId":`, "\xff\xfe"} {
		a := e.do("start", events.APIGatewayRequest{Method: "POST", Body: body})
		if a.Status != 400 || a.Env.Code != 4002 || !strings.HasPrefix(a.Env.Msg, "body:") {
			t.Errorf("body %q: got %d/%d %q", body, a.Status, a.Env.Code, a.Env.Msg)
		}
	}
	e.nothingChanged()
}

func TestTickets(t *testing.T) {
	eachBackend(t, func(t *testing.T, b redistest.Backend) {
		e := newEnv(t, b, envOpts{capacity: 1})
		want(t, e.start("alice", "cs-a"), 200, 0, StatusReady)
		want(t, e.start("bob", "cs-b"), 200, 0, StatusQueued)
		aliceTicket := e.ticket("alice")
		forged := []byte(aliceTicket)
		forged[5] ^= 1
		otherQueue, _ := ticket.New(testSecret, "")
		otherSecret, _ := ticket.New("some-other-secret-0123456789", "")
		bad := map[string]string{
			"bob's ticket":       e.ticket("bob"),
			"forged":             string(forged),
			"other queue":        mustIssue(t, otherQueue, e.queueID+"x", "alice"),
			"other secret":       mustIssue(t, otherSecret, e.queueID, "alice"),
			"garbage":            "hello",
			"too long":           strings.Repeat("v", 300),
			"ticket with spaces": " " + aliceTicket,
		}
		for name, tk := range bad {
			for _, route := range []string{"poll", "heartbeat", "reconnect", "stop"} {
				a := e.post(route, map[string]any{"UserId": "alice", "Ticket": tk, "ClientSession": "cs-x"})
				if a.Status != 401 || a.Env.Code != 4010 || !strings.Contains(a.Env.Msg, "Ticket") {
					t.Fatalf("%s on /%s: got %d/%d %q", name, route, a.Status, a.Env.Code, a.Env.Msg)
				}
			}
		}
		// Nothing changed for alice: still Ready with the session she got.
		want(t, e.poll("alice"), 200, 0, StatusReady)
		if s := e.emu.State(); len(s.Sessions) != 1 {
			t.Fatalf("sessions %v", s.Sessions)
		}
	})
}

func TestTicketRotation(t *testing.T) {
	old, _ := ticket.New("old-secret-0123456789", "")
	rotating, _ := ticket.New(testSecret, "old-secret-0123456789")
	e := newEnv(t, redistest.Embedded(t), envOpts{deps: func(d *Deps) { d.Tickets = rotating }})
	want(t, e.start("alice", "cs"), 200, 0, StatusReady)
	join, ok := rotating.Verify(e.queueID, "alice", e.ticket("alice"))
	if !ok {
		t.Fatal("the ticket /start gave does not verify")
	}
	oldTicket, err := old.Issue(e.queueID, "alice", join)
	if err != nil {
		t.Fatal(err)
	}
	a := e.post("heartbeat", map[string]any{"UserId": "alice", "Ticket": oldTicket})
	want(t, a, 200, 0, StatusActive)
	a = e.post("heartbeat", map[string]any{"UserId": "bob", "Ticket": oldTicket})
	if a.Status != 401 {
		t.Fatalf("previous-secret ticket of another user accepted: %d", a.Status)
	}
}

func TestBodySize(t *testing.T) {
	e := newEnv(t, redistest.Embedded(t), envOpts{capacity: 1})
	// Exactly 16 KiB, padded with JSON whitespace, is accepted; one byte more is not.
	base := `{"UserId":"alice","ClientSession":"cs"}`
	exact := base[:len(base)-1] + strings.Repeat(" ", MaxBody-len(base)) + "}"
	a := e.do("start", events.APIGatewayRequest{Method: "POST", Body: exact})
	want(t, a, 200, 0, StatusReady)
	a = e.do("start", events.APIGatewayRequest{Method: "POST", Body: exact + " "})
	if a.Status != 413 || a.Env.Code != 4130 || !strings.Contains(a.Env.Msg, "16384") {
		t.Fatalf("got %d/%d %q", a.Status, a.Env.Code, a.Env.Msg)
	}
	huge := strings.Repeat("x", 1<<20)
	if a := e.do("poll", events.APIGatewayRequest{Method: "POST", Body: huge}); a.Status != 413 {
		t.Fatalf("1 MiB: %d", a.Status)
	}
	// Too large after base64 decoding.
	enc := base64.StdEncoding.EncodeToString([]byte(exact + " "))
	if a := e.do("poll", events.APIGatewayRequest{Method: "POST", Body: enc}); a.Status != 413 {
		t.Fatalf("base64 of 16 KiB + 1: %d %q", a.Status, a.Env.Msg)
	}
}

// TestLongestClientSession: the largest ClientSession the contract allows is stored and
// handed to CAR whole (the queue stores the client IP beside it).
func TestLongestClientSession(t *testing.T) {
	eachBackend(t, func(t *testing.T, b redistest.Backend) {
		if MaxClientSession != queue.MaxClientSession {
			t.Fatalf("the contract allows %d characters of ClientSession, the queue %d", MaxClientSession, queue.MaxClientSession)
		}
		e := newEnv(t, b, envOpts{capacity: 1})
		cs := strings.Repeat("s", MaxClientSession)
		want(t, e.start("alice", cs), 200, 0, StatusReady)
		want(t, e.start("bob", cs), 200, 0, StatusQueued)
		want(t, e.reconnect("alice", strings.Repeat("t", MaxClientSession)), 200, 0, StatusReady)
	})
}

func TestCORS(t *testing.T) {
	e := newEnv(t, redistest.Embedded(t), envOpts{})
	for _, route := range Routes {
		a := e.do(route, events.APIGatewayRequest{Method: "OPTIONS", Headers: map[string]string{
			"Origin": "https://game.example.com", "Access-Control-Request-Method": "POST"}})
		if a.Status != 200 || a.Env.Code != 0 || a.Header["Access-Control-Allow-Origin"] != "*" ||
			!strings.Contains(a.Header["Access-Control-Allow-Methods"], "POST") ||
			!strings.Contains(a.Header["Access-Control-Allow-Headers"], "Content-Type") {
			t.Fatalf("preflight /%s: %d %v", route, a.Status, a.Header)
		}
	}
	e.nothingChanged()

	e2 := newEnv(t, redistest.Embedded(t), envOpts{deps: func(d *Deps) { d.CORSOrigin = "https://game.example.com" }})
	for _, a := range []answer{
		e2.start("alice", "cs"),
		e2.post("nope", map[string]any{}),
		e2.do("start", events.APIGatewayRequest{Method: "OPTIONS"}),
	} {
		if a.Header["Access-Control-Allow-Origin"] != "https://game.example.com" || a.Header["Vary"] != "Origin" {
			t.Fatalf("configured origin missing: %v", a.Header)
		}
	}
}

func TestUnknownPathAndMethod(t *testing.T) {
	e := newEnv(t, redistest.Embedded(t), envOpts{})
	body := `{"UserId":"alice","ClientSession":"cs"}`
	notFound := []struct{ route, path string }{
		{"", "/nope"}, {"", "/"}, {"", "/start/extra"}, {"start", "/poll"}, {"start", "/release/stop"}, {"bogus", "/bogus"},
	}
	for _, c := range notFound {
		a := e.do(c.route, events.APIGatewayRequest{Method: "POST", Path: c.path, Body: body})
		if a.Status != 404 || a.Env.Code != 4040 || !strings.Contains(a.Env.Msg, "path") {
			t.Fatalf("handler %q path %q: %d/%d %q", c.route, c.path, a.Status, a.Env.Code, a.Env.Msg)
		}
	}
	methods := []struct{ route, method, allow string }{
		{"start", "GET", "POST, OPTIONS"}, {"poll", "PUT", "POST, OPTIONS"}, {"heartbeat", "DELETE", "POST, OPTIONS"},
		{"reconnect", "GET", "POST, OPTIONS"}, {"stop", "PATCH", "POST, OPTIONS"}, {"stats", "DELETE", "GET, POST, OPTIONS"},
	}
	for _, c := range methods {
		a := e.do(c.route, events.APIGatewayRequest{Method: c.method, Path: "/" + c.route, Body: body})
		if a.Status != 405 || a.Env.Code != 4050 || a.Header["Allow"] != c.allow || !strings.Contains(a.Env.Msg, c.method) {
			t.Fatalf("%s /%s: %d/%d %q Allow %q", c.method, c.route, a.Status, a.Env.Code, a.Env.Msg, a.Header["Allow"])
		}
	}
	// Paths a deployment may put in front of the route, and the router form.
	for _, c := range []struct{ route, path string }{{"start", ""}, {"start", "/"}, {"start", "/release/start"}, {"start", "/start/"}, {"", "/start"}, {"", "/prod/start"}} {
		a := e.do(c.route, events.APIGatewayRequest{Method: "post", Path: c.path, Body: body})
		if a.Status != 200 {
			t.Fatalf("handler %q path %q: %d %q", c.route, c.path, a.Status, a.Env.Msg)
		}
	}
	e.nothingChangedExceptAlice()
}

func (e *env) nothingChangedExceptAlice() {
	e.t.Helper()
	st, _ := e.q.Stats(context.Background())
	if st.Queued+st.Admitting+st.Ready+st.Active > 1 {
		e.t.Fatalf("more than alice in the queue: %+v", st)
	}
}

func TestRequestID(t *testing.T) {
	e := newEnv(t, redistest.Embedded(t), envOpts{})
	a := e.post("start", map[string]any{"UserId": "alice", "ClientSession": "cs", "RequestId": "my-req-42"})
	if a.Env.RequestId != "my-req-42" {
		t.Fatalf("RequestId not echoed: %q", a.Env.RequestId)
	}
	a = e.post("poll", map[string]any{"UserId": "alice", "RequestId": "my-req-43"}) // 401, still echoed
	if a.Status != 401 || a.Env.RequestId != "my-req-43" {
		t.Fatalf("RequestId not echoed on an error: %d %q", a.Status, a.Env.RequestId)
	}
	gen := regexp.MustCompile(`^[0-9a-f]{24}$`)
	ids := map[string]bool{}
	for _, ev := range []events.APIGatewayRequest{
		{Method: "POST", Body: `{"UserId":"alice","ClientSession":"cs"}`},
		{Method: "POST", Body: `{`},
		{Method: "POST", Body: strings.Repeat(" ", MaxBody+1)},
		{Method: "GET"},
	} {
		a := e.do("start", ev)
		if !gen.MatchString(a.Env.RequestId) || ids[a.Env.RequestId] {
			t.Fatalf("generated RequestId %q (HTTP %d)", a.Env.RequestId, a.Status)
		}
		ids[a.Env.RequestId] = true
	}
	// Every request's log line carries its RequestId.
	for id := range ids {
		if !strings.Contains(e.logs.String(), `"request_id":"`+id+`"`) {
			t.Fatalf("RequestId %s not logged", id)
		}
	}
	if !strings.Contains(e.logs.String(), `"request_id":"my-req-42"`) {
		t.Fatal("caller's RequestId not logged")
	}
}

// TestLogLine: one JSON line per request with route, status, code, duration, UserId and
// RequestId, and never a ticket, ClientSession, ServerSession or token.
func TestLogLine(t *testing.T) {
	e := newEnv(t, redistest.Embedded(t), envOpts{})
	a := e.post("start", map[string]any{"UserId": "alice", "ClientSession": "secret-client-session", "RequestId": "r1"})
	want(t, a, 200, 0, StatusReady)
	e.heartbeat("alice")
	e.stats()
	e.post("stats", map[string]any{})
	var lines []map[string]any
	for _, l := range strings.Split(e.logs.String(), "\n") {
		var m map[string]any
		if json.Unmarshal([]byte(l), &m) == nil && m["msg"] == "request" {
			lines = append(lines, m)
		}
	}
	if len(lines) != 4 {
		t.Fatalf("want 4 request lines, got %d", len(lines))
	}
	first := lines[0]
	for k, v := range map[string]any{"route": "start", "status": 200.0, "code": 0.0, "user_id": "alice", "request_id": "r1", "outcome": "Ready"} {
		if first[k] != v {
			t.Fatalf("log %s = %v, want %v (%v)", k, first[k], v, first)
		}
	}
	if _, ok := first["duration_ms"].(float64); !ok {
		t.Fatalf("no duration: %v", first)
	}
	if lines[3]["status"] != 401.0 || lines[3]["code"] != 4011.0 {
		t.Fatalf("stats without token: %v", lines[3])
	}
	all := e.logs.String()
	for _, secret := range []string{e.ticket("alice"), "secret-client-session", a.Data.ServerSession, testAdminToken, testSecret} {
		if strings.Contains(all, secret) {
			t.Fatalf("log contains a secret %q", secret)
		}
	}
}

func TestBase64Body(t *testing.T) {
	e := newEnv(t, redistest.Embedded(t), envOpts{capacity: 1})
	raw := `{"UserId":"alice","ClientSession":"cs","RequestId":"b64"}`
	for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.URLEncoding, base64.RawStdEncoding} {
		a := e.do("start", events.APIGatewayRequest{Method: "POST", Body: enc.EncodeToString([]byte(raw))})
		want(t, a, 200, 0, StatusReady)
		if a.Env.RequestId != "b64" {
			t.Fatalf("RequestId %q", a.Env.RequestId)
		}
	}
	// The gateway's own event, isBase64Encoded included, as the runtime decodes it.
	ev := loadEvent(t, "testdata/apigw/start.json", "")
	ev.Body = base64.StdEncoding.EncodeToString([]byte(`{"UserId":"bob","ClientSession":"cs"}`))
	want(t, e.do("start", ev), 200, 0, StatusQueued)
	// A UTF-8 byte order mark is tolerated.
	want(t, e.do("start", events.APIGatewayRequest{Method: "POST", Body: "\ufeff" + `{"UserId":"carol","ClientSession":"cs"}`}), 200, 0, StatusQueued)
	// Base64 of something that is not a JSON object stays a bad body.
	a := e.do("start", events.APIGatewayRequest{Method: "POST", Body: base64.StdEncoding.EncodeToString([]byte("[1]"))})
	if a.Status != 400 || a.Env.Code != 4002 {
		t.Fatalf("got %d/%d", a.Status, a.Env.Code)
	}
}

func TestClientIPOrder(t *testing.T) {
	cases := []struct {
		name     string
		sourceIP string
		headers  map[string]string
		want     string
	}{
		{"api gateway sourceIp first", "203.0.113.1", map[string]string{"x-scf-remote-addr": "198.51.100.1", "x-forwarded-for": "192.0.2.1"}, "203.0.113.1"},
		{"function url header next", "", map[string]string{"x-scf-remote-addr": "198.51.100.1", "x-forwarded-for": "192.0.2.1"}, "198.51.100.1"},
		{"header case-insensitive", "", map[string]string{"X-SCF-Remote-Addr": "198.51.100.2"}, "198.51.100.2"},
		{"with a port", "", map[string]string{"x-scf-remote-addr": "198.51.100.3:51234"}, "198.51.100.3"},
		{"ipv6", "", map[string]string{"x-scf-remote-addr": "[2001:db8::1]:443"}, "2001:db8::1"},
		{"x-forwarded-for last, first entry", "", map[string]string{"X-Forwarded-For": "192.0.2.7, 10.0.0.1"}, "192.0.2.7"},
		{"garbage sourceIp skipped", "not-an-ip", map[string]string{"x-scf-remote-addr": "198.51.100.4"}, "198.51.100.4"},
		{"none", "", map[string]string{}, ""},
	}
	e := newEnv(t, redistest.Embedded(t), envOpts{capacity: 50})
	for i, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			user := "ip-user-" + string(rune('a'+i))
			ev := events.APIGatewayRequest{Method: "POST", Headers: c.headers,
				Body: `{"UserId":"` + user + `","ClientSession":"cs"}`}
			ev.Context.SourceIP = c.sourceIP
			want(t, e.do("start", ev), 200, 0, StatusReady)
			st, err := e.q.Join(context.Background(), user, queue.Client{}, queue.Trusted)
			if err != nil {
				t.Fatal(err)
			}
			if ip := st.Client.IP; ip != c.want {
				t.Fatalf("stored IP %q, want %q", ip, c.want)
			}
		})
	}
}

func TestStatsAuth(t *testing.T) {
	e := newEnv(t, redistest.Embedded(t), envOpts{capacity: 3})
	e.start("alice", "cs")
	e.start("bob", "cs")
	for _, h := range []map[string]string{
		nil,
		{"Authorization": "Bearer wrong"},
		{"Authorization": testAdminToken},
		{"Authorization": "Basic " + testAdminToken},
		{"Authorization": "Bearer " + testAdminToken + "x"},
	} {
		a := e.do("stats", events.APIGatewayRequest{Method: "GET", Headers: h})
		if a.Status != 401 || a.Env.Code != 4011 {
			t.Fatalf("%v: %d/%d", h, a.Status, a.Env.Code)
		}
	}
	for _, h := range []map[string]string{{"authorization": "bearer " + testAdminToken}, {"AUTHORIZATION": "Bearer  " + testAdminToken + " "}} {
		for _, m := range []string{"GET", "POST"} {
			a := e.do("stats", events.APIGatewayRequest{Method: m, Headers: h})
			want(t, a, 200, 0, "")
			for _, k := range []string{"Queued", "Admitting", "Ready", "Active", "Capacity", "AdmittedTotal", "ReapedTotal",
				"Releasing", "ReapedByReason", "AdmissionsPerMinute", "Holding", "Free", "QueueId"} {
				if _, ok := a.Map[k]; !ok {
					t.Fatalf("stats lacks %s: %v", k, a.Map)
				}
			}
			if a.Map["Ready"] != 2.0 || a.Map["Capacity"] != 3.0 || a.Map["Free"] != 1.0 || a.Map["AdmittedTotal"] != 2.0 {
				t.Fatalf("stats %v", a.Map)
			}
		}
	}
	off := newEnv(t, redistest.Embedded(t), envOpts{deps: func(d *Deps) { d.AdminToken = "" }})
	a := off.do("stats", events.APIGatewayRequest{Method: "GET", Headers: map[string]string{"Authorization": "Bearer "}})
	if a.Status != 401 || !strings.Contains(a.Env.Msg, "ADMIN_TOKEN") {
		t.Fatalf("stats with no token configured: %d %q", a.Status, a.Env.Msg)
	}
}

// panicky is a session service that panics, to check the 500 answer.
type panicky struct{}

func (panicky) Start(context.Context, string, queue.Client, queue.Proof) (session.View, error) {
	panic("boom")
}
func (panicky) Poll(_ context.Context, user string, _ queue.Client, _ queue.Proof) (session.View, error) {
	panic("boom with user " + user)
}
func (panicky) Reconnect(context.Context, string, queue.Client, queue.Proof) (session.View, error) {
	panic("boom")
}
func (panicky) Heartbeat(context.Context, string, queue.Proof) (session.View, error) { panic("boom") }
func (panicky) Stop(context.Context, string, queue.Proof) (session.Stopped, error)   { panic("boom") }
func (panicky) Stats(context.Context) (queue.Stats, error)                           { panic("boom") }

func TestUnavailableAndPanic(t *testing.T) {
	// A Redis that refuses connections: every route that needs it answers 503 with
	// Retry-After, and the address stays out of the answer.
	down := redis.NewClient(&redis.Options{Addr: "127.0.0.1:1", MaxRetries: -1, DialTimeout: time.Second})
	t.Cleanup(func() { _ = down.Close() })
	e := newEnv(t, redistest.Backend{Name: "down", Client: down}, envOpts{})
	for _, a := range []answer{e.start("alice", "cs"), e.poll("alice"), e.stats()} {
		if a.Status != 503 || a.Env.Code != 5030 || a.Header["Retry-After"] == "" || strings.Contains(a.Env.Msg, "127.0.0.1") {
			t.Fatalf("got %d/%d %q %v", a.Status, a.Env.Code, a.Env.Msg, a.Header)
		}
	}
	// Bad input still answers 400 while Redis is down.
	if a := e.post("start", map[string]any{"UserId": "x y"}); a.Status != 400 {
		t.Fatalf("bad input while down: %d", a.Status)
	}

	signer, _ := ticket.New(testSecret, "")
	api, err := New(Deps{Sessions: panicky{}, Tickets: signer, QueueID: "q", Logger: e.logger})
	if err != nil {
		t.Fatal(err)
	}
	p := &env{t: t, api: api, signer: signer, queueID: "q", tickets: map[string]string{}}
	a := p.post("poll", map[string]any{"UserId": "alice", "Ticket": p.ticket("alice"), "RequestId": "panicky"})
	if a.Status != 500 || a.Env.Code != 5000 || a.Env.Msg != "internal error" || a.Env.RequestId != "panicky" {
		t.Fatalf("panic: %d/%d %q %q", a.Status, a.Env.Code, a.Env.Msg, a.Env.RequestId)
	}
	if strings.Contains(a.Env.Msg, "boom") {
		t.Fatal("panic detail leaked to the client")
	}
}

// TestCARRefused: CAR refusing for good (here: wrong credentials) is a 503 of its own, not a
// business outcome, and the user leaves the line.
func TestCARRefused(t *testing.T) {
	e := newEnv(t, redistest.Embedded(t), envOpts{carSecret: "wrong-secret-key"})
	a := e.start("alice", "cs")
	if a.Status != 503 || a.Env.Code != 5031 || a.Header["Retry-After"] == "" {
		t.Fatalf("got %d/%d %q", a.Status, a.Env.Code, a.Env.Msg)
	}
	want(t, e.poll("alice"), 200, 0, StatusExpired)
	e.checkCapacity(1)
}

// TestIdentity is API.md's "Identity (second edition)": a ticket is per join and revoked when
// the join ends; a /start for a known UserId without its current ticket or a valid grant
// changes nothing and returns no ticket; a grant re-issues the ticket.
func TestIdentity(t *testing.T) {
	eachBackend(t, func(t *testing.T, b redistest.Backend) {
		const grantSecret = "grant-secret-0123456789"
		e := newEnv(t, b, envOpts{capacity: 1, deps: func(d *Deps) { d.Grants = ticket.NewGrants(grantSecret) }})
		ctx := context.Background()
		want(t, e.start("alice", "cs-a"), 200, 0, StatusReady)
		aliceTicket := e.ticket("alice")
		want(t, e.start("bob", "cs-b"), 200, 0, StatusQueued)
		sessions := func() []string { return e.emu.State().Sessions }
		before := sessions()

		// A stranger's /start for a holder and for a queued user: their status, no ticket,
		// no ServerSession, nothing refreshed, nothing re-attached.
		for _, c := range []struct{ user, status string }{{"alice", StatusReady}, {"bob", StatusQueued}} {
			a := e.post("start", map[string]any{"UserId": c.user, "ClientSession": "cs-mallory"})
			want(t, a, 200, 0, c.status)
			if a.Data.Ticket != "" || a.Data.ServerSession != "" || a.Data.NextHeartbeatMs != 0 {
				t.Fatalf("a stranger got %s's ticket or session: %+v", c.user, a.Data)
			}
			st, _ := e.q.Join(ctx, c.user, queue.Client{}, queue.Trusted)
			if st.Client.Session == "cs-mallory" {
				t.Fatalf("a stranger refreshed %s's ClientSession", c.user)
			}
		}
		if a := e.post("start", map[string]any{"UserId": "bob", "ClientSession": "x"}); a.Data.Position != 1 {
			t.Fatalf("bob's place changed: %+v", a.Data)
		}
		if got := sessions(); !slices.Equal(got, before) {
			t.Fatalf("CAR sessions changed by strangers: %v → %v", before, got)
		}
		// A stale ticket on /start is no proof either.
		if a := e.post("start", map[string]any{"UserId": "alice", "ClientSession": "x", "Ticket": mustIssue(t, e.signer, e.queueID, "alice")}); a.Data.Ticket != "" {
			t.Fatalf("a ticket of another join got a new ticket: %+v", a.Data)
		}

		// Alice's own ticket works; after her stop it is revoked for her next join.
		want(t, e.post("heartbeat", map[string]any{"UserId": "alice", "Ticket": aliceTicket}), 200, 0, StatusActive)
		want(t, e.post("stop", map[string]any{"UserId": "alice", "Ticket": aliceTicket}), 200, 0, StatusStopped)
		e.mu.Lock()
		delete(e.tickets, "alice")
		e.mu.Unlock()
		e.clock.Advance(cleanupDelay)
		want(t, e.start("alice", "cs-a2"), 200, 0, StatusQueued) // behind bob, who waits at the head
		for _, route := range []string{"poll", "heartbeat", "reconnect", "stop"} {
			a := e.post(route, map[string]any{"UserId": "alice", "Ticket": aliceTicket, "ClientSession": "cs-x"})
			if a.Status != 401 || a.Env.Code != 4010 || !strings.Contains(a.Env.Msg, "earlier join") {
				t.Fatalf("/%s with the ticket of an earlier join: %d/%d %q", route, a.Status, a.Env.Code, a.Env.Msg)
			}
		}
		second := e.ticket("alice")
		want(t, e.post("poll", map[string]any{"UserId": "alice", "Ticket": second}), 200, 0, StatusQueued)

		// A grant (another device of alice's) re-issues: the old ticket stops working, the
		// place stays.
		grant := ticket.Sign(grantSecret, ticket.Grant{UserID: "alice", Exp: e.clock.Now().Add(time.Minute)})
		a := e.post("start", map[string]any{"UserId": "alice", "ClientSession": "cs-a3", "Grant": grant})
		want(t, a, 200, 0, StatusQueued)
		if a.Data.Ticket == "" || a.Data.Position != 2 {
			t.Fatalf("grant: %+v", a.Data)
		}
		if a := e.post("poll", map[string]any{"UserId": "alice", "Ticket": second}); a.Status != 401 {
			t.Fatalf("the ticket a grant replaced still works: %d", a.Status)
		}
		want(t, e.post("poll", map[string]any{"UserId": "alice", "Ticket": a.Data.Ticket}), 200, 0, StatusQueued)

		// Bad grants: 401, nothing changes.
		for name, g := range map[string]string{
			"expired": ticket.Sign(grantSecret, ticket.Grant{UserID: "alice", Exp: e.clock.Now()}),
			"foreign": ticket.Sign(grantSecret, ticket.Grant{UserID: "bob", Exp: e.clock.Now().Add(time.Minute)}),
			"forged":  ticket.Sign("another-secret-0123456789", ticket.Grant{UserID: "alice", Exp: e.clock.Now().Add(time.Minute)}),
			"lane":    ticket.Sign(grantSecret, ticket.Grant{UserID: "alice", Lane: "vip", Exp: e.clock.Now().Add(time.Minute)}),
		} {
			a := e.post("start", map[string]any{"UserId": "alice", "ClientSession": "cs", "Grant": g})
			if a.Status != 401 || a.Env.Code != 4010 || !strings.HasPrefix(a.Env.Msg, "Grant: ") {
				t.Fatalf("%s grant: %d/%d %q", name, a.Status, a.Env.Code, a.Env.Msg)
			}
		}
	})
}

// TestRequireGrant: with REQUIRE_GRANT every /start needs a valid grant for its UserId.
func TestRequireGrant(t *testing.T) {
	const grantSecret = "grant-secret-0123456789"
	e := newEnv(t, redistest.Embedded(t), envOpts{deps: func(d *Deps) {
		d.Grants, d.RequireGrant = ticket.NewGrants(grantSecret), true
	}})
	a := e.post("start", map[string]any{"UserId": "alice", "ClientSession": "cs"})
	if a.Status != 401 || !strings.Contains(a.Env.Msg, "REQUIRE_GRANT") {
		t.Fatalf("no grant: %d %q", a.Status, a.Env.Msg)
	}
	e.nothingChanged()
	g := ticket.Sign(grantSecret, ticket.Grant{UserID: "alice", Lane: "default", Exp: e.clock.Now().Add(time.Minute)})
	a = e.post("start", map[string]any{"UserId": "alice", "ClientSession": "cs", "Grant": g})
	want(t, a, 200, 0, StatusReady)
	if a.Data.Ticket == "" {
		t.Fatal("no ticket with a valid grant")
	}
}
