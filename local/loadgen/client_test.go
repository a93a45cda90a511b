package loadgen

import (
	"context"
	"errors"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"strconv"
	"sync/atomic"
	"testing"
	"time"
)

// The client retries 503 (honouring Retry-After up to MaxRetryDelay) like a real client, and
// gives up at once on a client error or a refusal for good.
func TestClientRetries(t *testing.T) {
	tests := []struct {
		name      string
		answers   []int // HTTP status per attempt; the last repeats
		code      int   // envelope Code of the failing answers
		wantErr   error
		wantCalls int32
	}{
		{"503 twice then 200", []int{503, 503, 200}, 5030, nil, 3},
		{"refused for good", []int{503}, 5031, errRefused, 1},
		{"bad ticket", []int{401}, 4010, errClient, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var calls atomic.Int32
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				n := int(calls.Add(1)) - 1
				status := tt.answers[min(n, len(tt.answers)-1)]
				code := tt.code
				if status == 200 {
					code = 0
				}
				w.Header().Set("Retry-After", "1")
				w.WriteHeader(status)
				_, _ = w.Write([]byte(`{"Code":` + strconv.Itoa(code) + `,"Msg":"m","Data":{"Status":"Queued"}}`))
			}))
			defer srv.Close()
			m := newMetrics()
			c := &client{bases: []string{srv.URL}, http: srv.Client(), m: m, maxDelay: 5 * time.Millisecond}
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			a, err := c.post(ctx, rand.New(rand.NewPCG(1, 2)), "poll", map[string]any{"UserId": "u"})
			if !errors.Is(err, tt.wantErr) || (err == nil) != (tt.wantErr == nil) {
				t.Fatalf("post = %v, want %v", err, tt.wantErr)
			}
			if err == nil && a.str("Status") != "Queued" {
				t.Errorf("answer %v, want the 200's Data", a.Data)
			}
			if calls.Load() != tt.wantCalls {
				t.Errorf("%d attempts, want %d", calls.Load(), tt.wantCalls)
			}
			_, st, retries := m.snapshot()
			if got := st["poll"][503] + st["poll"][401] + st["poll"][200]; got != int(tt.wantCalls) || retries != int(tt.wantCalls)-1 {
				t.Errorf("recorded statuses %v, %d retries; want %d attempts, %d retries", st, retries, tt.wantCalls, tt.wantCalls-1)
			}
		})
	}
}
