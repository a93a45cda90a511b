// Package webhook delivers a queue's session records to the business's own endpoint
// (WEBHOOK_URL), at least once each, in order, signed with WEBHOOK_SECRET: the receiver checks
// `X-Carqueue-Signature: sha256=<hex HMAC-SHA256(secret, body)>` and drops repeats by
// `X-Carqueue-Record`. The reaper calls Deliver for a queue whose records wait (queue.Due); a
// failure puts every instance off with a backoff kept in Redis, so a down endpoint costs one
// request per backoff and never slows admission, and nothing is lost while the records stay
// within RECORDS_MAX.
//
// It also owns the JSON form of a record, which /admin/records answers too.
package webhook

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"time"

	"github.com/carqueue/carqueue/shared/queue"
)

// Limits of one delivery pass. They bound what a down or slow endpoint can cost the reaper;
// they are not settings.
const (
	// RequestTimeout bounds one POST.
	RequestTimeout = 5 * time.Second
	// PassBudget bounds one Deliver call for one queue.
	PassBudget = 10 * time.Second
	// Batch is the most records read per page.
	Batch = 100
	// RetryMin and RetryMax bound the backoff after a failed POST.
	RetryMin, RetryMax = time.Second, 5 * time.Minute
)

// Record is a session record as JSON (API.md "Session records"): times RFC 3339 UTC, absent
// where they never happened.
type Record struct {
	RecordId      string  `json:"RecordId"`
	UserId        string  `json:"UserId"`
	QueueId       string  `json:"QueueId"`
	Lane          string  `json:"Lane"`
	JoinedAt      string  `json:"JoinedAt,omitempty"`
	AdmittedAt    string  `json:"AdmittedAt,omitempty"`
	StartedAt     string  `json:"StartedAt,omitempty"`
	EndedAt       string  `json:"EndedAt,omitempty"`
	Reason        string  `json:"Reason"`
	WaitedSeconds float64 `json:"WaitedSeconds"`
	PlayedSeconds float64 `json:"PlayedSeconds"`
	// FirstEtaSeconds is the wait the user was first told (absent: none was given).
	FirstEtaSeconds int64 `json:"FirstEtaSeconds,omitempty"`
}

// RecordOf renders a record: WaitedSeconds from joining to admission (or to leaving, for a
// user never admitted), PlayedSeconds from the first heartbeat to the end.
func RecordOf(queueID string, r queue.Record) Record {
	ts := func(t time.Time) string {
		if t.IsZero() {
			return ""
		}
		return t.UTC().Format(time.RFC3339)
	}
	out := Record{RecordId: r.ID, UserId: r.UserID, QueueId: queueID, Lane: r.Lane, JoinedAt: ts(r.JoinedAt),
		AdmittedAt: ts(r.AdmittedAt), StartedAt: ts(r.StartedAt), EndedAt: ts(r.EndedAt), Reason: string(r.Reason),
		FirstEtaSeconds: int64(r.FirstETA / time.Second)}
	if !r.JoinedAt.IsZero() {
		end := r.AdmittedAt
		if end.IsZero() {
			end = r.EndedAt
		}
		out.WaitedSeconds = seconds(end.Sub(r.JoinedAt))
	}
	if !r.StartedAt.IsZero() && !r.EndedAt.IsZero() {
		out.PlayedSeconds = seconds(r.EndedAt.Sub(r.StartedAt))
	}
	return out
}

// seconds is a duration in seconds with millisecond precision, never negative.
func seconds(d time.Duration) float64 { return float64(max(d, 0).Milliseconds()) / 1000 }

// Sign is the value of X-Carqueue-Signature for body.
func Sign(secret string, body []byte) string {
	m := hmac.New(sha256.New, []byte(secret))
	m.Write(body)
	return "sha256=" + hex.EncodeToString(m.Sum(nil))
}

// Verify checks a signature in constant time, as a receiver would.
func Verify(secret string, body []byte, signature string) bool {
	return hmac.Equal([]byte(Sign(secret, body)), []byte(signature))
}

// Outbox is what delivery needs of a queue; *queue.Queue satisfies it.
type Outbox interface {
	Undelivered(ctx context.Context, limit int) ([]queue.Record, error)
	Delivered(ctx context.Context, id string) error
	DeliveryFailed(ctx context.Context, base, max time.Duration) (int, error)
}

// Hook posts records to one endpoint. It is safe for concurrent use.
type Hook struct {
	url, secret string
	client      *http.Client
	log         *slog.Logger
	budget      time.Duration // PassBudget; tests shorten it
}

// New returns the hook of url, signing with secret; client nil means a default one, log nil
// slog.Default().
func New(url, secret string, client *http.Client, log *slog.Logger) (*Hook, error) {
	if url == "" || len(secret) < 16 {
		return nil, errors.New("new webhook: a URL and a secret of at least 16 characters are required")
	}
	if client == nil {
		client = &http.Client{Timeout: RequestTimeout}
	}
	if log == nil {
		log = slog.Default()
	}
	return &Hook{url: url, secret: secret, client: client, log: log, budget: PassBudget}, nil
}

// Deliver posts the queue's undelivered records in order, moving the cursor after each one
// the endpoint accepted (2xx), until none is left, the pass budget is spent, or a POST fails:
// then every instance waits out the backoff before the next try. It returns how many it
// delivered; an error means the endpoint (or Redis) failed, and the records wait.
func (h *Hook) Deliver(ctx context.Context, queueID string, box Outbox) (int, error) {
	ctx, cancel := context.WithTimeout(ctx, h.budget)
	defer cancel()
	sent := 0
	for {
		recs, err := box.Undelivered(ctx, Batch)
		if err != nil || len(recs) == 0 {
			return sent, err
		}
		for _, r := range recs {
			if err := h.post(ctx, queueID, r); err != nil {
				n, ferr := box.DeliveryFailed(context.WithoutCancel(ctx), RetryMin, RetryMax)
				h.log.Warn("webhook delivery failed; backing off", "queue_id", queueID, "record_id", r.ID,
					"failures_in_a_row", n, "err", err.Error())
				return sent, errors.Join(err, ferr)
			}
			if err := box.Delivered(context.WithoutCancel(ctx), r.ID); err != nil {
				return sent, err
			}
			sent++
			if ctx.Err() != nil {
				return sent, nil // the budget is spent; the next pass goes on
			}
		}
	}
}

// post sends one record; any answer but 2xx is a failure.
func (h *Hook) post(ctx context.Context, queueID string, r queue.Record) error {
	body, err := json.Marshal(RecordOf(queueID, r))
	if err != nil {
		return err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, h.url, bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("X-Carqueue-Signature", Sign(h.secret, body))
	req.Header.Set("X-Carqueue-Record", r.ID)
	resp, err := h.client.Do(req)
	if err != nil {
		// net/http's error quotes the whole URL, and a webhook URL often carries a token in
		// its path or query: the log names the host only.
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return fmt.Errorf("post record %s to %s: %w", r.ID, req.URL.Host, err)
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return fmt.Errorf("post record %s: endpoint answered %d", r.ID, resp.StatusCode)
	}
	return nil
}
