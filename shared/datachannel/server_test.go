package datachannel

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/netip"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/carqueue/carqueue/shared/testkit"
)

const waitFor = 5 * time.Second // bound of every wait for something that must happen

// echo answers text with "echo: " and the text, binary with the same bytes.
func echo(w ReplyWriter, m *Message) {
	if m.Binary {
		_ = w.WriteBinary(m.Data)
	} else {
		_ = w.WriteText("echo: " + m.Text())
	}
}

type served struct {
	*Server
	serveErr chan error
}

func testLogger(t *testing.T) *slog.Logger {
	if testing.Verbose() {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.DiscardHandler)
}

// start listens on a free loopback port and serves h until the test ends.
func start(t *testing.T, h HandlerFunc, opts ...Option) *served {
	t.Helper()
	srv, err := Listen("127.0.0.1:0", h, append([]Option{WithLogger(testLogger(t))}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	s := &served{srv, make(chan error, 1)}
	go func() { s.serveErr <- srv.Serve() }()
	t.Cleanup(func() {
		_ = srv.Close()
		select {
		case err := <-s.serveErr:
			if !errors.Is(err, ErrServerClosed) {
				t.Errorf("Serve: %v, want ErrServerClosed", err)
			}
			s.serveErr <- err
		case <-time.After(waitFor):
			t.Errorf("Serve did not return within %v of Close", waitFor)
		}
	})
	return s
}

// client is a stand-in for CAR's proxy port: one UDP socket, speaking the framing.
type client struct {
	t    *testing.T
	conn *net.UDPConn
	to   netip.AddrPort
	enc  *Encoder
	ra   *Reassembler
	got  int // datagrams read
	max  int // the largest of them
}

func newClient(t *testing.T, s *Server) *client {
	t.Helper()
	conn, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	ra, _ := NewReassembler(s.Protocol(), Limits{}, nil)
	return &client{t: t, conn: conn, to: s.Addr(), enc: &Encoder{Protocol: s.Protocol()}, ra: ra}
}

func (c *client) addr() netip.AddrPort { return c.conn.LocalAddr().(*net.UDPAddr).AddrPort() }

func (c *client) raw(d []byte) {
	c.t.Helper()
	if _, err := c.conn.WriteToUDPAddrPort(d, c.to); err != nil {
		c.t.Fatal(err)
	}
}

func (c *client) send(data []byte, binary bool) {
	c.t.Helper()
	dgs, err := c.enc.Encode(data, binary)
	if err != nil {
		c.t.Fatal(err)
	}
	for _, d := range dgs {
		c.raw(d)
	}
}

func (c *client) text(s string) { c.t.Helper(); c.send([]byte(s), false) }

// recv reads datagrams until one completes a message (within waitFor).
func (c *client) recv() *Message {
	c.t.Helper()
	m, err := c.read(time.Now().Add(waitFor))
	if err != nil {
		c.t.Fatalf("no message within %v: %v", waitFor, err)
	}
	return m
}

func (c *client) read(deadline time.Time) (*Message, error) {
	buf := make([]byte, readBufSize)
	_ = c.conn.SetReadDeadline(deadline)
	for {
		n, from, err := c.conn.ReadFromUDPAddrPort(buf)
		if err != nil {
			return nil, err
		}
		c.got++
		c.max = max(c.max, n)
		if m, ok := c.ra.Add(buf[:n]); ok {
			m.From = from
			return m, nil
		}
	}
}

// recvText expects the next message to be the text want.
func (c *client) recvText(want string) {
	c.t.Helper()
	if m := c.recv(); m.Binary || m.Text() != want {
		c.t.Fatalf("got %q (binary=%v), want text %q", m.Text(), m.Binary, want)
	}
}

// none checks nothing is waiting for the client. Callers make sure that whatever the server
// could have sent it was sent already (it answered a later message elsewhere, or is closed):
// the short deadline only covers the kernel's hand-over on loopback.
func (c *client) none() {
	c.t.Helper()
	if m, err := c.read(time.Now().Add(50 * time.Millisecond)); err == nil {
		c.t.Fatalf("got %q, want nothing", m.Data)
	}
}

// eventually polls cond until it holds, within waitFor.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for end := time.Now().Add(waitFor); !cond(); time.Sleep(time.Millisecond) {
		if time.Now().After(end) {
			t.Fatalf("not within %v: %s", waitFor, what)
		}
	}
}

func TestListenValidation(t *testing.T) {
	h := HandlerFunc(echo)
	for _, c := range []struct {
		addr string
		opts []Option
		want string
	}{
		{"0.0.0.0:15000", nil, `host "0.0.0.0": must be 127.0.0.1 or ::1`},
		{":15000", nil, `host "": must be 127.0.0.1 or ::1`},
		{"10.0.0.1:15000", nil, "must be 127.0.0.1 or ::1"},
		{"127.0.0.1:80", nil, `port "80": must be 1024–65535 (CAR suggests 10000–20000)`},
		{"127.0.0.1:65536", nil, "must be 1024–65535"},
		{"127.0.0.1:x", nil, "must be 1024–65535"},
		{"127.0.0.1", nil, "want 127.0.0.1:port"},
		{"127.0.0.1:0", []Option{WithMaxPayload(0)}, "MaxPayload 0: must be 1–65491"},
		{"127.0.0.1:0", []Option{WithMaxPayload(65492)}, "MaxPayload 65492: must be 1–65491"},
		{"127.0.0.1:0", []Option{WithMaxMessageSize(-5)}, "MaxMessageSize -5: must be 1–1073741824"},
		{"127.0.0.1:0", []Option{WithMaxPartial(5000)}, "MaxPartial 5000: must be 1–1024"},
		{"127.0.0.1:0", []Option{WithMaxPendingBytes(10)}, "MaxPendingBytes 10: must be 1048576 (MaxMessageSize)"},
		{"127.0.0.1:0", []Option{WithReassemblyTimeout(time.Hour)}, "ReassemblyTimeout 1h0m0s: must be above 0 and at most 10m0s"},
		{"127.0.0.1:0", []Option{WithStaleWindow(-1)}, "StaleWindow -1ns: must be 0–24h"},
		{"127.0.0.1:0", []Option{WithProtocol(7)}, "Protocol Protocol(7): must be Text or Binary"},
		{"127.0.0.1:0", []Option{WithClock(nil)}, "Clock: nil"},
	} {
		srv, err := Listen(c.addr, h, c.opts...)
		if err == nil {
			srv.Close()
			t.Errorf("Listen(%q): no error, want %q", c.addr, c.want)
		} else if !strings.Contains(err.Error(), c.want) {
			t.Errorf("Listen(%q): %v, want %q", c.addr, err, c.want)
		}
	}
	if _, err := Listen("127.0.0.1:0", nil); err == nil {
		t.Error("a nil handler accepted")
	}
	for _, addr := range []string{"127.0.0.1:0", "localhost:0", "[::1]:0"} {
		srv, err := Listen(addr, h)
		if err != nil {
			if addr == "[::1]:0" {
				t.Logf("no IPv6 loopback here: %v", err)
				continue
			}
			t.Fatalf("Listen(%q): %v", addr, err)
		}
		if a := srv.Addr(); !a.Addr().IsLoopback() || a.Port() == 0 {
			t.Errorf("Listen(%q).Addr() = %v", addr, a)
		}
		srv.Close()
	}
}

func TestEchoRoundTrip(t *testing.T) {
	for _, p := range []Protocol{Text, Binary} {
		t.Run(p.String(), func(t *testing.T) {
			got := make(chan *Message, 1)
			s := start(t, func(w ReplyWriter, m *Message) { got <- m; echo(w, m) }, WithProtocol(p))
			c := newClient(t, s.Server)
			if p == Text {
				c.text("héllo")
				c.recvText("echo: héllo")
			} else {
				c.send([]byte{0, 1, 2, 0xFF}, true)
				if m := c.recv(); !m.Binary || !bytes.Equal(m.Data, []byte{0, 1, 2, 0xFF}) {
					t.Fatalf("echo %+v", m)
				}
			}
			m := <-got
			if m.From != c.addr() || m.Binary != (p == Binary) || m.Fragments != 1 || m.ReceivedAt.IsZero() {
				t.Errorf("the handler's message: %+v (client %v)", m, c.addr())
			}
			if peer, ok := s.Peer(); !ok || peer != c.addr() {
				t.Errorf("Peer() = %v %v, want %v", peer, ok, c.addr())
			}
			// The other kind than the channel's travels framed, and keeps its kind.
			c.send([]byte("text on a "+p.String()+" channel"), false)
			c.recvText("echo: text on a " + p.String() + " channel")
			if m := <-got; m.Binary {
				t.Error("a framed text message came as binary")
			}
			// Sent counts a message once its last datagram is written: the client may read it first.
			eventually(t, "two messages sent", func() bool { return s.Stats().Sent == 2 })
			if st := s.Stats(); st.Messages != 2 || st.PeerChanges != 1 {
				t.Errorf("stats %+v", st)
			}
		})
	}
}

// TestNewestPeer: after the client's port changes, replies and Send go to the new port; a
// datagram from the old port is dropped unanswered, and nothing goes to the old port.
func TestNewestPeer(t *testing.T) {
	s := start(t, echo)
	a, b := newClient(t, s.Server), newClient(t, s.Server)
	a.text("a1")
	a.recvText("echo: a1")
	b.text("b1") // the reconnect: a new proxy port
	b.recvText("echo: b1")
	a.text("a2") // the old port again: stale
	b.text("b2")
	b.recvText("echo: b2") // a2 came first and was not answered here either
	a.none()
	if err := s.SendText("push"); err != nil {
		t.Fatal(err)
	}
	b.recvText("push")
	a.none()
	if st := s.Stats(); st.Stale != 1 || st.PeerChanges != 2 || st.Messages != 3 {
		t.Errorf("stats %+v", st)
	}
	if peer, _ := s.Peer(); peer != b.addr() {
		t.Errorf("Peer() = %v, want b %v", peer, b.addr())
	}
}

// TestStaleWindow: a superseded address is stale for the window only (or not at all with 0).
func TestStaleWindow(t *testing.T) {
	t.Run("expires", func(t *testing.T) {
		clock := testkit.NewClock()
		s := start(t, echo, WithClock(clock.Now), WithStaleWindow(time.Minute))
		a, b := newClient(t, s.Server), newClient(t, s.Server)
		a.text("a1")
		a.recvText("echo: a1")
		b.text("b1")
		b.recvText("echo: b1")
		clock.Advance(time.Minute)
		a.text("a2") // a minute later: the port is someone new
		a.recvText("echo: a2")
	})
	t.Run("off", func(t *testing.T) {
		s := start(t, echo, WithStaleWindow(0))
		a, b := newClient(t, s.Server), newClient(t, s.Server)
		a.text("a1")
		a.recvText("echo: a1")
		b.text("b1")
		b.recvText("echo: b1")
		a.text("a2")
		a.recvText("echo: a2")
		if st := s.Stats(); st.Stale != 0 || st.PeerChanges != 3 {
			t.Errorf("stats %+v", st)
		}
	})
}

// TestReplyFollowsThePeer: a reply goes to the peer at the time of writing, not to m.From.
func TestReplyFollowsThePeer(t *testing.T) {
	started, release := make(chan struct{}), make(chan struct{})
	s := start(t, func(w ReplyWriter, m *Message) {
		if m.Text() == "x" {
			close(started)
			<-release
		}
		echo(w, m)
	})
	a, b := newClient(t, s.Server), newClient(t, s.Server)
	a.text("x")
	<-started
	b.text("y") // the client reconnects while "x" is being handled
	eventually(t, "b becomes the peer", func() bool { p, _ := s.Peer(); return p == b.addr() })
	close(release)
	b.recvText("echo: x")
	b.recvText("echo: y")
	a.none()
}

func TestSendBeforeAnyPeer(t *testing.T) {
	s := start(t, echo)
	if _, ok := s.Peer(); ok {
		t.Fatal("a peer before any datagram")
	}
	if err := s.Send([]byte("anyone?")); !errors.Is(err, ErrNoPeer) {
		t.Fatalf("Send before any peer: %v, want ErrNoPeer", err)
	}
	c := newClient(t, s.Server)
	c.text("hi")
	c.recvText("echo: hi")
	if err := s.Send([]byte("now")); err != nil {
		t.Fatal(err)
	}
	c.recvText("now")
	s.Close()
	if err := s.Send([]byte("after")); !errors.Is(err, ErrServerClosed) {
		t.Fatalf("Send after Close: %v, want ErrServerClosed", err)
	}
}

// TestLargeMessages: 64 KiB each way, split into datagrams of at most 1,216 bytes; the reply and
// the server's own Send too.
func TestLargeMessages(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	big := make([]byte, 64<<10)
	for i := range big {
		big[i] = byte(rng.Uint32())
	}
	got := make(chan *Message, 1)
	s := start(t, func(w ReplyWriter, m *Message) { got <- m; echo(w, m) }, WithProtocol(Binary))
	c := newClient(t, s.Server)
	c.send(big, true)
	m := c.recv()
	if !m.Binary || !bytes.Equal(m.Data, big) {
		t.Fatalf("the echo of 64 KiB: %d bytes, binary=%v", len(m.Data), m.Binary)
	}
	frags := (len(big) + DefaultMaxPayload - 1) / DefaultMaxPayload // 55
	if h := <-got; h.Fragments != frags || len(h.Data) != len(big) {
		t.Errorf("the server reassembled %d bytes from %d fragments, want %d from %d", len(h.Data), h.Fragments, len(big), frags)
	}
	if m.Fragments != frags || c.got != frags || c.max > HeaderSize+DefaultMaxPayload {
		t.Errorf("the reply: %d fragments, %d datagrams, the largest %d bytes; want %d of at most %d", m.Fragments, c.got, c.max, frags, HeaderSize+DefaultMaxPayload)
	}

	pushed := bytes.Repeat([]byte("0123456789abcdef"), 4<<10)
	if err := s.Send(pushed); err != nil {
		t.Fatal(err)
	}
	if m := c.recv(); !bytes.Equal(m.Data, pushed) || m.Fragments != frags {
		t.Fatalf("Send of 64 KiB: %d bytes in %d fragments", len(m.Data), m.Fragments)
	}
	long := strings.Repeat("text, ", 1000)
	if err := s.SendText(long); err != nil {
		t.Fatal(err)
	}
	c.recvText(long)
	eventually(t, "three messages sent", func() bool { return s.Stats().Sent == 3 })
	if st := s.Stats(); st.SentDatagrams != uint64(2*frags+5) || st.Malformed+st.Overflow+st.DroppedFragments != 0 {
		t.Errorf("stats %+v", st)
	}
}

// sync sends a plain message and waits for its echo: everything the client sent before has
// been read and reassembled (or dropped) by then, as the server reads in order.
func (c *client) sync(tag string) {
	c.t.Helper()
	c.send([]byte(tag), true)
	if m := c.recv(); string(m.Data) != tag {
		c.t.Fatalf("got %q, want the echo of %q", m.Data, tag)
	}
}

// TestMemoryBound: over the caps, messages are refused and counted, their later fragments
// discarded, and everything else still gets through.
func TestMemoryBound(t *testing.T) {
	s := start(t, echo, WithProtocol(Binary), WithMaxMessageSize(4000), WithMaxPartial(2), WithMaxPendingBytes(6000))
	c := newClient(t, s.Server)
	enc := func(n int, fill byte) [][]byte {
		d, err := c.enc.Encode(bytes.Repeat([]byte{fill}, n), true)
		if err != nil {
			t.Fatal(err)
		}
		return d
	}
	m1, m2, m3, huge := enc(4000, 1), enc(1500, 2), enc(1300, 3), enc(4001, 4)
	c.raw(m1[0])   // 4000 reserved
	c.raw(m2[0])   // 5500: two partials
	c.raw(m3[0])   // a third: over MaxPartial
	c.raw(huge[0]) // over MaxMessageSize
	c.sync("s1")
	if st := s.Stats(); st.Overflow != 1 || st.TooLarge != 1 || st.DroppedFragments != 2 {
		t.Fatalf("after the refusals: %+v", st)
	}
	for _, d := range m2[1:] {
		c.raw(d)
	}
	if m := c.recv(); len(m.Data) != 1500 || m.Data[0] != 2 {
		t.Fatalf("m2: %d bytes of %d", len(m.Data), m.Data[0])
	}
	m4 := enc(2500, 5) // one partial (m1, 4000) in flight: the bytes are over
	c.raw(m4[0])
	for _, d := range append(m3[1:], m4[1:]...) { // fragments of refused messages
		c.raw(d)
	}
	c.sync("s2") // the next message is s2's echo: m3 and m4 never completed
	if st := s.Stats(); st.Overflow != 2 || st.DroppedFragments != 3+uint64(len(m3)-1+len(m4)-1) {
		t.Fatalf("after the bytes overflow: %+v", st)
	}
	for _, d := range m1[1:] {
		c.raw(d)
	}
	if m := c.recv(); len(m.Data) != 4000 || m.Data[0] != 1 {
		t.Fatalf("m1: %d bytes", len(m.Data))
	}
}

// TestIncompleteMessageExpires on the injected clock: the sweep runs when a datagram arrives.
func TestIncompleteMessageExpires(t *testing.T) {
	clock := testkit.NewClock()
	s := start(t, echo, WithProtocol(Binary), WithClock(clock.Now), WithReassemblyTimeout(10*time.Second))
	c := newClient(t, s.Server)
	msg := bytes.Repeat([]byte{7}, 3000) // 3 fragments
	dgs, _ := c.enc.Encode(msg, true)
	c.raw(dgs[0])
	c.raw(dgs[1])
	c.sync("s0") // both fragments read at the clock's start
	clock.Advance(10 * time.Second)
	c.sync("s1")
	if st := s.Stats(); st.Expired != 1 {
		t.Fatalf("after the timeout: %+v", st)
	}
	c.raw(dgs[2]) // too late
	c.sync("s2")
	if st := s.Stats(); st.DroppedFragments != 1 {
		t.Fatalf("the late fragment: %+v", st)
	}
	// Within the timeout, a slow message completes.
	dgs, _ = c.enc.Encode(msg, true)
	c.raw(dgs[0])
	c.sync("s3")
	clock.Advance(9 * time.Second)
	c.raw(dgs[1])
	c.raw(dgs[2])
	if m := c.recv(); !bytes.Equal(m.Data, msg) {
		t.Fatalf("the slow message: %d bytes", len(m.Data))
	}
}

// TestShutdownWaitsForHandler: Shutdown stops reading at once, waits for the handler in flight
// (whose reply still goes out), then closes.
func TestShutdownWaitsForHandler(t *testing.T) {
	started, release := make(chan struct{}), make(chan struct{})
	s := start(t, func(w ReplyWriter, m *Message) {
		if m.Text() == "slow" {
			close(started)
			<-release
		}
		echo(w, m)
	})
	c := newClient(t, s.Server)
	c.text("slow")
	<-started
	shut := make(chan error, 1)
	go func() { shut <- s.Shutdown(context.Background()) }()
	select {
	case err := <-s.serveErr:
		if !errors.Is(err, ErrServerClosed) {
			t.Fatalf("Serve: %v", err)
		}
		s.serveErr <- err
	case <-time.After(waitFor):
		t.Fatal("Serve still reading after Shutdown began")
	}
	select {
	case err := <-shut:
		t.Fatalf("Shutdown returned (%v) with a handler in flight", err)
	default:
	}
	c.text("late") // not read any more
	close(release)
	c.recvText("echo: slow")
	select {
	case err := <-shut:
		if err != nil {
			t.Fatalf("Shutdown: %v", err)
		}
	case <-time.After(waitFor):
		t.Fatal("Shutdown did not return after the handler did")
	}
	c.none()
	if err := s.Send([]byte("x")); !errors.Is(err, ErrServerClosed) {
		t.Fatalf("Send after Shutdown: %v", err)
	}
}

func TestShutdownContextEnds(t *testing.T) {
	started, release := make(chan struct{}), make(chan struct{})
	wrote := make(chan error, 1)
	s := start(t, func(w ReplyWriter, m *Message) {
		close(started)
		<-release
		wrote <- w.WriteText("too late")
	})
	c := newClient(t, s.Server)
	c.text("stuck")
	<-started
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := s.Shutdown(ctx); !errors.Is(err, context.Canceled) {
		t.Fatalf("Shutdown with its context ended: %v", err)
	}
	close(release)
	if err := <-wrote; !errors.Is(err, ErrServerClosed) {
		t.Fatalf("a write after the forced close: %v", err)
	}
}

func TestHandlerPanicIsContained(t *testing.T) {
	s := start(t, func(w ReplyWriter, m *Message) {
		if m.Text() == "boom" {
			panic("boom")
		}
		echo(w, m)
	})
	c := newClient(t, s.Server)
	c.text("boom")
	c.text("after")
	c.recvText("echo: after")
	if st := s.Stats(); st.Panics != 1 {
		t.Errorf("stats %+v", st)
	}
}

func TestShutdownBeforeServe(t *testing.T) {
	srv, err := Listen("127.0.0.1:0", HandlerFunc(echo))
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := srv.Serve(); !errors.Is(err, ErrServerClosed) {
		t.Fatalf("Serve after Shutdown: %v", err)
	}
}
