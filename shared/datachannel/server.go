package datachannel

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"runtime/debug"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

var (
	// ErrNoPeer is returned by Send before any datagram arrived: nobody to send to yet.
	ErrNoPeer = errors.New("datachannel: no peer yet (nobody has sent a datagram)")
	// ErrServerClosed is returned by Serve after Shutdown or Close, and by sends after the
	// socket is closed.
	ErrServerClosed = errors.New("datachannel: server closed")
)

// A Message is one complete message from the page.
type Message struct {
	Data       []byte         // the message; the handler may keep it
	Binary     bool           // its kind: the channel's for a plain datagram, the flag for a framed one
	From       netip.AddrPort // the source address of its (last) datagram
	ReceivedAt time.Time      // when its last datagram was read (on the server's clock)
	Fragments  int            // datagrams it took: 1 for a plain datagram
}

// Text is the message as text: its bytes as UTF-8 (not checked).
func (m *Message) Text() string { return string(m.Data) }

// A Handler answers messages. ServeMessage is called once per message, one at a time.
type Handler interface {
	ServeMessage(w ReplyWriter, m *Message)
}

// HandlerFunc adapts a function to Handler.
type HandlerFunc func(w ReplyWriter, m *Message)

// ServeMessage calls f(w, m).
func (f HandlerFunc) ServeMessage(w ReplyWriter, m *Message) { f(w, m) }

// A ReplyWriter sends messages to the current peer: the newest source address at the time of
// each write, which is not m.From if the client reconnected meanwhile. Each call sends one
// message, split when it does not fit one datagram. It stays usable after the handler returns.
type ReplyWriter interface {
	// Write sends p as one message of the channel's kind (WithProtocol).
	Write(p []byte) (int, error)
	// WriteText sends s as one text message.
	WriteText(s string) error
	// WriteBinary sends p as one binary message.
	WriteBinary(p []byte) error
	// Peer is the current peer: where a write would go now.
	Peer() netip.AddrPort
}

// An Option configures a Server.
type Option func(*config)

type config struct {
	protocol    Protocol
	maxPayload  int
	limits      Limits
	staleWindow time.Duration
	now         func() time.Time
	log         *slog.Logger
}

// WithProtocol is the channel's protocol, as the page gave it to createCustomDataChannel: the
// kind of plain datagrams, both ways. Default Text, as TCGSDK's.
func WithProtocol(p Protocol) Option { return func(c *config) { c.protocol = p } }

// WithMaxPayload is P, the most bytes of a message in one datagram (default 1,200, at most
// MaxPayloadLimit). Longer messages the server sends are framed.
func WithMaxPayload(n int) Option { return func(c *config) { c.maxPayload = n } }

// WithMaxMessageSize bounds a received message (default 1 MiB, at most 1 GiB).
func WithMaxMessageSize(n int) Option { return func(c *config) { c.limits.MaxMessageSize = n } }

// WithMaxPartial bounds the messages being reassembled at once (default 16, at most 1,024).
func WithMaxPartial(n int) Option { return func(c *config) { c.limits.MaxPartial = n } }

// WithMaxPendingBytes bounds the bytes reserved by messages being reassembled (default
// 4 × MaxMessageSize; at least MaxMessageSize, at most 2 GiB).
func WithMaxPendingBytes(n int) Option { return func(c *config) { c.limits.MaxPendingBytes = n } }

// WithReassemblyTimeout is how long a message may take from its first fragment to its last
// (default 10 s, at most 10 min).
func WithReassemblyTimeout(d time.Duration) Option { return func(c *config) { c.limits.Timeout = d } }

// WithStaleWindow is how long a superseded source address stays stale: its datagrams dropped
// unanswered (default 1 min, at most 24 h). Zero turns it off: an old address that speaks again
// becomes the newest peer.
func WithStaleWindow(d time.Duration) Option { return func(c *config) { c.staleWindow = d } }

// WithClock is the clock of the reassembly timeout and the stale window (default time.Now).
func WithClock(now func() time.Time) Option { return func(c *config) { c.now = now } }

// WithLogger is where the server logs peer changes (Info), stale datagrams (Debug) and handler
// panics (Error). Default slog.Default().
func WithLogger(l *slog.Logger) Option { return func(c *config) { c.log = l } }

const (
	queueLen       = 64  // complete messages waiting for the handler
	pastPeersLimit = 256 // superseded addresses remembered
	readBufSize    = 65536
)

// A Server is the cloud application's end of the data channel: one UDP socket on loopback.
type Server struct {
	conn  *net.UDPConn
	addr  netip.AddrPort
	h     Handler
	cfg   config
	enc   *Encoder
	ra    *Reassembler // reader goroutine only (and its Stats)
	log   *slog.Logger
	c     counters
	stopR chan struct{} // closed when Shutdown or Close begins
	done  chan struct{} // closed when the handler goroutine is done

	mu      sync.Mutex
	peer    netip.AddrPort // valid once a datagram came
	past    []pastPeer     // superseded peers, oldest first
	serving bool
	closing bool

	hard      atomic.Bool // Close: skip queued messages
	closed    atomic.Bool // the socket is closed
	closeOnce sync.Once
	closeErr  error
}

type pastPeer struct {
	addr netip.AddrPort
	at   time.Time // when it was superseded
}

// Listen opens the channel's socket on addr, "127.0.0.1:port" or "[::1]:port" ("localhost" means
// 127.0.0.1): loopback only, as CAR's proxy is on the same machine. The port is 1024–65535 (CAR
// suggests 10000–20000), or 0 for a free one (tests; see Addr). Call Serve to start answering.
func Listen(addr string, h Handler, opts ...Option) (*Server, error) {
	cfg := config{protocol: Text, maxPayload: DefaultMaxPayload, staleWindow: time.Minute, now: time.Now, log: slog.Default()}
	for _, o := range opts {
		o(&cfg)
	}
	if h == nil {
		return nil, errors.New("datachannel: nil Handler")
	}
	if cfg.protocol != Text && cfg.protocol != Binary {
		return nil, fmt.Errorf("datachannel: Protocol %v: must be Text or Binary", cfg.protocol)
	}
	if cfg.maxPayload < 1 || cfg.maxPayload > MaxPayloadLimit {
		return nil, fmt.Errorf("datachannel: MaxPayload %d: must be 1–%d bytes", cfg.maxPayload, MaxPayloadLimit)
	}
	if cfg.staleWindow < 0 || cfg.staleWindow > 24*time.Hour {
		return nil, fmt.Errorf("datachannel: StaleWindow %v: must be 0–24h", cfg.staleWindow)
	}
	if cfg.now == nil {
		return nil, errors.New("datachannel: Clock: nil")
	}
	if cfg.log == nil {
		return nil, errors.New("datachannel: Logger: nil")
	}
	ra, err := NewReassembler(cfg.protocol, cfg.limits, cfg.now)
	if err != nil {
		return nil, err
	}
	cfg.limits = ra.Limits()
	ap, err := parseListenAddr(addr)
	if err != nil {
		return nil, err
	}
	network := "udp4"
	if ap.Addr().Is6() {
		network = "udp6"
	}
	conn, err := net.ListenUDP(network, net.UDPAddrFromAddrPort(ap))
	if err != nil {
		return nil, fmt.Errorf("datachannel: listen: %w", err)
	}
	local := conn.LocalAddr().(*net.UDPAddr).AddrPort()
	local = netip.AddrPortFrom(local.Addr().Unmap(), local.Port())
	return &Server{
		conn: conn, addr: local, h: h, cfg: cfg, ra: ra, log: cfg.log,
		enc:   &Encoder{Protocol: cfg.protocol, MaxPayload: cfg.maxPayload},
		stopR: make(chan struct{}), done: make(chan struct{}),
	}, nil
}

func parseListenAddr(addr string) (netip.AddrPort, error) {
	host, portStr, err := net.SplitHostPort(addr)
	if err != nil {
		return netip.AddrPort{}, fmt.Errorf("datachannel: listen address %q: %v (want 127.0.0.1:port or [::1]:port)", addr, err)
	}
	var ip netip.Addr
	switch host {
	case "127.0.0.1", "localhost":
		ip = netip.AddrFrom4([4]byte{127, 0, 0, 1})
	case "::1":
		ip = netip.IPv6Loopback()
	default:
		return netip.AddrPort{}, fmt.Errorf("datachannel: listen address %q: host %q: must be 127.0.0.1 or ::1 (the data channel is loopback only)", addr, host)
	}
	port, err := strconv.Atoi(portStr)
	if err != nil || port != 0 && (port < 1024 || port > 65535) {
		return netip.AddrPort{}, fmt.Errorf("datachannel: listen address %q: port %q: must be 1024–65535 (CAR suggests 10000–20000), or 0 for a free port", addr, portStr)
	}
	return netip.AddrPortFrom(ip, uint16(port)), nil
}

// Addr is the address the server listens on (the actual port when Listen was given 0).
func (s *Server) Addr() netip.AddrPort { return s.addr }

// Protocol is the channel's protocol (WithProtocol).
func (s *Server) Protocol() Protocol { return s.cfg.protocol }

// Peer is the current peer, the newest source address; false before any datagram came.
func (s *Server) Peer() (netip.AddrPort, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.peer, s.peer.IsValid()
}

// Stats returns the server's counters.
func (s *Server) Stats() Stats {
	st := s.ra.Stats()
	own := s.c.stats()
	st.Datagrams, st.Messages, st.Sent, st.SentDatagrams = own.Datagrams, s.c.handled.Load(), own.Sent, own.SentDatagrams
	st.PeerChanges, st.Stale, st.Undelivered, st.Panics = own.PeerChanges, own.Stale, own.Undelivered, own.Panics
	return st
}

// Serve reads datagrams and hands complete messages to the handler until Shutdown or Close
// (then it returns ErrServerClosed) or a read fails. It returns once reading has stopped;
// Shutdown is what waits for the handler. Call it once.
func (s *Server) Serve() error {
	s.mu.Lock()
	switch {
	case s.closing:
		s.mu.Unlock()
		return ErrServerClosed
	case s.serving:
		s.mu.Unlock()
		return errors.New("datachannel: Serve called twice")
	}
	s.serving = true
	s.mu.Unlock()

	queue := make(chan *Message, queueLen)
	go s.handle(queue)
	defer close(queue)
	buf := make([]byte, readBufSize)
	for {
		n, from, err := s.conn.ReadFromUDPAddrPort(buf)
		if err != nil {
			if s.stopping() {
				return ErrServerClosed
			}
			return fmt.Errorf("datachannel: read: %w", err)
		}
		if s.stopping() {
			return ErrServerClosed // read just before Shutdown: not ours to handle any more
		}
		s.c.datagrams.Add(1)
		from = netip.AddrPortFrom(from.Addr().Unmap(), from.Port())
		if !s.admit(from) {
			continue
		}
		m, ok := s.ra.Add(buf[:n])
		if !ok {
			continue
		}
		m.From = from
		select {
		case queue <- m:
		case <-s.stopR:
			s.c.undelivered.Add(1)
			return ErrServerClosed
		}
	}
}

func (s *Server) stopping() bool {
	select {
	case <-s.stopR:
		return true
	default:
		return false
	}
}

// admit tracks the peer: from becomes it when new; false when from is a stale address.
func (s *Server) admit(from netip.AddrPort) bool {
	now := s.cfg.now()
	s.mu.Lock()
	defer s.mu.Unlock()
	if from == s.peer {
		return true
	}
	live := s.past[:0]
	stale := false
	for _, p := range s.past {
		if now.Sub(p.at) >= s.cfg.staleWindow {
			continue
		}
		if p.addr == from {
			stale = true
		}
		live = append(live, p)
	}
	s.past = live
	if stale {
		s.c.stale.Add(1)
		s.log.Debug("data channel: datagram from a superseded address dropped", "from", from, "peer", s.peer)
		return false
	}
	old := s.peer
	if old.IsValid() && s.cfg.staleWindow > 0 {
		if len(s.past) == pastPeersLimit {
			s.past = append(s.past[:0], s.past[1:]...)
		}
		s.past = append(s.past, pastPeer{addr: old, at: now})
	}
	s.peer = from
	s.c.peerChanges.Add(1)
	s.ra.Reset()
	if old.IsValid() {
		s.log.Info("data channel: new peer", "peer", from, "previous", old)
	} else {
		s.log.Info("data channel: first peer", "peer", from)
	}
	return true
}

func (s *Server) handle(queue <-chan *Message) {
	defer close(s.done)
	for m := range queue {
		if s.hard.Load() {
			s.c.undelivered.Add(1)
			continue
		}
		s.serveOne(m)
	}
}

func (s *Server) serveOne(m *Message) {
	defer func() {
		if v := recover(); v != nil {
			s.c.panics.Add(1)
			s.log.Error("data channel: handler panicked", "from", m.From, "panic", v, "stack", string(debug.Stack()))
		}
	}()
	s.c.handled.Add(1)
	s.h.ServeMessage(replyWriter{s}, m)
}

// Send sends data to the current peer as one message of the channel's kind, split when it does
// not fit one datagram: ErrNoPeer before anyone spoke, ErrServerClosed once closed. Safe for
// concurrent use, also from handlers and during Shutdown.
func (s *Server) Send(data []byte) error { return s.send(data, s.cfg.protocol == Binary) }

// SendText sends one text message to the current peer (see Send).
func (s *Server) SendText(text string) error { return s.send([]byte(text), false) }

// SendBinary sends one binary message to the current peer (see Send).
func (s *Server) SendBinary(data []byte) error { return s.send(data, true) }

func (s *Server) send(data []byte, binary bool) error {
	if s.closed.Load() {
		return ErrServerClosed
	}
	peer, ok := s.Peer()
	if !ok {
		return ErrNoPeer
	}
	dgs, err := s.enc.Encode(data, binary)
	if err != nil {
		return err
	}
	for i, d := range dgs {
		if _, err := s.conn.WriteToUDPAddrPort(d, peer); err != nil {
			s.c.sentDatagrams.Add(uint64(i))
			if s.closed.Load() {
				return ErrServerClosed
			}
			return fmt.Errorf("datachannel: send to %v: %w", peer, err)
		}
	}
	s.c.sent.Add(1)
	s.c.sentDatagrams.Add(uint64(len(dgs)))
	return nil
}

// Shutdown stops gracefully: it stops reading, lets the handler finish the message in hand and
// the messages already complete, then closes the socket. Replies and Send work until then. If
// ctx ends first, Shutdown closes the socket anyway (a handler still running gets
// ErrServerClosed from its writes) and returns ctx's error.
func (s *Server) Shutdown(ctx context.Context) error {
	serving := s.beginStop()
	var err error
	if serving {
		select {
		case <-s.done:
		case <-ctx.Done():
			err = ctx.Err()
		}
	}
	if cerr := s.closeConn(); err == nil {
		err = cerr
	}
	return err
}

// Close closes the socket at once: reading stops, messages waiting for the handler are dropped
// (counted as Undelivered), a handler running is not waited for and its writes fail.
func (s *Server) Close() error {
	s.hard.Store(true)
	s.beginStop()
	return s.closeConn()
}

// beginStop marks the server closing and wakes the reader; it reports whether Serve started.
func (s *Server) beginStop() bool {
	s.mu.Lock()
	first := !s.closing
	s.closing = true
	serving := s.serving
	s.mu.Unlock()
	if first {
		close(s.stopR)
		_ = s.conn.SetReadDeadline(time.Now())
	}
	return serving
}

func (s *Server) closeConn() error {
	s.closeOnce.Do(func() {
		s.closed.Store(true)
		s.closeErr = s.conn.Close()
	})
	return s.closeErr
}

type replyWriter struct{ s *Server }

func (w replyWriter) Write(p []byte) (int, error) {
	if err := w.s.Send(p); err != nil {
		return 0, err
	}
	return len(p), nil
}

func (w replyWriter) WriteText(text string) error { return w.s.SendText(text) }
func (w replyWriter) WriteBinary(p []byte) error  { return w.s.SendBinary(p) }
func (w replyWriter) Peer() netip.AddrPort {
	p, _ := w.s.Peer()
	return p
}
