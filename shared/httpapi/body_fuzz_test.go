package httpapi

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/carqueue/carqueue/local/caremu"
	"github.com/carqueue/carqueue/shared/queue"
	"github.com/carqueue/carqueue/shared/redistest"
	"github.com/redis/go-redis/v9"
	"github.com/tencentyun/scf-go-lib/events"
)

// fuzzPaths are the paths a fuzzed request goes to (Handler("") routes by the last segment),
// the operator's routes included, and a few that are none.
var fuzzPaths = []string{"/start", "/poll", "/heartbeat", "/reconnect", "/stop", "/stats",
	"/admin/pause", "/admin/resume", "/admin/capacity", "/admin/kick", "/admin/notice",
	"/admin/sessions", "/admin/records", "/", "/nope", "//start", "/a/../poll"}

// snapshot reads every key of the queue as text, to tell whether a request changed anything.
func snapshot(t *testing.T, c redis.UniversalClient, queueID string) map[string]string {
	t.Helper()
	ctx := context.Background()
	out := map[string]string{}
	keys, err := c.Keys(ctx, "cq:{"+queueID+"}:*").Result()
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range keys {
		var v any
		switch c.Type(ctx, k).Val() {
		case "zset":
			v = c.ZRangeWithScores(ctx, k, 0, -1).Val()
		case "hash":
			v = c.HGetAll(ctx, k).Val()
		case "stream":
			v = c.XRange(ctx, k, "-", "+").Val()
		case "list":
			v = c.LRange(ctx, k, 0, -1).Val()
		default:
			v = c.Get(ctx, k).Val()
		}
		out[k] = fmt.Sprint(v)
	}
	return out
}

// FuzzRequest sends any body, to any path, in either SCF event form (API gateway with
// requestContext, or function URL; plain or base64), to the handlers of a queue with a user
// holding its slot and one waiting. Whatever comes in: no panic, no Go error, no 5xx, the
// envelope with JSON and CORS, no secret in the answer, and an answer of 400 or more changes
// nothing in Redis.
func FuzzRequest(f *testing.F) {
	for _, form := range []string{"apigw", "url"} {
		files, _ := filepath.Glob(filepath.Join("testdata", form, "*.json"))
		for _, file := range files {
			b, err := os.ReadFile(file)
			if err != nil {
				f.Fatal(err)
			}
			var ev events.APIGatewayRequest
			if json.Unmarshal(b, &ev) == nil {
				f.Add(uint8(len(file)), ev.Body, form == "url", false)
			}
		}
	}
	f.Add(uint8(0), `{"UserId":"held","ClientSession":"cs","Grant":"x.y"}`, false, false)
	f.Add(uint8(9), `{"UserId":"waiting"}`, true, true)
	f.Add(uint8(8), `{"Capacity":-1}`, false, false)
	f.Add(uint8(10), `{"Notice":"`+strings.Repeat("长", 501)+`"}`, false, false)
	f.Add(uint8(12), `{"After":"0-0","Limit":1001}`, false, false)

	b := redistest.Embedded(f)
	e := newEnv(f, b, envOpts{capacity: 1})
	ctx := context.Background()
	for _, u := range []string{"held", "waiting"} {
		if _, err := e.svc.Start(ctx, u, queue.Client{Session: "cs-" + u}, queue.Trusted); err != nil {
			f.Fatal(err)
		}
	}
	secrets := []string{testSecret, testAdminToken, caremu.LocalSecretKey}

	f.Fuzz(func(t *testing.T, path uint8, body string, urlForm, b64 bool) {
		ev := events.APIGatewayRequest{Path: fuzzPaths[int(path)%len(fuzzPaths)], Method: "POST", Body: body,
			Headers: map[string]string{"content-type": "text/plain", "x-scf-remote-addr": "198.51.100.20"}}
		if path%5 == 0 {
			ev.Method = "GET"
		}
		if path%7 == 0 {
			ev.Headers["authorization"] = "Bearer " + testAdminToken
		}
		if !urlForm {
			ev.Context.SourceIP = "203.0.113.10"
			ev.Context.Path = ev.Path
		}
		if b64 {
			ev.Body = base64.StdEncoding.EncodeToString([]byte(body)) // the event type drops isBase64Encoded; event.go guesses
		}
		before := snapshot(t, b.Client, e.queueID)
		resp, err := e.api.Handler("")(ctx, ev)
		if err != nil {
			t.Fatalf("Go error: %v", err)
		}
		if resp.StatusCode >= 500 {
			t.Fatalf("%d for %s %q: %s", resp.StatusCode, ev.Path, body, resp.Body)
		}
		a := decode(t, resp)
		if a.Header["Access-Control-Allow-Origin"] == "" {
			t.Fatalf("no CORS header: %v", a.Header)
		}
		for _, s := range secrets {
			if strings.Contains(resp.Body, s) {
				t.Fatalf("a secret in the answer: %s", resp.Body)
			}
		}
		if resp.StatusCode >= 400 {
			if after := snapshot(t, b.Client, e.queueID); !maps.Equal(before, after) {
				t.Fatalf("%d for %s %q changed Redis:\nbefore %v\nafter  %v", resp.StatusCode, ev.Path, body, before, after)
			}
		}
	})
}
