package httpapi

import (
	"bufio"
	"context"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/carqueue/carqueue/shared/redistest"
)

func startServer(t *testing.T, h http.Handler) *Server {
	t.Helper()
	s := NewServer("127.0.0.1:0", h)
	if err := s.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Shutdown(context.Background()) })
	return s
}

// TestServerEveryAnswerInEnvelope: the server mode's stack routes unclean paths like any
// other (never a redirect), answers unknown ones with the contract's 404, a too large body
// with its 413, all in the JSON envelope with CORS, as net/http does for ServeHTTP.
func TestServerEveryAnswerInEnvelope(t *testing.T) {
	e := newEnv(t, redistest.Embedded(t), envOpts{})
	s := startServer(t, e.api)
	body := `{"UserId":"alice","ClientSession":"cs"}`
	cases := append(envelopeCases(body),
		envelopeCase{"POST", "/poll", `{"UserId":"` + strings.Repeat("x", MaxBody) + `"}`, 413, CodeTooLarge})
	// A request line that does not parse gets net/http's plain-text 400, not a silent close.
	resp := rawRequest(t, s.Addr, "POST", "/%", body)
	if b, _ := io.ReadAll(resp.Body); resp.StatusCode != 400 || string(b) != "400 Bad Request" {
		t.Fatalf("POST /%%: %d %q", resp.StatusCode, b)
	}
	resp.Body.Close()
	wantEnvelopeAnswers(t, s.Addr, cases)
}

// TestServerKeepAliveAndShutdown: answers on one keep-alive connection; a request in flight
// when Shutdown starts gets its answer, new connections are refused meanwhile, Shutdown returns
// once it is answered, and the connection is then closed.
func TestServerKeepAliveAndShutdown(t *testing.T) {
	entered, release := make(chan struct{}), make(chan struct{})
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/slow" {
			close(entered)
			<-release
		}
		w.Header()["Content-Length"] = []string{"2"}
		_, _ = io.WriteString(w, "ok")
	})
	s := NewServer("127.0.0.1:0", h)
	if err := s.Start(); err != nil {
		t.Fatal(err)
	}
	c, err := net.Dial("tcp", s.Addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(20 * time.Second))
	br := bufio.NewReader(c)
	get := func(path string) *http.Response {
		t.Helper()
		if _, err := io.WriteString(c, "GET "+path+" HTTP/1.1\r\nHost: x\r\n\r\n"); err != nil {
			t.Fatal(err)
		}
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || string(b) != "ok" {
			t.Fatalf("%s: %d %q", path, resp.StatusCode, b)
		}
		return resp
	}
	for range 3 {
		if resp := get("/fast"); resp.Close {
			t.Fatal("a keep-alive answer said Connection: close")
		}
	}
	slow := make(chan *http.Response, 1)
	go func() { slow <- get("/slow") }()
	<-entered
	done := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		done <- s.Shutdown(ctx)
	}()
	// Shutdown waits for the request in flight; meanwhile the port refuses new connections.
	for deadline := time.Now().Add(5 * time.Second); ; {
		c2, err := net.Dial("tcp", s.Addr)
		if err != nil {
			break
		}
		c2.Close()
		if time.Now().After(deadline) {
			t.Fatal("still accepting after Shutdown began")
		}
		time.Sleep(10 * time.Millisecond)
	}
	select {
	case err := <-done:
		t.Fatalf("Shutdown returned (%v) with a request in flight", err)
	default:
	}
	close(release)
	<-slow
	if err := <-done; err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
	if _, err := br.ReadByte(); err == nil {
		t.Fatal("the connection is still open after Shutdown")
	}
}

// TestServerBadBytesAfterARequest: bytes that are not HTTP after a good request on the same
// connection get the 400 after the good request's answer, then the connection closes.
func TestServerBadBytesAfterARequest(t *testing.T) {
	s := startServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		time.Sleep(50 * time.Millisecond) // the 400 must still come second
		w.Header()["Content-Length"] = []string{"2"}
		_, _ = io.WriteString(w, "ok")
	}))
	c, err := net.Dial("tcp", s.Addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.WriteString(c, "GET /a HTTP/1.1\r\nHost: x\r\n\r\nNOT HTTP AT ALL\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(c)
	for _, want := range []int{200, 400} {
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatalf("want %d: %v", want, err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != want {
			t.Fatalf("got %d, want %d", resp.StatusCode, want)
		}
	}
	if _, err := br.ReadByte(); err == nil {
		t.Fatal("the connection is still open after the 400")
	}
}
