package webhook

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/carqueue/carqueue/shared/queue"
	"github.com/carqueue/carqueue/shared/redistest"
	"github.com/carqueue/carqueue/shared/testkit"
)

const secret = "webhook-secret-0123"

// endpoint is a receiver that verifies every signature and can be told to fail.
type endpoint struct {
	mu     sync.Mutex
	got    []Record
	ids    []string
	tried  []string // X-Carqueue-Record of every request, failed ones too
	fail   int      // answer 500 to this many more requests
	hang   bool     // never answer (until the request is cancelled)
	badSig int
}

func (e *endpoint) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	e.mu.Lock()
	defer e.mu.Unlock()
	e.tried = append(e.tried, r.Header.Get("X-Carqueue-Record"))
	if e.hang {
		e.mu.Unlock()
		<-r.Context().Done()
		e.mu.Lock()
		return
	}
	if !Verify(secret, body, r.Header.Get("X-Carqueue-Signature")) {
		e.badSig++
		w.WriteHeader(http.StatusUnauthorized)
		return
	}
	if e.fail > 0 {
		e.fail--
		w.WriteHeader(http.StatusInternalServerError)
		return
	}
	var rec Record
	_ = json.Unmarshal(body, &rec)
	e.got = append(e.got, rec)
	e.ids = append(e.ids, r.Header.Get("X-Carqueue-Record"))
}

func newQueue(t *testing.T, b redistest.Backend, clk *testkit.Clock) *queue.Queue {
	q, err := queue.New(b.Client, queue.Options{QueueID: redistest.Prefix(t, b.Client), Capacity: 1,
		QueueIdleTimeout: time.Minute, HeartbeatTimeout: time.Minute, ReadyTimeout: time.Minute, ClaimLease: time.Minute,
		GoneRetention: time.Minute, RateWindow: time.Minute, Deliver: true, Now: clk.Now})
	if err != nil {
		t.Fatal(err)
	}
	return q
}

// leave makes n users join and stop: n records.
func leave(t *testing.T, q *queue.Queue, users ...string) {
	for _, u := range users {
		if _, err := q.Join(context.Background(), u, queue.Client{}, queue.Trusted); err != nil {
			t.Fatal(err)
		}
		if _, err := q.Stop(context.Background(), u, queue.Trusted); err != nil {
			t.Fatal(err)
		}
	}
}

// TestDeliverAtLeastOnceInOrderWithBackoff: records arrive signed and in order; a failing
// endpoint redelivers the same record after the backoff (kept in Redis, so for every
// instance), and nothing is lost.
func TestDeliverAtLeastOnceInOrderWithBackoff(t *testing.T) {
	for _, b := range redistest.Backends(t) {
		t.Run(b.Name, func(t *testing.T) {
			ctx := context.Background()
			clk := testkit.NewClock()
			q := newQueue(t, b, clk)
			ep := &endpoint{fail: 1}
			srv := httptest.NewServer(ep)
			defer srv.Close()
			logs := &testkit.SyncBuffer{}
			h, err := New(srv.URL, secret, nil, slog.New(slog.NewTextHandler(logs, nil)))
			if err != nil {
				t.Fatal(err)
			}
			leave(t, q, "a", "b", "c")

			n, err := h.Deliver(ctx, "q1", q)
			if err == nil || n != 0 {
				t.Fatalf("first pass against a failing endpoint: %d, %v", n, err)
			}
			// Within the backoff nobody tries again.
			if n, err := h.Deliver(ctx, "q1", q); n != 0 || err != nil {
				t.Fatalf("during the backoff: %d, %v", n, err)
			}
			if st, _ := q.Stats(ctx); st.RecordsPending != 3 {
				t.Fatalf("pending %d, want 3", st.RecordsPending)
			}
			clk.Advance(RetryMin)
			if n, err := h.Deliver(ctx, "q1", q); n != 3 || err != nil {
				t.Fatalf("after the backoff: %d, %v", n, err)
			}
			if len(ep.got) != 3 || ep.got[0].UserId != "a" || ep.got[2].UserId != "c" || ep.got[0].Reason != "stopped" ||
				ep.got[0].QueueId != "q1" || ep.ids[0] != ep.got[0].RecordId || ep.badSig != 0 {
				t.Fatalf("received %+v ids %v bad signatures %d", ep.got, ep.ids, ep.badSig)
			}
			// At least once: the record the endpoint refused came again, under the same id.
			if len(ep.tried) != 4 || ep.tried[0] != ep.ids[0] || ep.tried[1] != ep.ids[0] {
				t.Fatalf("requests for records %v, accepted %v", ep.tried, ep.ids)
			}
			if st, _ := q.Stats(ctx); st.RecordsPending != 0 {
				t.Fatalf("pending %d after delivery", st.RecordsPending)
			}
			if !strings.Contains(logs.String(), "backing off") || strings.Contains(logs.String(), secret) {
				t.Fatalf("the failure's log line is missing or carries the secret:\n%s", logs)
			}
			if n, _ := h.Deliver(ctx, "q1", q); n != 0 {
				t.Fatalf("delivered %d again", n)
			}
		})
	}
}

// TestAHangingEndpointCostsAtMostThePassBudget: a POST that never answers is cut off by the
// request timeout, and the records wait.
func TestAHangingEndpointCostsAtMostThePassBudget(t *testing.T) {
	ctx := context.Background()
	clk := testkit.NewClock()
	q := newQueue(t, redistest.Embedded(t), clk)
	ep := &endpoint{hang: true}
	srv := httptest.NewServer(ep)
	defer srv.Close()
	// A URL with a token in it, as many receivers use: it stays out of the log.
	logs := &testkit.SyncBuffer{}
	h, err := New(srv.URL+"/hooks/tok-SECRETPATH?key=tok-SECRETQUERY", secret, &http.Client{Timeout: 200 * time.Millisecond},
		slog.New(slog.NewTextHandler(logs, nil)))
	if err != nil {
		t.Fatal(err)
	}
	leave(t, q, "a")
	start := time.Now()
	if n, err := h.Deliver(ctx, "q1", q); n != 0 || err == nil {
		t.Fatalf("a hanging endpoint: %d, %v", n, err)
	}
	if d := time.Since(start); d > PassBudget {
		t.Fatalf("took %v, more than the pass budget", d)
	}
	if st, _ := q.Stats(ctx); st.RecordsPending != 1 {
		t.Fatalf("pending %d", st.RecordsPending)
	}
	if l := logs.String(); !strings.Contains(l, "backing off") || strings.Contains(l, "tok-SECRET") || strings.Contains(l, secret) {
		t.Fatalf("the log line is missing or carries the URL's token or the secret:\n%s", l)
	}
}

func TestSignatureAndRecordJSON(t *testing.T) {
	body := []byte(`{"UserId":"a"}`)
	sig := Sign(secret, body)
	if !strings.HasPrefix(sig, "sha256=") || len(sig) != 7+64 || !Verify(secret, body, sig) || Verify("other-secret-0123456", body, sig) {
		t.Fatalf("signature %q", sig)
	}
	j := time.Date(2026, 12, 5, 10, 0, 0, 0, time.UTC)
	r := RecordOf("q", queue.Record{ID: "1-0", UserID: "a", Lane: "vip", JoinedAt: j, AdmittedAt: j.Add(90 * time.Second),
		StartedAt: j.Add(100 * time.Second), EndedAt: j.Add(700 * time.Second), Reason: queue.ReasonStopped, FirstETA: 60 * time.Second})
	if r.WaitedSeconds != 90 || r.PlayedSeconds != 600 || r.JoinedAt != "2026-12-05T10:00:00Z" || r.FirstEtaSeconds != 60 {
		t.Fatalf("record %+v", r)
	}
	b, _ := json.Marshal(RecordOf("q", queue.Record{ID: "2-0", UserID: "b", Reason: queue.ReasonIdle, EndedAt: j}))
	if strings.Contains(string(b), "AdmittedAt") || strings.Contains(string(b), "StartedAt") {
		t.Fatalf("absent times must be left out: %s", b)
	}
	if _, err := New("http://x", "short", nil, nil); err == nil {
		t.Fatal("a short secret was accepted")
	}
}

// TestThePassBudgetBoundsAPassWithoutARequestTimeout: even with a client that never times out
// (an integrator's own), a hanging endpoint holds one pass no longer than the pass budget.
func TestThePassBudgetBoundsAPassWithoutARequestTimeout(t *testing.T) {
	ctx := context.Background()
	q := newQueue(t, redistest.Embedded(t), testkit.NewClock())
	srv := httptest.NewServer(&endpoint{hang: true})
	defer srv.Close()
	h, err := New(srv.URL, secret, &http.Client{}, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	h.budget = 300 * time.Millisecond
	leave(t, q, "a", "b")
	start := time.Now()
	if n, err := h.Deliver(ctx, "q1", q); n != 0 || err == nil {
		t.Fatalf("a hanging endpoint: %d, %v", n, err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("took %v with a budget of %v", d, h.budget)
	}
	if st, _ := q.Stats(ctx); st.RecordsPending != 2 {
		t.Fatalf("pending %d", st.RecordsPending)
	}
}
