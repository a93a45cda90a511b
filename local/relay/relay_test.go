package relay

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/carqueue/carqueue/local/caremu"
	"github.com/carqueue/carqueue/local/caremu/caremutest"
	"github.com/carqueue/carqueue/shared/car"
	"github.com/carqueue/carqueue/shared/datachannel"
	"github.com/carqueue/carqueue/shared/testkit"
)

// The tests run the real emulator (driven by the real CAR client over HTTP), the relay behind
// an httptest server, WebSocket clients in place of the page, and a real UDP socket in place
// of the cloud application.

type env struct {
	t     *testing.T
	emu   *caremu.Emulator
	clock *testkit.Clock
	car   *car.Client
	relay *Relay
	srv   *httptest.Server
	app   *net.UDPConn // the cloud application, on 127.0.0.1
}

func newEnv(t *testing.T, opts Options) *env {
	t.Helper()
	clock := testkit.NewClock()
	emu, carSrv := caremutest.Server(t, caremu.Options{Slots: 4, Now: clock.Now, ReconnectWindow: 90 * time.Second})
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	r := New(emu, opts)
	mux := http.NewServeMux()
	mux.HandleFunc("GET /tcgsdk/ws", r.ServeSession)
	mux.HandleFunc("GET /tcgsdk/channel", r.ServeChannel)
	srv := httptest.NewServer(mux)
	app, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	e := &env{t: t, emu: emu, clock: clock, car: caremutest.Client(t, carSrv, car.Config{}), relay: r, srv: srv, app: app}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := r.Close(ctx); err != nil {
			t.Errorf("relay close: %v", err)
		}
		srv.Close()
		app.Close()
	})
	return e
}

func (e *env) appPort() int { return e.app.LocalAddr().(*net.UDPAddr).Port }

// session admits user as the queue does (ApplyConcurrent + CreateSession) and returns the ServerSession.
func (e *env) session(user, clientSession string) string {
	e.t.Helper()
	ctx := context.Background()
	if err := e.car.ApplyConcurrent(ctx, car.ApplyConcurrentInput{UserID: user, UserIP: "10.0.0.1"}); err != nil {
		e.t.Fatal(err)
	}
	ss, err := e.car.CreateSession(ctx, car.CreateSessionInput{UserID: user, UserIP: "10.0.0.1", ClientSession: clientSession})
	if err != nil {
		e.t.Fatal(err)
	}
	return ss
}

func (e *env) destroy(user string) {
	e.t.Helper()
	if err := e.car.DestroySession(context.Background(), user); err != nil {
		e.t.Fatal(err)
	}
}

// page is a page's session socket.
type page struct {
	ws     *websocket.Conn
	closed chan error // the session socket's end, seen by its reader
	hello  struct {
		Type      string
		ProxyPort int
		UserID    string `json:"userId"`
		Conn      string
	}
}

// start dials the session socket; it returns the close error when the relay refuses.
func (e *env) start(ss, cs string) (*page, error) {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	u := strings.Replace(e.srv.URL, "http://", "ws://", 1) + "/tcgsdk/ws?" +
		url.Values{"ServerSession": {ss}, "ClientSession": {cs}}.Encode()
	ws, _, err := websocket.Dial(ctx, u, nil)
	if err != nil {
		e.t.Fatalf("dial: %v", err)
	}
	e.t.Cleanup(func() { ws.CloseNow() })
	_, data, err := ws.Read(ctx)
	if err != nil {
		return nil, err
	}
	p := &page{ws: ws}
	if err := json.Unmarshal(data, &p.hello); err != nil || p.hello.Type != "connected" || p.hello.ProxyPort == 0 || p.hello.Conn == "" {
		e.t.Fatalf("first message %s, want connected with proxyPort and conn (%v)", data, err)
	}
	// Keep reading the session socket (as a browser does), so pings are answered and the close is seen.
	closed := make(chan error, 1)
	go func() {
		for {
			if _, _, err := ws.Read(context.Background()); err != nil {
				closed <- err
				return
			}
		}
	}()
	p.closed = closed
	return p, nil
}

func (e *env) mustStart(ss, cs string) *page {
	e.t.Helper()
	p, err := e.start(ss, cs)
	if err != nil {
		e.t.Fatalf("start: %v", err)
	}
	return p
}

// channel opens a data channel of p to destPort.
func (e *env) channel(p *page, destPort int, protocol string) (*websocket.Conn, error) {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	u := strings.Replace(e.srv.URL, "http://", "ws://", 1) + "/tcgsdk/channel?" +
		url.Values{"conn": {p.hello.Conn}, "destPort": {fmt.Sprint(destPort)}, "protocol": {protocol}}.Encode()
	ws, resp, err := websocket.Dial(ctx, u, nil)
	if err != nil {
		if resp != nil {
			return nil, fmt.Errorf("HTTP %d: %w", resp.StatusCode, err)
		}
		return nil, err
	}
	ws.SetReadLimit(MaxDatagram + 1)
	e.t.Cleanup(func() { ws.CloseNow() })
	return ws, nil
}

func (e *env) mustChannel(p *page, protocol string) *websocket.Conn {
	e.t.Helper()
	ch, err := e.channel(p, e.appPort(), protocol)
	if err != nil {
		e.t.Fatalf("channel: %v", err)
	}
	return ch
}

// recv reads one datagram at the application, or fails.
func (e *env) recv() ([]byte, *net.UDPAddr) {
	e.t.Helper()
	buf := make([]byte, 70000)
	_ = e.app.SetReadDeadline(time.Now().Add(5 * time.Second))
	n, src, err := e.app.ReadFromUDP(buf)
	if err != nil {
		e.t.Fatalf("application: no datagram: %v", err)
	}
	return buf[:n], src
}

// noDatagram checks that nothing reaches the application for a while.
func (e *env) noDatagram() {
	e.t.Helper()
	buf := make([]byte, 70000)
	_ = e.app.SetReadDeadline(time.Now().Add(200 * time.Millisecond))
	if n, src, err := e.app.ReadFromUDP(buf); err == nil {
		e.t.Fatalf("application got %q from %v, want nothing", buf[:n], src)
	}
}

// reply sends a datagram from the application to a proxy port.
func (e *env) reply(port int, p []byte) {
	e.t.Helper()
	if _, err := e.app.WriteToUDP(p, &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: port}); err != nil {
		e.t.Fatal(err)
	}
}

func send(t *testing.T, ws *websocket.Conn, typ websocket.MessageType, p []byte) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := ws.Write(ctx, typ, p); err != nil {
		t.Fatalf("page send: %v", err)
	}
}

func read(t *testing.T, ws *websocket.Conn) (websocket.MessageType, []byte) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	typ, p, err := ws.Read(ctx)
	if err != nil {
		t.Fatalf("page read: %v", err)
	}
	return typ, p
}

// nothing checks that a channel gets no message for a while. The read is cut off by a
// timeout, which closes the socket: call it last on that socket.
func nothing(t *testing.T, ws *websocket.Conn) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	if typ, p, err := ws.Read(ctx); err == nil {
		t.Fatalf("page got %v %q, want nothing", typ, p)
	}
}

// wantClosed waits for a socket's close and checks its code and reason.
func wantClosed(t *testing.T, what string, err error, code websocket.StatusCode, reason string) {
	t.Helper()
	var ce websocket.CloseError
	if !errors.As(err, &ce) || ce.Code != code || !strings.Contains(ce.Reason, reason) {
		t.Fatalf("%s: closed with %v, want code %d with a reason containing %q", what, err, code, reason)
	}
}

func (p *page) waitClosed(t *testing.T) error {
	t.Helper()
	select {
	case err := <-p.closed:
		return err
	case <-time.After(5 * time.Second):
		t.Fatal("the session socket is still open")
		return nil
	}
}

func readClosed(t *testing.T, ws *websocket.Conn) error {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	for {
		if _, _, err := ws.Read(ctx); err != nil {
			return err
		}
	}
}

func TestEchoThroughTheProxyPort(t *testing.T) {
	e := newEnv(t, Options{})
	p := e.mustStart(e.session("alice", "cs-1"), "cs-1")
	if p.hello.UserID != "alice" {
		t.Errorf("connected as %q, want alice", p.hello.UserID)
	}
	text := e.mustChannel(p, "text")
	send(t, text, websocket.MessageText, []byte("hello"))
	got, src := e.recv()
	if string(got) != "hello" || !src.IP.IsLoopback() || src.Port != p.hello.ProxyPort {
		t.Fatalf("application got %q from %v, want hello from 127.0.0.1:%d (the proxy port)", got, src, p.hello.ProxyPort)
	}
	e.reply(src.Port, []byte("hello back"))
	if typ, msg := read(t, text); typ != websocket.MessageText || string(msg) != "hello back" {
		t.Fatalf("page got %v %q, want text hello back", typ, msg)
	}
	// A text channel gets text frames even when the application sends bytes that are not UTF-8.
	e.reply(src.Port, []byte{'o', 'k', 0xff})
	if typ, msg := read(t, text); typ != websocket.MessageText || string(msg) != "ok\uFFFD" {
		t.Fatalf("page got %v %q, want text ok\\uFFFD", typ, msg)
	}
	// Binary frames from the page are datagrams too.
	send(t, text, websocket.MessageBinary, []byte{0, 1, 2})
	if got, _ := e.recv(); !bytes.Equal(got, []byte{0, 1, 2}) {
		t.Fatalf("application got %v, want 0 1 2", got)
	}
	text.Close(websocket.StatusNormalClosure, "")

	// A binary channel to another port of the same connection, from the same proxy port.
	app2, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer app2.Close()
	bin, err := e.channel(p, app2.LocalAddr().(*net.UDPAddr).Port, "binary")
	if err != nil {
		t.Fatal(err)
	}
	send(t, bin, websocket.MessageBinary, []byte{9, 9})
	buf := make([]byte, 100)
	_ = app2.SetReadDeadline(time.Now().Add(5 * time.Second))
	n, src2, err := app2.ReadFromUDP(buf)
	if err != nil || src2.Port != p.hello.ProxyPort {
		t.Fatalf("second application: %v from %v, want a datagram from the proxy port %d", err, src2, p.hello.ProxyPort)
	}
	if _, err := app2.WriteToUDP(buf[:n], src2); err != nil {
		t.Fatal(err)
	}
	if typ, msg := read(t, bin); typ != websocket.MessageBinary || !bytes.Equal(msg, []byte{9, 9}) {
		t.Fatalf("page got %v %v, want binary 9 9", typ, msg)
	}
	// A datagram to the proxy port from a port without a channel is dropped.
	e.reply(p.hello.ProxyPort, []byte("to nobody"))
	nothing(t, bin)

	if cs := e.relay.Conns(); len(cs) != 1 || cs[0].UserID != "alice" || cs[0].ProxyPort != p.hello.ProxyPort {
		t.Errorf("Conns() = %+v", cs)
	}
}

// The proxy port changes on every start, and the application's answer to an old port goes nowhere.
func TestProxyPortChangesOnReconnect(t *testing.T) {
	e := newEnv(t, Options{})
	ss1 := e.session("alice", "cs-1")
	p1 := e.mustStart(ss1, "cs-1")
	ch1 := e.mustChannel(p1, "text")
	send(t, ch1, websocket.MessageText, []byte("one"))
	if _, src := e.recv(); src.Port != p1.hello.ProxyPort {
		t.Fatalf("from %d, want %d", src.Port, p1.hello.ProxyPort)
	}

	// The page reloads: its socket closes, a new init gives a new ClientSession, /reconnect a new CreateSession.
	p1.ws.Close(websocket.StatusGoingAway, "reload")
	wantClosed(t, "channel of the reloaded page", readClosed(t, ch1), websocket.StatusGoingAway, "")
	ss2 := e.session("alice", "cs-2")
	p2 := e.mustStart(ss2, "cs-2")
	if p2.hello.ProxyPort == p1.hello.ProxyPort {
		t.Fatalf("proxy port %d again after a reconnect, want a new one", p2.hello.ProxyPort)
	}
	ch2 := e.mustChannel(p2, "text")
	send(t, ch2, websocket.MessageText, []byte("two"))
	got, src := e.recv()
	if string(got) != "two" || src.Port != p2.hello.ProxyPort {
		t.Fatalf("application got %q from %d, want two from the new proxy port %d", got, src.Port, p2.hello.ProxyPort)
	}
	e.reply(p1.hello.ProxyPort, []byte("to the old port")) // nowhere: that port is closed
	e.reply(p2.hello.ProxyPort, []byte("to the new port"))
	if _, msg := read(t, ch2); string(msg) != "to the new port" {
		t.Fatalf("page got %q, want only the answer to its new port", msg)
	}

	// TCGSDK.reconnect(): the same ServerSession again takes over from the connection it had, on a new port.
	p3 := e.mustStart(ss2, "cs-2")
	wantClosed(t, "the older connection of the same ServerSession", p2.waitClosed(t), StatusReplaced, "newer start")
	if p3.hello.ProxyPort == p2.hello.ProxyPort || p3.hello.ProxyPort == p1.hello.ProxyPort {
		t.Fatalf("proxy port %d reused (had %d, %d)", p3.hello.ProxyPort, p1.hello.ProxyPort, p2.hello.ProxyPort)
	}
	e.reply(p2.hello.ProxyPort, []byte("old"))
	ch3 := e.mustChannel(p3, "text")
	nothing(t, ch3)
}

func TestDestroyedSessionDisconnectsAndRelaysNothing(t *testing.T) {
	e := newEnv(t, Options{})
	ss := e.session("alice", "cs-1")
	p := e.mustStart(ss, "cs-1")
	ch := e.mustChannel(p, "text")

	e.destroy("alice") // /stop, an operator's kick or the reaper
	wantClosed(t, "session socket", p.waitClosed(t), StatusDestroyed, "destroyed")
	wantClosed(t, "channel socket", readClosed(t, ch), StatusDestroyed, "destroyed")

	e.reply(p.hello.ProxyPort, []byte("late answer")) // the proxy port is closed: nowhere
	if _, err := e.start(ss, "cs-1"); err == nil {
		t.Fatal("a destroyed session connected again")
	} else {
		wantClosed(t, "start of a destroyed session", err, StatusUnknownSession, "no live session")
	}
	if _, err := e.channel(p, e.appPort(), "text"); err == nil || !strings.Contains(err.Error(), "HTTP 404") {
		t.Fatalf("channel of an ended connection: %v, want HTTP 404", err)
	}
	e.noDatagram()
	if cs := e.relay.Conns(); len(cs) != 0 {
		t.Fatalf("connections left: %+v", cs)
	}
}

// A newer CreateSession for the same UserId (another tab, another device) disconnects the older page.
func TestNewerCreateSessionDisconnectsTheOlderPage(t *testing.T) {
	e := newEnv(t, Options{})
	ss1 := e.session("alice", "cs-1")
	p1 := e.mustStart(ss1, "cs-1")
	ch1 := e.mustChannel(p1, "text")
	ss2 := e.session("alice", "cs-2")
	wantClosed(t, "older page", p1.waitClosed(t), StatusReplaced, "newer CreateSession")
	wantClosed(t, "older channel", readClosed(t, ch1), StatusReplaced, "")
	if _, err := e.start(ss1, "cs-1"); err == nil {
		t.Fatal("the replaced ServerSession connected")
	}
	p2 := e.mustStart(ss2, "cs-2")
	ch2 := e.mustChannel(p2, "text")
	send(t, ch2, websocket.MessageText, []byte("hi"))
	if _, src := e.recv(); src.Port != p2.hello.ProxyPort {
		t.Fatalf("from %d, want %d", src.Port, p2.hello.ProxyPort)
	}
	// Another user's session is untouched.
	pb := e.mustStart(e.session("bob", "cs-b"), "cs-b")
	e.session("carol", "cs-c")
	select {
	case err := <-pb.closed:
		t.Fatalf("bob was disconnected: %v", err)
	case <-time.After(100 * time.Millisecond):
	}
}

func TestStartNeedsTheIssuedPair(t *testing.T) {
	e := newEnv(t, Options{})
	ss := e.session("alice", "cs-1")
	for _, tc := range []struct {
		ss, cs string
		code   websocket.StatusCode
	}{
		{"emu-never-issued", "cs-1", StatusUnknownSession},
		{ss, "cs-of-another-init", StatusClientMismatch},
		{"", "cs-1", StatusBadRequest},
		{ss, "", StatusBadRequest},
	} {
		_, err := e.start(tc.ss, tc.cs)
		wantClosed(t, fmt.Sprintf("start(%q, %q)", tc.ss, tc.cs), err, tc.code, "")
	}
	if st := e.emu.State(); len(st.Sessions) != 1 {
		t.Fatalf("a refused start changed the session: %+v", st)
	}
	e.mustStart(ss, "cs-1")
}

// A page that leaves starts the reconnect window; coming back inside it keeps the session, and
// the session reclaimed after the window disconnects a page still attached (as CAR does).
func TestReconnectWindow(t *testing.T) {
	e := newEnv(t, Options{})
	ss := e.session("alice", "cs-1")
	p := e.mustStart(ss, "cs-1")
	p.ws.Close(websocket.StatusNormalClosure, "TCGSDK.destroy")
	eventually(t, "detached", func() bool { return len(e.relay.Conns()) == 0 })
	e.clock.Advance(89 * time.Second)
	p = e.mustStart(ss, "cs-1") // back in time: the window stops
	e.clock.Advance(time.Hour)
	if st := e.emu.State(); len(st.Sessions) != 1 {
		t.Fatalf("session lost while a page is attached: %+v", st)
	}

	e.emu.Disconnect("alice") // CAR noticed the client gone (the Go API of the emulator)
	e.clock.Advance(90 * time.Second)
	_ = e.emu.State()
	wantClosed(t, "page of a reclaimed session", p.waitClosed(t), StatusReclaimed, "reconnect window")

	ss = e.session("bob", "cs-b")
	p = e.mustStart(ss, "cs-b")
	p.ws.Close(websocket.StatusNormalClosure, "")
	eventually(t, "detached", func() bool { return len(e.relay.Conns()) == 0 })
	e.clock.Advance(90 * time.Second)
	if st := e.emu.State(); len(st.Sessions) != 0 {
		t.Fatalf("bob's session outlived the reconnect window after his page left: %+v", st)
	}
}

// A 64 KiB message passes as datagrams framed by shared/datachannel (FRAMING.md), each one
// WebSocket message ↔ one datagram, in order, both ways, through the real cloud-application
// server; a datagram of UDP's maximum passes whole; a bigger message is refused.
func TestLargeMessageAsDatagramsOneToOne(t *testing.T) {
	e := newEnv(t, Options{})
	got := make(chan *datachannel.Message, 1)
	srv, err := datachannel.Listen("127.0.0.1:0", datachannel.HandlerFunc(func(w datachannel.ReplyWriter, m *datachannel.Message) {
		got <- m
		if err := w.WriteBinary(m.Data); err != nil { // the echo, framed again by the server
			t.Errorf("echo: %v", err)
		}
	}), datachannel.WithProtocol(datachannel.Binary), datachannel.WithLogger(slog.New(slog.DiscardHandler)))
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve()
	t.Cleanup(func() { srv.Close() })

	p := e.mustStart(e.session("alice", "cs-1"), "cs-1")
	ch, err := e.channel(p, int(srv.Addr().Port()), "binary")
	if err != nil {
		t.Fatal(err)
	}
	msg := make([]byte, 64<<10)
	for i := range msg {
		msg[i] = byte(i * 7)
	}
	enc := &datachannel.Encoder{Protocol: datachannel.Binary} // what the page's helper does
	datagrams, err := enc.Encode(msg, true)
	if err != nil {
		t.Fatal(err)
	}
	if len(datagrams) < 50 {
		t.Fatalf("%d datagrams for 64 KiB: the framing should split it", len(datagrams))
	}
	for _, d := range datagrams {
		send(t, ch, websocket.MessageBinary, d)
	}
	select {
	case m := <-got:
		if !bytes.Equal(m.Data, msg) || m.Fragments != len(datagrams) || m.From.Port() != uint16(p.hello.ProxyPort) {
			t.Fatalf("the application got %d bytes in %d datagrams from %v, want the message in %d datagrams from the proxy port %d",
				len(m.Data), m.Fragments, m.From, len(datagrams), p.hello.ProxyPort)
		}
	case <-time.After(5 * time.Second):
		t.Fatalf("the application got no message; its stats: %+v", srv.Stats())
	}

	// The echo: one WebSocket message per datagram the application sent, reassembled by the page.
	ra, err := datachannel.NewReassembler(datachannel.Binary, datachannel.Limits{}, time.Now)
	if err != nil {
		t.Fatal(err)
	}
	for n := 1; ; n++ {
		typ, d := read(t, ch)
		if typ != websocket.MessageBinary || !datachannel.IsFramed(d) || len(d) > datachannel.HeaderSize+datachannel.DefaultMaxPayload {
			t.Fatalf("message %d: %v of %d bytes, want one framed datagram", n, typ, len(d))
		}
		if m, ok := ra.Add(d); ok {
			if !bytes.Equal(m.Data, msg) || n != len(datagrams) {
				t.Fatalf("the page reassembled %d bytes from %d messages, want the message from %d", len(m.Data), n, len(datagrams))
			}
			break
		}
	}

	// One datagram of UDP's maximum, both ways (the raw application socket this time).
	raw, err := e.channel(p, e.appPort(), "binary")
	if err != nil {
		t.Fatal(err)
	}
	big := bytes.Repeat([]byte{'x'}, MaxDatagram)
	send(t, raw, websocket.MessageBinary, big)
	if d, _ := e.recv(); len(d) != MaxDatagram {
		t.Fatalf("application got %d bytes, want %d", len(d), MaxDatagram)
	}
	e.reply(p.hello.ProxyPort, big)
	if _, d := read(t, raw); len(d) != MaxDatagram {
		t.Fatalf("page got %d bytes, want %d", len(d), MaxDatagram)
	}
	// More than fits in a datagram: the channel socket is closed as too big, nothing is sent.
	send(t, raw, websocket.MessageBinary, append(big, 'y'))
	wantClosed(t, "oversized message", readClosed(t, raw), websocket.StatusMessageTooBig, "")
	e.noDatagram()
}

// The cloud application of shared/datachannel, answering the newest source address, follows a
// page through a reconnect: its pushes reach the new proxy port.
func TestApplicationFollowsTheNewProxyPort(t *testing.T) {
	e := newEnv(t, Options{})
	srv, err := datachannel.Listen("127.0.0.1:0", datachannel.HandlerFunc(func(w datachannel.ReplyWriter, m *datachannel.Message) {
		_ = w.WriteText("echo: " + m.Text())
	}), datachannel.WithLogger(slog.New(slog.DiscardHandler)))
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve()
	t.Cleanup(func() { srv.Close() })
	port := int(srv.Addr().Port())

	p1 := e.mustStart(e.session("alice", "cs-1"), "cs-1")
	ch1, err := e.channel(p1, port, "text")
	if err != nil {
		t.Fatal(err)
	}
	send(t, ch1, websocket.MessageText, []byte("one"))
	if _, m := read(t, ch1); string(m) != "echo: one" {
		t.Fatalf("page got %q", m)
	}
	p1.ws.Close(websocket.StatusGoingAway, "reload")

	p2 := e.mustStart(e.session("alice", "cs-2"), "cs-2")
	ch2, err := e.channel(p2, port, "text")
	if err != nil {
		t.Fatal(err)
	}
	send(t, ch2, websocket.MessageText, []byte("two"))
	if _, m := read(t, ch2); string(m) != "echo: two" {
		t.Fatalf("page got %q", m)
	}
	if peer, _ := srv.Peer(); int(peer.Port()) != p2.hello.ProxyPort {
		t.Fatalf("the application's peer is %v, want the new proxy port %d", peer, p2.hello.ProxyPort)
	}
	if err := srv.Send([]byte("tick")); err != nil {
		t.Fatal(err)
	}
	if _, m := read(t, ch2); string(m) != "tick" {
		t.Fatalf("page got %q, want the application's push", m)
	}
}

func TestLimits(t *testing.T) {
	e := newEnv(t, Options{MaxConns: 1, MaxChannels: 1})
	p := e.mustStart(e.session("alice", "cs-1"), "cs-1")
	_, err := e.start(e.session("bob", "cs-b"), "cs-b")
	wantClosed(t, "second connection", err, StatusTooMany, "too many")

	e.mustChannel(p, "text")
	if _, err := e.channel(p, e.appPort(), "text"); err == nil || !strings.Contains(err.Error(), "HTTP 409") {
		t.Errorf("second channel to the same port: %v, want HTTP 409", err)
	}
	if _, err := e.channel(p, e.appPort()+1, "text"); err == nil || !strings.Contains(err.Error(), "HTTP 429") {
		t.Errorf("channel over MaxChannels: %v, want HTTP 429", err)
	}
	for _, bad := range []struct {
		port     int
		protocol string
	}{{0, "text"}, {65536, "text"}, {e.appPort(), "json"}} {
		if _, err := e.channel(p, bad.port, bad.protocol); err == nil || !strings.Contains(err.Error(), "HTTP 400") {
			t.Errorf("channel to %d %q: %v, want HTTP 400", bad.port, bad.protocol, err)
		}
	}
}

// A page that does not read only loses datagrams (QueueBytes), never the relay's memory; the
// budget comes back when the channel closes.
func TestSlowPageDropsDatagrams(t *testing.T) {
	e := newEnv(t, Options{QueueBytes: 10_000})
	p := e.mustStart(e.session("alice", "cs-1"), "cs-1")
	ch := e.mustChannel(p, "binary") // never read
	e.relay.mu.Lock()
	c := e.relay.conns[p.hello.Conn]
	e.relay.mu.Unlock()
	d := bytes.Repeat([]byte{1}, 1000)
	for range 3000 {
		e.reply(p.hello.ProxyPort, d)
	}
	eventually(t, "datagrams dropped", func() bool { return c.dropped.Load() > 0 })
	if q := c.queued.Load(); q > 10_000 {
		t.Fatalf("%d bytes queued, over the budget", q)
	}
	if cs := e.relay.Conns(); len(cs) != 1 {
		t.Fatalf("connections %+v", cs)
	}
	ch.CloseNow()
	eventually(t, "the budget given back", func() bool { return c.queued.Load() == 0 })
}

func TestCloseDisconnectsEveryPage(t *testing.T) {
	e := newEnv(t, Options{})
	p := e.mustStart(e.session("alice", "cs-1"), "cs-1")
	ch := e.mustChannel(p, "text")
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := e.relay.Close(ctx); err != nil {
		t.Fatal(err)
	}
	wantClosed(t, "session socket", p.waitClosed(t), websocket.StatusGoingAway, "harness stopping")
	wantClosed(t, "channel socket", readClosed(t, ch), websocket.StatusGoingAway, "harness stopping")
	_, err := e.start(e.session("bob", "cs-b"), "cs-b")
	wantClosed(t, "start after Close", err, websocket.StatusGoingAway, "harness stopping")
}

// The session socket answers pings, for a round-trip time.
func TestPingPong(t *testing.T) {
	e := newEnv(t, Options{})
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	ss := e.session("alice", "cs-1")
	u := strings.Replace(e.srv.URL, "http://", "ws://", 1) + "/tcgsdk/ws?" + url.Values{"ServerSession": {ss}, "ClientSession": {"cs-1"}}.Encode()
	ws, _, err := websocket.Dial(ctx, u, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer ws.CloseNow()
	if _, _, err := ws.Read(ctx); err != nil { // connected
		t.Fatal(err)
	}
	if err := ws.Write(ctx, websocket.MessageText, []byte(`{"type":"ping","t":12.5}`)); err != nil {
		t.Fatal(err)
	}
	if _, msg, err := ws.Read(ctx); err != nil || string(msg) != `{"t":12.5,"type":"pong"}` {
		t.Fatalf("got %s %v, want the pong", msg, err)
	}
}

func eventually(t *testing.T, what string, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not after 5s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
