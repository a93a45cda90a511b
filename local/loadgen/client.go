package loadgen

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"strconv"
	"time"
)

// envelope is the contract's answer.
type envelope struct {
	Code      int
	Msg       string
	RequestId string
	Data      map[string]any
}

func (e envelope) str(k string) string { s, _ := e.Data[k].(string); return s }
func (e envelope) num(k string) int64  { f, _ := e.Data[k].(float64); return int64(f) }

// answer is one successful (HTTP 200) call: when its request left and its answer arrived.
type answer struct {
	envelope
	Sent, Recv time.Time
}

// errClient is a 4xx other than 429: the request itself was wrong, retrying will not help.
var errClient = errors.New("client error")

// errRefused is 503 with Code 5031: CAR refused the admission for good and the user left the
// line. A client would /start again later, at the back; the load test stops the user instead
// and reports it, since an emulator injecting transient faults should never cause it.
var errRefused = errors.New("CAR refused the admission for good (Code 5031)")

// codeRefused is CODES.md's 5031.
const codeRefused = 5031

// client speaks the contract and retries like a well-behaved browser: on a transport error,
// 429 or 5xx it waits (Retry-After when given, else exponential backoff with jitter, capped at
// MaxRetryDelay) and sends the same request again until ctx ends.
type client struct {
	bases []string // the instances; each attempt goes to one at random (a restarted or killed one is retried elsewhere)
	emu   string   // where /emulator/state is, "" for the instances
	token string
	http  *http.Client
	m     *metrics

	maxDelay time.Duration
}

// base is where one attempt goes.
func (c *client) base(rnd *rand.Rand) string {
	if len(c.bases) == 1 {
		return c.bases[0]
	}
	if rnd == nil {
		return c.bases[rand.IntN(len(c.bases))]
	}
	return c.bases[rnd.IntN(len(c.bases))]
}

// post calls a route and returns the first HTTP 200 answer.
func (c *client) post(ctx context.Context, rnd *rand.Rand, route string, body any) (answer, error) {
	raw, err := json.Marshal(body)
	if err != nil {
		return answer{}, fmt.Errorf("/%s: encode: %w", route, err)
	}
	backoff := 50 * time.Millisecond
	for {
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.base(rnd)+"/"+route, bytes.NewReader(raw))
		if err != nil {
			return answer{}, fmt.Errorf("/%s: %w", route, err)
		}
		a, status, retryAfter, err := c.do(req, route)
		if err == nil && status == http.StatusOK {
			return a, nil
		}
		if ctx.Err() != nil {
			return answer{}, fmt.Errorf("/%s: %w", route, ctx.Err())
		}
		if err == nil && status != http.StatusTooManyRequests && status < 500 {
			return a, fmt.Errorf("/%s: HTTP %d code %d %q: %w", route, status, a.Code, a.Msg, errClient)
		}
		if err == nil && a.Code == codeRefused {
			return a, fmt.Errorf("/%s: HTTP %d %q: %w", route, status, a.Msg, errRefused)
		}
		c.m.retried()
		wait := backoff + time.Duration(rnd.Int64N(int64(backoff)))
		if retryAfter > 0 {
			wait = retryAfter
		}
		wait = min(wait, c.maxDelay)
		backoff = min(2*backoff, c.maxDelay)
		if !sleep(ctx, wait) {
			return answer{}, fmt.Errorf("/%s: %w", route, ctx.Err())
		}
	}
}

// do sends one attempt and records it; err is a transport or decoding problem.
func (c *client) do(req *http.Request, route string) (answer, int, time.Duration, error) {
	sent := time.Now()
	resp, err := c.http.Do(req)
	if err != nil {
		if req.Context().Err() == nil { // our own cancellation is not the server's error
			c.m.record(route, 0, time.Since(sent))
		}
		return answer{}, 0, 0, err
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	recv := time.Now()
	c.m.record(route, resp.StatusCode, recv.Sub(sent))
	if err != nil {
		return answer{}, resp.StatusCode, 0, err
	}
	var retryAfter time.Duration
	if s, err := strconv.Atoi(resp.Header.Get("Retry-After")); err == nil && s > 0 {
		retryAfter = time.Duration(s) * time.Second
	}
	a := answer{Sent: sent, Recv: recv}
	if err := json.Unmarshal(raw, &a.envelope); err != nil {
		return a, resp.StatusCode, retryAfter, fmt.Errorf("HTTP %d, not an envelope: %.200s", resp.StatusCode, raw)
	}
	return a, resp.StatusCode, retryAfter, nil
}

// get fetches an admin or emulator view once (no retry: the sampler simply tries again).
func (c *client) get(ctx context.Context, route string, bearer bool, into any) (int, error) {
	base := c.base(nil)
	if route == "emulator/state" && c.emu != "" {
		base = c.emu
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+"/"+route, nil)
	if err != nil {
		return 0, err
	}
	if bearer {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	sent := time.Now()
	resp, err := c.http.Do(req)
	if err != nil {
		if ctx.Err() == nil {
			c.m.record(route, 0, time.Since(sent))
		}
		return 0, err
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	c.m.record(route, resp.StatusCode, time.Since(sent))
	if err != nil {
		return resp.StatusCode, err
	}
	if resp.StatusCode != http.StatusOK {
		return resp.StatusCode, fmt.Errorf("GET /%s: HTTP %d: %.200s", route, resp.StatusCode, raw)
	}
	if err := json.Unmarshal(raw, into); err != nil {
		return resp.StatusCode, fmt.Errorf("GET /%s: %w", route, err)
	}
	return resp.StatusCode, nil
}

// sleep waits d or until ctx ends; false if ctx ended.
func sleep(ctx context.Context, d time.Duration) bool {
	if d <= 0 {
		return ctx.Err() == nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}
