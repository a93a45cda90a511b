package caremu

import (
	"bytes"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strconv"
	"testing"
	"time"

	"github.com/carqueue/carqueue/shared/testkit"
)

// signedRequest is a test-only TC3 signer: it builds the request a v3 client
// sends, signed at ts with the given key and content type.
type signedRequest struct {
	action, contentType, secretID, secretKey, token, version string
	ts                                                       time.Time
	body                                                     []byte
}

func (s signedRequest) build(t *testing.T) *http.Request {
	t.Helper()
	r := httptest.NewRequest(http.MethodPost, "http://car.tencentcloudapi.com/", bytes.NewReader(s.body))
	r.Host = "car.tencentcloudapi.com"
	ct := s.contentType
	if ct == "" {
		ct = "application/json"
	}
	version := s.version
	if version == "" {
		version = apiVersion
	}
	id, key := s.secretID, s.secretKey
	if id == "" {
		id = LocalSecretID
	}
	if key == "" {
		key = LocalSecretKey
	}
	r.Header.Set("Content-Type", ct)
	r.Header.Set("X-TC-Action", s.action)
	r.Header.Set("X-TC-Version", version)
	ts := strconv.FormatInt(s.ts.Unix(), 10)
	r.Header.Set("X-TC-Timestamp", ts)
	if s.token != "" {
		r.Header.Set("X-TC-Token", s.token)
	}
	date := s.ts.UTC().Format("2006-01-02")
	signed := []string{"content-type", "host"}
	canonical := canonicalRequest(r, signed, sha256hex(s.body), false)
	sig := signTC3(key, date, "car", ts, canonical)
	r.Header.Set("Authorization", tc3Algorithm+" Credential="+id+"/"+date+"/car/tc3_request, SignedHeaders=content-type;host, Signature="+sig)
	return r
}

type answer struct {
	Response struct {
		Error *struct {
			Code, Message string
		}
		RequestId     string
		ServerSession string
		Total         *int
		Running       *int
	}
}

func (a answer) code() string {
	if a.Response.Error == nil {
		return ""
	}
	return a.Response.Error.Code
}

// do serves a request on e and decodes the CAR answer.
func do(t *testing.T, e *Emulator, r *http.Request) answer {
	t.Helper()
	rec := httptest.NewRecorder()
	e.ServeHTTP(rec, r)
	if rec.Code != http.StatusOK {
		t.Fatalf("HTTP status %d, want 200 (CAR answers errors with 200)", rec.Code)
	}
	var a answer
	raw, _ := io.ReadAll(rec.Body)
	if err := json.Unmarshal(raw, &a); err != nil {
		t.Fatalf("answer %s: %v", raw, err)
	}
	if a.Response.RequestId == "" {
		t.Fatalf("answer %s has no RequestId", raw)
	}
	return a
}

// call sends a correctly signed action with params and returns the answer.
func call(t *testing.T, e *Emulator, action string, params map[string]string) answer {
	t.Helper()
	body, _ := json.Marshal(params)
	return do(t, e, signedRequest{action: action, ts: time.Now(), body: body}.build(t))
}

func newTestEmulator(t *testing.T, opts Options) (*Emulator, *testkit.Clock) {
	t.Helper()
	clock := testkit.NewClock()
	if opts.Now == nil {
		opts.Now = clock.Now
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	e, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	return e, clock
}

func apply(t *testing.T, e *Emulator, user string) string {
	t.Helper()
	return call(t, e, actionApply, map[string]string{"UserId": user, "UserIp": "10.0.0.1", "ProjectId": "project-1"}).code()
}

func create(t *testing.T, e *Emulator, user string) (string, string) {
	t.Helper()
	a := call(t, e, actionCreate, map[string]string{"UserId": user, "UserIp": "10.0.0.1", "ClientSession": "cs-" + user})
	return a.Response.ServerSession, a.code()
}

func destroy(t *testing.T, e *Emulator, user string) string {
	t.Helper()
	return call(t, e, actionDestroy, map[string]string{"UserId": user}).code()
}

func wantCode(t *testing.T, what, got, want string) {
	t.Helper()
	if got != want {
		t.Fatalf("%s: code %q, want %q", what, got, want)
	}
}
