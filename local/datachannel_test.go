package main

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/carqueue/carqueue/local/relay"
)

// The data channel through the whole harness: a user admitted by the real functions connects
// with the ServerSession they handed out, talks to a UDP application through its proxy port,
// gets a new port after a reconnect, and is disconnected when /stop destroys its session.
// (The stand-in's side of the same sockets is TestTCGSDKStandIn, in Chromium.)
func TestDataChannelThroughTheHarness(t *testing.T) {
	h := startLocal(t, []string{"-capacity", "2", "-tick", "200ms", "-cleanup-delay", "100ms"})
	app := newRelayApp(t)

	// The stand-in is served to pages of any origin.
	req, _ := http.NewRequest(http.MethodGet, h.Base+"/tcgsdk-local.js", nil)
	req.Header.Set("Origin", "http://page.example")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || resp.Header.Get("Access-Control-Allow-Origin") != "*" ||
		!strings.HasPrefix(resp.Header.Get("Content-Type"), "text/javascript") || !strings.Contains(string(body), "createCustomDataChannel") {
		t.Fatalf("GET /tcgsdk-local.js: HTTP %d, %v", resp.StatusCode, resp.Header)
	}

	user := "dc-" + h.Queue
	_, env := h.post(t, "start", map[string]any{"UserId": user, "ClientSession": "cs-1"})
	ss1, ticket := str(env.Data, "ServerSession"), str(env.Data, "Ticket")
	if str(env.Data, "Status") != "Ready" || ss1 == "" {
		t.Fatalf("/start: %+v, want Ready with a ServerSession", env)
	}
	if _, err := dialRelaySession(t, h, ss1, "cs-other"); websocket.CloseStatus(err) != relay.StatusClientMismatch {
		t.Fatalf("start with another ClientSession: %v, want close %d", err, relay.StatusClientMismatch)
	}
	p1, err := dialRelaySession(t, h, ss1, "cs-1")
	if err != nil {
		t.Fatal(err)
	}
	ch := dialRelayChannel(t, h, p1, app.port(), "text")
	relayEcho(t, ch, app, "one", p1.ProxyPort)

	// The page reloads: a new init, /reconnect with its new ClientSession, a new ServerSession, a new proxy port.
	p1.ws.Close(websocket.StatusGoingAway, "reload")
	_, env = h.post(t, "reconnect", map[string]any{"UserId": user, "Ticket": ticket, "ClientSession": "cs-2"})
	ss2 := str(env.Data, "ServerSession")
	if ss2 == "" || ss2 == ss1 {
		t.Fatalf("/reconnect: %+v, want a new ServerSession", env)
	}
	if tk := str(env.Data, "Ticket"); tk != "" {
		ticket = tk
	}
	p2, err := dialRelaySession(t, h, ss2, "cs-2")
	if err != nil {
		t.Fatal(err)
	}
	if p2.ProxyPort == p1.ProxyPort {
		t.Fatalf("proxy port %d again after a reconnect", p2.ProxyPort)
	}
	ch = dialRelayChannel(t, h, p2, app.port(), "text")
	relayEcho(t, ch, app, "two", p2.ProxyPort)

	// /stop destroys the session: the page is told why, and its channel closes.
	if _, env = h.post(t, "stop", map[string]any{"UserId": user, "Ticket": ticket}); str(env.Data, "Status") != "Stopped" {
		t.Fatalf("/stop: %+v", env)
	}
	select {
	case err := <-p2.closed:
		if websocket.CloseStatus(err) != relay.StatusDestroyed {
			t.Fatalf("after /stop the page was closed with %v, want %d", err, relay.StatusDestroyed)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("the page is still connected after /stop")
	}
	if _, err := dialRelaySession(t, h, ss2, "cs-2"); websocket.CloseStatus(err) != relay.StatusUnknownSession {
		t.Fatalf("start of a destroyed session: %v, want close %d", err, relay.StatusUnknownSession)
	}
}

type relaySocket struct {
	ws        *websocket.Conn
	ProxyPort int
	Conn      string
	closed    chan error
}

// dialRelaySession opens a session socket as the stand-in does; a refusal is returned as the close error.
func dialRelaySession(t *testing.T, h *runningHarness, ss, cs string) (*relaySocket, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	u := "ws://" + h.HTTP + sessionSocketPath + "?" + url.Values{"ServerSession": {ss}, "ClientSession": {cs}}.Encode()
	ws, _, err := websocket.Dial(ctx, u, nil)
	if err != nil {
		t.Fatalf("dial %s: %v", sessionSocketPath, err)
	}
	t.Cleanup(func() { ws.CloseNow() })
	_, data, err := ws.Read(ctx)
	if err != nil {
		return nil, err
	}
	s := &relaySocket{ws: ws, closed: make(chan error, 1)}
	if err := json.Unmarshal(data, s); err != nil || s.ProxyPort == 0 || s.Conn == "" {
		t.Fatalf("connected message %s (%v)", data, err)
	}
	go func() {
		for {
			if _, _, err := ws.Read(context.Background()); err != nil {
				s.closed <- err
				return
			}
		}
	}()
	return s, nil
}

func dialRelayChannel(t *testing.T, h *runningHarness, s *relaySocket, port int, protocol string) *websocket.Conn {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	u := "ws://" + h.HTTP + channelSocketPath + "?" + url.Values{"conn": {s.Conn}, "destPort": {strconv.Itoa(port)}, "protocol": {protocol}}.Encode()
	ws, _, err := websocket.Dial(ctx, u, nil)
	if err != nil {
		t.Fatalf("dial %s: %v", channelSocketPath, err)
	}
	t.Cleanup(func() { ws.CloseNow() })
	return ws
}

// echo sends msg on a channel, checks it reaches the application from the proxy port, has the
// application answer that port and checks the page gets the answer.
func relayEcho(t *testing.T, ch *websocket.Conn, app *relayApp, msg string, proxyPort int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := ch.Write(ctx, websocket.MessageText, []byte(msg)); err != nil {
		t.Fatal(err)
	}
	got, src := app.recv(t)
	if string(got) != msg || src.Port != proxyPort {
		t.Fatalf("application got %q from %v, want %q from the proxy port %d", got, src, msg, proxyPort)
	}
	app.send(t, src, []byte("echo: "+msg))
	if _, reply, err := ch.Read(ctx); err != nil || string(reply) != "echo: "+msg {
		t.Fatalf("page got %q %v, want the echo", reply, err)
	}
}

// relayApp is a cloud application: a UDP socket on 127.0.0.1.
type relayApp struct{ c *net.UDPConn }

func newRelayApp(t *testing.T) *relayApp {
	t.Helper()
	c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return &relayApp{c: c}
}

func (a *relayApp) port() int { return a.c.LocalAddr().(*net.UDPAddr).Port }

func (a *relayApp) recv(t *testing.T) ([]byte, *net.UDPAddr) {
	t.Helper()
	buf := make([]byte, 70000)
	_ = a.c.SetReadDeadline(time.Now().Add(10 * time.Second))
	n, src, err := a.c.ReadFromUDP(buf)
	if err != nil {
		t.Fatalf("application: %v", err)
	}
	return buf[:n], src
}

func (a *relayApp) send(t *testing.T, to *net.UDPAddr, p []byte) {
	t.Helper()
	if _, err := a.c.WriteToUDP(p, to); err != nil && !errors.Is(err, net.ErrClosed) {
		t.Fatal(err)
	}
}
