package caremu

import (
	"strings"
	"testing"
	"time"
)

func TestSignatureVerification(t *testing.T) {
	body := []byte(`{"ProjectId":"project-1"}`)
	now := time.Now()
	tests := []struct {
		name string
		req  signedRequest
		want string
	}{
		{"plain content type", signedRequest{}, ""},
		{"content type with charset", signedRequest{contentType: "application/json; charset=utf-8"}, ""},
		{"session token accepted", signedRequest{token: "temporary-token"}, ""},
		{"wrong secret key", signedRequest{secretKey: "not-the-key"}, "AuthFailure.SignatureFailure"},
		{"unknown secret id", signedRequest{secretID: "AKIDOTHER"}, "AuthFailure.SecretIdNotFound"},
		{"stale timestamp", signedRequest{ts: now.Add(-6 * time.Minute)}, "AuthFailure.SignatureExpire"},
		{"future timestamp", signedRequest{ts: now.Add(6 * time.Minute)}, "AuthFailure.SignatureExpire"},
		{"inside the window", signedRequest{ts: now.Add(-4 * time.Minute)}, ""},
		{"wrong version", signedRequest{version: "2020-01-01"}, "NoSuchVersion"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e, _ := newTestEmulator(t, Options{})
			req := tt.req
			req.action = actionDescribe
			req.body = body
			if req.ts.IsZero() {
				req.ts = now
			}
			a := do(t, e, req.build(t))
			wantCode(t, tt.name, a.code(), tt.want)
			if tt.want == "" && (a.Response.Total == nil || *a.Response.Total != 10) {
				t.Fatalf("Total = %v, want 10", a.Response.Total)
			}
		})
	}
}

func TestSignatureTampering(t *testing.T) {
	e, _ := newTestEmulator(t, Options{})
	mk := func() signedRequest {
		return signedRequest{action: actionDescribe, ts: time.Now(), body: []byte(`{"ProjectId":"p"}`)}
	}

	r := mk().build(t)
	r.Header.Del("Authorization")
	wantCode(t, "no authorization", do(t, e, r).code(), "AuthFailure.InvalidAuthorization")

	r = mk().build(t)
	r.Header.Set("Authorization", "HMAC-SHA1 whatever")
	wantCode(t, "other algorithm", do(t, e, r).code(), "AuthFailure.InvalidAuthorization")

	// A body changed after signing must not verify (the payload hash is signed).
	s := mk()
	r = s.build(t)
	s.body = []byte(`{"ProjectId":"q"}`)
	r2 := s.build(t)
	r2.Header.Set("Authorization", r.Header.Get("Authorization"))
	wantCode(t, "tampered body", do(t, e, r2).code(), "AuthFailure.SignatureFailure")

	// The signed action header is not part of the signature in TC3, but the
	// host is: a request replayed to another host fails.
	r = mk().build(t)
	r.Host = "evil.example.com"
	wantCode(t, "other host", do(t, e, r).code(), "AuthFailure.SignatureFailure")
}

func TestProtocolErrors(t *testing.T) {
	e, _ := newTestEmulator(t, Options{MaxBodyBytes: 1024})
	now := time.Now()
	tests := []struct {
		name   string
		action string
		body   string
		want   string
	}{
		{"unknown action", "StartPublishStream", `{}`, "InvalidAction"},
		{"missing parameter", actionApply, `{"UserId":"u","UserIp":"1.2.3.4"}`, "MissingParameter"},
		{"unknown parameter", actionDestroy, `{"UserId":"u","Bogus":"x"}`, "UnknownParameter"},
		{"non-string parameter", actionDestroy, `{"UserId":7}`, "InvalidParameter"},
		{"not json", actionDestroy, `{"UserId":`, "InvalidParameter.JsonParseError"},
		{"client session required", actionCreate, `{"UserId":"u","UserIp":"1.2.3.4"}`, "MissingParameter"},
		{"bad run mode", actionCreate, `{"UserId":"u","UserIp":"1.2.3.4","RunMode":"Sometimes"}`, "InvalidParameterValue"},
		{"body too large", actionDestroy, `{"UserId":"` + strings.Repeat("x", 2000) + `"}`, "RequestSizeLimitExceeded"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a := do(t, e, signedRequest{action: tt.action, ts: now, body: []byte(tt.body)}.build(t))
			wantCode(t, tt.name, a.code(), tt.want)
		})
	}

	r := signedRequest{action: actionDescribe, ts: now, body: []byte(`{"ProjectId":"p"}`)}.build(t)
	r.Method = "GET"
	wantCode(t, "GET", do(t, e, r).code(), "UnsupportedProtocol")

	r = signedRequest{action: actionDescribe, ts: now, body: []byte(`{"ProjectId":"p"}`)}.build(t)
	r.Header.Del("X-TC-Action")
	wantCode(t, "no action header", do(t, e, r).code(), "MissingParameter")
}
