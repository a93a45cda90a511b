package httpapi

import (
	"bufio"
	"encoding/json"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"

	"github.com/carqueue/carqueue/shared/redistest"
)

// rawRequest sends one request line as is (net/http's client would clean the path) and reads
// the answer.
func rawRequest(t *testing.T, addr, method, target, body string) *http.Response {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	req := method + " " + target + " HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: " +
		itoa(len(body)) + "\r\nConnection: close\r\n\r\n" + body
	if _, err := c.Write([]byte(req)); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatal(err)
	}
	return resp
}

func itoa(n int) string { return strconv.Itoa(n) }

// TestServeHTTPEveryAnswerInEnvelope: over net/http, unclean paths are routed like any other
// path (never a redirect), unknown ones get the contract's 404, all in the JSON envelope with
// CORS.
func TestServeHTTPEveryAnswerInEnvelope(t *testing.T) {
	e := newEnv(t, redistest.Embedded(t), envOpts{})
	srv := httptest.NewServer(e.api)
	defer srv.Close()
	addr := strings.TrimPrefix(srv.URL, "http://")
	body := `{"UserId":"alice","ClientSession":"cs"}`
	wantEnvelopeAnswers(t, addr, envelopeCases(body))
}

// envelopeCase is one request whose answer must be in the JSON envelope with CORS.
type envelopeCase struct {
	method, target, body string
	status               int
	code                 Code
}

// envelopeCases are the unclean and unknown paths both HTTP servers must answer alike.
func envelopeCases(body string) []envelopeCase {
	return []envelopeCase{
		{"POST", "//start", body, 200, CodeOK},
		{"POST", "/a/../start", body, 200, CodeOK},
		{"POST", "/start", body, 200, CodeOK},
		{"POST", "/nope", body, 404, CodeUnknownPath},
		{"POST", "//", body, 404, CodeUnknownPath},
		{"GET", "/a/../../etc/passwd", body, 404, CodeUnknownPath},
		{"GET", "/start", body, 405, CodeMethod},
		{"OPTIONS", "//poll", body, 200, CodeOK},
	}
}

func wantEnvelopeAnswers(t *testing.T, addr string, cases []envelopeCase) {
	t.Helper()
	for _, c := range cases {
		resp := rawRequest(t, addr, c.method, c.target, c.body)
		var env Envelope
		err := json.NewDecoder(resp.Body).Decode(&env)
		resp.Body.Close()
		if err != nil || resp.StatusCode != c.status || env.Code != c.code ||
			resp.Header.Get("Content-Type") != "application/json" || resp.Header.Get("Access-Control-Allow-Origin") != "*" {
			t.Fatalf("%s %s: %d %v %+v err %v", c.method, c.target, resp.StatusCode, resp.Header, env, err)
		}
	}
}
