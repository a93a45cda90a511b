package httpapi

import (
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"testing"

	"github.com/carqueue/carqueue/shared/redistest"
)

// nopWriter is the cheapest http.ResponseWriter: one header map, reused.
type nopWriter struct {
	h      http.Header
	status int
}

func (w *nopWriter) Header() http.Header         { return w.h }
func (w *nopWriter) WriteHeader(s int)           { w.status = s }
func (w *nopWriter) Write(b []byte) (int, error) { return len(b), nil }

// BenchmarkServeHTTPPoll measures one /poll of a queued user through ServeHTTP, the server
// mode's path, with the request log at warn as the server mode runs it. Run with REDIS_ADDR
// set to measure against a real redis-server.
func BenchmarkServeHTTPPoll(b *testing.B) {
	be := redistest.Embedded(b)
	if real, ok := redistest.Real(b); ok {
		be = real
	}
	quiet := slog.New(slog.NewJSONHandler(io.Discard, &slog.HandlerOptions{Level: slog.LevelWarn}))
	e := newEnv(b, be, envOpts{capacity: 1, deps: func(d *Deps) { d.Logger = quiet }})
	for i := 0; i < 100; i++ {
		e.start(fmt.Sprintf("b%03d", i), "cs")
	}
	body, _ := json.Marshal(map[string]any{"UserId": "b050", "Ticket": e.ticket("b050")})
	req, _ := http.NewRequest(http.MethodPost, "http://x/poll", nil)
	req.RemoteAddr = "198.51.100.7:4242"
	req.Header.Set("Content-Type", "application/json")
	w := &nopWriter{h: http.Header{}}
	r := strings.NewReader("")
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		r.Reset(string(body))
		req.Body = io.NopCloser(r)
		clear(w.h)
		e.api.ServeHTTP(w, req)
		if w.status != 200 {
			b.Fatalf("status %d", w.status)
		}
	}
}
