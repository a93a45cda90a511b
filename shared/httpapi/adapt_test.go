package httpapi

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/carqueue/carqueue/shared/queue"
	"github.com/carqueue/carqueue/shared/redistest"
)

// TestAdapt serves the router over net/http, as the local harness does.
func TestAdapt(t *testing.T) {
	e := newEnv(t, redistest.Embedded(t), envOpts{capacity: 1})
	srv := httptest.NewServer(Adapt(e.api.Handler("")))
	t.Cleanup(srv.Close)

	resp, err := http.Post(srv.URL+"/start", "text/plain;charset=UTF-8", strings.NewReader(`{"UserId":"alice","ClientSession":"cs"}`))
	if err != nil {
		t.Fatal(err)
	}
	var env struct {
		Code int
		Data Data
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err := json.Unmarshal(b, &env); err != nil || resp.StatusCode != 200 || env.Data.Status != StatusReady ||
		resp.Header.Get("Content-Type") != "application/json" || resp.Header.Get("Access-Control-Allow-Origin") != "*" {
		t.Fatalf("%d %s %v", resp.StatusCode, b, resp.Header)
	}
	st, _ := e.q.Join(context.Background(), "alice", queue.Client{}, queue.Trusted)
	if ip := st.Client.IP; ip != "127.0.0.1" {
		t.Fatalf("peer address not used as the client IP: %q", ip)
	}

	req, _ := http.NewRequest(http.MethodOptions, srv.URL+"/poll", nil)
	req.Header.Set("Origin", "http://example.com")
	req.Header.Set("Access-Control-Request-Method", "POST")
	resp, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 || resp.Header.Get("Access-Control-Allow-Methods") == "" {
		t.Fatalf("preflight %d %v", resp.StatusCode, resp.Header)
	}

	resp, err = http.Post(srv.URL+"/poll", "application/json", strings.NewReader(strings.Repeat(" ", 1<<20)))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 413 {
		t.Fatalf("1 MiB body: %d", resp.StatusCode)
	}
	resp, err = http.Get(srv.URL + "/nope")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 404 {
		t.Fatalf("unknown path: %d", resp.StatusCode)
	}
}
