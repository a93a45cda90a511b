// Package car is the backend's client for Tencent Cloud CAR (Cloud Application
// Rendering, API version 2022-01-10). It calls CAR only through the SDK's
// generic common client (the car SDK package is not on the module proxy),
// paces each action with a token bucket, retries transient failures, and
// classifies every error into a Kind the admission code can branch on.
package car

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"time"

	"github.com/tencentcloud/tencentcloud-sdk-go/tencentcloud/common"
	tcerr "github.com/tencentcloud/tencentcloud-sdk-go/tencentcloud/common/errors"
	tchttp "github.com/tencentcloud/tencentcloud-sdk-go/tencentcloud/common/http"
	"github.com/tencentcloud/tencentcloud-sdk-go/tencentcloud/common/profile"
	"golang.org/x/time/rate"
)

// Client calls CAR. It is safe for concurrent use; build one per process
// (an SCF instance keeps it warm between invocations).
type Client struct {
	cfg       Config
	limiters  map[string]*rate.Limiter
	transport http.RoundTripper
	// backoff is the wait before retry number n (1-based). Tests shorten it.
	backoff func(n int) time.Duration
}

// New validates cfg and builds a Client. It does not read credentials: they
// are read from Getenv on every call.
func New(cfg Config) (*Client, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, fmt.Errorf("new car client: %w", err)
	}
	limiters := make(map[string]*rate.Limiter, len(cfg.Rates))
	for action, r := range cfg.Rates {
		burst := int(r)
		if burst < 1 {
			burst = 1
		}
		limiters[action] = rate.NewLimiter(rate.Limit(r), burst)
	}
	// One shared transport keeps connections to CAR alive across calls; the
	// SDK would otherwise clone a fresh transport per common client.
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.MaxIdleConnsPerHost = 128
	tr.IdleConnTimeout = 30 * time.Second
	return &Client{cfg: cfg, limiters: limiters, transport: tr, backoff: jitteredBackoff}, nil
}

// jitteredBackoff waits between half and all of 200ms·2^(n-1), capped at 3s,
// so that callers retrying together do not hit CAR in lockstep.
func jitteredBackoff(n int) time.Duration {
	d := 200 * time.Millisecond << min(n-1, 4)
	d = min(d, 3*time.Second)
	return d/2 + rand.N(d/2+1)
}

func (c *Client) limiter(action string) *rate.Limiter {
	if l, ok := c.limiters[action]; ok {
		return l
	}
	return rate.NewLimiter(rate.Inf, 1)
}

// call runs action with pacing and retries and returns the inner "Response"
// object. It logs one line for the whole attempt set.
func (c *Client) call(ctx context.Context, action, userID string, params map[string]any) (json.RawMessage, error) {
	start := time.Now()
	attempts := 0
	var (
		out   json.RawMessage
		reqID string
		err   error
	)
	defer func() { c.logCall(action, userID, reqID, start, attempts, err) }()
	for {
		if werr := c.limiter(action).Wait(ctx); werr != nil {
			if err == nil { // on a retry, the previous attempt's error says more
				err = waitError(ctx, action, werr)
			}
			return nil, err
		}
		attempts++
		out, reqID, err = c.attempt(ctx, action, params)
		if err == nil {
			return out, nil
		}
		if !KindOf(err).Retryable() || attempts > c.cfg.MaxRetries || ctx.Err() != nil {
			return nil, err
		}
		wait := c.backoff(attempts)
		if dl, ok := ctx.Deadline(); ok && time.Until(dl) <= wait {
			return nil, err // no time left for another attempt: report the real failure
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil, err
		case <-t.C:
		}
	}
}

// waitError turns a token-bucket wait failure into an *Error: the ctx ended,
// or the bucket would make us wait past the deadline.
func waitError(ctx context.Context, action string, werr error) error {
	if ctx.Err() != nil {
		return &Error{Action: action, Code: "ClientError.Canceled", Message: "context done while pacing calls", Kind: KindTransient, cause: werr}
	}
	return &Error{Action: action, Code: "ClientError.RateLimitWait", Message: "client-side rate limit leaves no time before the deadline", Kind: KindRateLimited, cause: werr}
}

// attempt sends one request through the SDK common client. The attempt is
// bounded by CallTimeout, capped under ctx's deadline, both in the request
// context and in the SDK's whole-second ReqTimeout.
func (c *Client) attempt(ctx context.Context, action string, params map[string]any) (json.RawMessage, string, error) {
	cred, err := credential(action, c.cfg.Getenv)
	if err != nil {
		return nil, "", err
	}
	timeout := c.cfg.attemptTimeout(action)
	if dl, ok := ctx.Deadline(); ok {
		timeout = min(timeout, time.Until(dl))
	}
	if timeout <= 0 {
		return nil, "", &Error{Action: action, Code: "ClientError.Timeout", Message: "no time left before the deadline", Kind: KindTransient, cause: context.DeadlineExceeded}
	}
	actx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()

	cpf := profile.NewClientProfile()
	cpf.HttpProfile.Endpoint = c.cfg.Endpoint
	cpf.HttpProfile.Scheme = c.cfg.Scheme
	cpf.HttpProfile.ReqMethod = http.MethodPost // with GET the SDK drops the parameters
	// Floor to whole seconds so the SDK's own timeout never outlives the
	// deadline; 0 means "no SDK timeout", and then actx alone bounds the call.
	cpf.HttpProfile.ReqTimeout = int(timeout / time.Second)
	client := common.NewCommonClient(cred, c.cfg.Region, cpf).WithHttpTransport(c.transport)

	req := tchttp.NewCommonRequest(Service, APIVersion, action)
	if err := req.SetActionParameters(params); err != nil {
		return nil, "", toError(action, err)
	}
	req.SetContext(actx)
	resp := tchttp.NewCommonResponse()

	// Send honours the request context for the HTTP exchange, but it is run
	// aside anyway so that no SDK-internal wait can hold us past the deadline.
	done := make(chan error, 1)
	go func() { done <- client.Send(req, resp) }()
	select {
	case err = <-done:
	case <-actx.Done():
		err = actx.Err()
	}
	if err != nil {
		return nil, "", toError(action, err)
	}
	var body struct {
		Response json.RawMessage `json:"Response"`
	}
	if err := json.Unmarshal(resp.GetBody(), &body); err != nil || len(body.Response) == 0 {
		return nil, "", &Error{Action: action, Code: "ClientError.ParseJsonError", Message: "response has no Response object", Kind: KindTransient, cause: err}
	}
	var meta struct {
		RequestID string `json:"RequestId"`
	}
	_ = json.Unmarshal(body.Response, &meta)
	return body.Response, meta.RequestID, nil
}

// toError converts whatever Send returned into an *Error with a Kind.
func toError(action string, err error) error {
	var ce *Error
	if errors.As(err, &ce) {
		return ce
	}
	var sdk *tcerr.TencentCloudSDKError
	if errors.As(err, &sdk) {
		kind := classify(action, sdk.Code)
		if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled) {
			kind = KindTransient
		}
		return &Error{Action: action, Code: sdk.Code, Message: sdk.Message, RequestID: sdk.RequestId, Kind: kind, cause: err}
	}
	if errors.Is(err, context.DeadlineExceeded) {
		return &Error{Action: action, Code: "ClientError.Timeout", Message: "call timed out", Kind: KindTransient, cause: err}
	}
	if errors.Is(err, context.Canceled) {
		return &Error{Action: action, Code: "ClientError.Canceled", Message: "call canceled", Kind: KindTransient, cause: err}
	}
	return &Error{Action: action, Code: "ClientError.Unknown", Message: err.Error(), Kind: KindOf(err), cause: err}
}

// logCall writes the one line per call. It never logs credentials nor the
// ClientSession / ServerSession (they grant access to the stream).
func (c *Client) logCall(action, userID, reqID string, start time.Time, attempts int, err error) {
	attrs := []slog.Attr{
		slog.String("action", action),
		slog.Int("attempts", attempts),
		slog.Duration("duration", time.Since(start)),
	}
	if userID != "" {
		attrs = append(attrs, slog.String("UserId", userID))
	}
	if err == nil {
		attrs = append(attrs, slog.String("RequestId", reqID))
		c.cfg.Logger.LogAttrs(context.Background(), slog.LevelInfo, "car call", attrs...)
		return
	}
	var ce *Error
	if errors.As(err, &ce) {
		attrs = append(attrs, slog.String("RequestId", ce.RequestID), slog.String("code", ce.Code), slog.String("kind", ce.Kind.String()))
	}
	attrs = append(attrs, slog.String("error", err.Error()))
	c.cfg.Logger.LogAttrs(context.Background(), slog.LevelWarn, "car call failed", attrs...)
}
