// Package relay is the data channel of the local harness: what CAR's proxy
// does between a page's TCGSDK and the cloud application, over WebSockets
// instead of WebRTC data channels.
//
// A page that was handed a ServerSession opens a session socket
// (ServeSession) with that ServerSession and its ClientSession; the relay
// attaches it to the emulator's session (caremu.Emulator.Attach: only a
// ServerSession the emulator issued for that ClientSession connects) and binds
// a UDP proxy port on 127.0.0.1 owned by this connection: a new port on every
// connection, as CAR's changes on every reconnect. Each data channel is a
// socket of its own (ServeChannel): every WebSocket message the page sends is
// one UDP datagram from the proxy port to 127.0.0.1:destPort, and every
// datagram that arrives at the proxy port from 127.0.0.1:destPort is one
// WebSocket message to the page, text or binary as the channel's protocol
// says. The relay never splits, joins or looks into datagrams (at most
// MaxDatagram bytes, UDP's limit); messages larger than one datagram are the
// page's and the application's business (shared/datachannel's framing).
//
// When the emulator ends the session (DestroySession, a newer CreateSession
// for the UserId, the reconnect window passing) the relay closes the page's
// sockets with a close code saying why (see the Status constants); a page
// whose socket closes is detached from its session, which starts the
// emulator's reconnect window.
//
// The session socket's protocol, from the relay: one text message
// {"type":"connected","proxyPort":N,"userId":"…","conn":"…"} once connected,
// where conn names the connection for ServeChannel; {"type":"pong","t":T} for
// each {"type":"ping","t":T} the page sends (T any JSON number, for a
// round-trip time); then the close frame. A failed start is a close frame
// without the connected message.
//
// Limits: MaxConns connections, MaxChannels channels per connection, and per
// connection QueueBytes of datagrams waiting for a slow page (more are
// dropped, as UDP would), so at most MaxConns × QueueBytes are queued. Only
// loopback: the proxy ports are bound on 127.0.0.1 and send only to
// 127.0.0.1. Any origin may connect: the ServerSession and ClientSession pair
// is the credential.
package relay

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/coder/websocket"

	"github.com/carqueue/carqueue/local/caremu"
)

// MaxDatagram is the largest UDP payload over IPv4 (65,535 − 8 − 20 bytes),
// so the largest message of a data channel in either direction.
const MaxDatagram = 65507

// Close codes of the relay's sockets (4000–4999 are the application's).
// The session socket closes with one of these, or with the page's own code
// when the page closed it; a channel socket closes with its connection's.
const (
	// StatusDestroyed: the session was destroyed (DestroySession: stop, kick, reaper).
	StatusDestroyed websocket.StatusCode = 4000
	// StatusReplaced: a newer CreateSession for the same UserId, or a newer
	// start of the same ServerSession, took over.
	StatusReplaced websocket.StatusCode = 4001
	// StatusReclaimed: the emulator reclaimed the session after its reconnect window.
	StatusReclaimed websocket.StatusCode = 4002
	// StatusBadRequest: ServerSession or ClientSession missing or too long.
	StatusBadRequest websocket.StatusCode = 4400
	// StatusClientMismatch: the session was created for another ClientSession (or runs without a client).
	StatusClientMismatch websocket.StatusCode = 4403
	// StatusUnknownSession: no live session has this ServerSession (never issued, or ended).
	StatusUnknownSession websocket.StatusCode = 4404
	// StatusTooMany: MaxConns connections are open.
	StatusTooMany websocket.StatusCode = 4429
	// StatusNoEmulator: the harness talks to a real CAR, whose sessions it cannot relay (used by the harness).
	StatusNoEmulator websocket.StatusCode = 4503
)

// maxSessionParam bounds ServerSession and ClientSession (the contract's
// ClientSession limit).
const maxSessionParam = 8192

// Sessions is what the relay needs of the CAR emulator (*caremu.Emulator).
type Sessions interface {
	Subscribe(fn func(caremu.SessionEvent)) (cancel func())
	Attach(serverSession, clientSession string) (caremu.SessionInfo, func(), error)
}

// Options configures a Relay. Zero fields take the defaults in brackets.
type Options struct {
	MaxConns     int           // page connections at once [64]
	MaxChannels  int           // data channels per connection [16]
	QueueBytes   int           // datagrams waiting for one connection's page (all its channels), in bytes [1 MiB]
	WriteTimeout time.Duration // one WebSocket write to a page [10s]
	PingInterval time.Duration // liveness ping on a session socket [20s]
	Logger       *slog.Logger  // [slog.Default()]
}

// Relay relays data channels of the emulator's sessions. Safe for concurrent use.
type Relay struct {
	s           Sessions
	opts        Options
	log         *slog.Logger
	unsubscribe func()
	handlers    sync.WaitGroup // every ServeSession and ServeChannel still running

	mu        sync.Mutex // guards the fields below
	closed    bool
	seq       uint64
	conns     map[string]*conn   // by id
	bySession map[string][]*conn // by ServerSession (normally one)
	closedAt  map[int]time.Time  // proxy ports closed lately (see bindProxyPort)
}

// New starts relaying the sessions of s; Close stops it.
func New(s Sessions, opts Options) *Relay {
	if opts.MaxConns <= 0 {
		opts.MaxConns = 64
	}
	if opts.MaxChannels <= 0 {
		opts.MaxChannels = 16
	}
	if opts.QueueBytes <= 0 {
		opts.QueueBytes = 1 << 20
	}
	if opts.WriteTimeout <= 0 {
		opts.WriteTimeout = 10 * time.Second
	}
	if opts.PingInterval <= 0 {
		opts.PingInterval = 20 * time.Second
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	r := &Relay{s: s, opts: opts, log: opts.Logger,
		conns: map[string]*conn{}, bySession: map[string][]*conn{}, closedAt: map[int]time.Time{}}
	r.unsubscribe = s.Subscribe(r.sessionEvent)
	return r
}

// sessionEvent disconnects the pages of a session that ended.
func (r *Relay) sessionEvent(ev caremu.SessionEvent) {
	var code websocket.StatusCode
	var reason string
	switch ev.Ended {
	case "":
		return // a newer session of the user ends the older one with its own event
	case caremu.EndDestroyed:
		code, reason = StatusDestroyed, "session destroyed (DestroySession)"
	case caremu.EndReplaced:
		code, reason = StatusReplaced, "replaced by a newer CreateSession for this UserId"
	case caremu.EndReclaimed:
		code, reason = StatusReclaimed, "reclaimed: the client stayed away past the reconnect window"
	default:
		code, reason = StatusDestroyed, "session ended: "+string(ev.Ended)
	}
	r.mu.Lock()
	cs := append([]*conn(nil), r.bySession[ev.Session.ServerSession]...)
	r.mu.Unlock()
	for _, c := range cs {
		c.end(code, reason)
	}
}

// Close disconnects every page (close code 1001), stops following the
// emulator and waits for the connections to finish, at most until ctx ends.
func (r *Relay) Close(ctx context.Context) error {
	r.mu.Lock()
	r.closed = true
	cs := make([]*conn, 0, len(r.conns))
	for _, c := range r.conns {
		cs = append(cs, c)
	}
	r.mu.Unlock()
	r.unsubscribe()
	for _, c := range cs {
		c.end(websocket.StatusGoingAway, "harness stopping")
	}
	done := make(chan struct{})
	go func() { r.handlers.Wait(); close(done) }()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("close data channel relay: %w", ctx.Err())
	}
}

// ConnInfo describes one page connection (Conns).
type ConnInfo struct {
	UserID, ServerSession string
	ProxyPort             int
	Channels              []int // destination ports, in no particular order
}

// Conns lists the connected pages.
func (r *Relay) Conns() []ConnInfo {
	r.mu.Lock()
	var cs []*conn
	var out []ConnInfo
	for _, c := range r.conns {
		if c.udp == nil {
			continue // not connected yet
		}
		cs = append(cs, c)
		out = append(out, ConnInfo{UserID: c.info.UserID, ServerSession: c.info.ServerSession, ProxyPort: c.port})
	}
	r.mu.Unlock()
	for i, c := range cs {
		ci := &out[i]
		c.mu.Lock()
		for p := range c.channels {
			ci.Channels = append(ci.Channels, p)
		}
		c.mu.Unlock()
	}
	return out
}

// socket is an accepted WebSocket and the connection under it, which close
// shuts when the peer does not answer the close handshake.
type socket struct {
	ws  *websocket.Conn
	raw net.Conn
}

// accept upgrades to a WebSocket from any origin (the session pair is the credential).
func accept(w http.ResponseWriter, req *http.Request) (socket, error) {
	hw := &hijackRecorder{ResponseWriter: w}
	ws, err := websocket.Accept(hw, req, &websocket.AcceptOptions{InsecureSkipVerify: true})
	if err != nil {
		return socket{}, err
	}
	return socket{ws: ws, raw: hw.conn}, nil
}

// hijackRecorder keeps the connection the WebSocket library hijacks.
type hijackRecorder struct {
	http.ResponseWriter
	conn net.Conn
}

func (h *hijackRecorder) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	c, brw, err := http.NewResponseController(h.ResponseWriter).Hijack()
	h.conn = c
	return c, brw, err
}

// close closes the socket with code and reason, not waiting long for a peer
// that does not answer the close frame.
func (s socket) close(code websocket.StatusCode, reason string) {
	switch {
	case code == websocket.StatusNoStatusRcvd, code == websocket.StatusAbnormalClosure, code == websocket.StatusTLSHandshake, code < 1000, code >= 5000:
		code = websocket.StatusNormalClosure // codes that never go on the wire (the page's own close, echoed)
	}
	if len(reason) > 123 { // the limit of a close frame's reason
		reason = strings.ToValidUTF8(reason[:123], "")
	}
	done := make(chan struct{})
	go func() {
		_ = s.ws.Close(code, reason)
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(2 * time.Second):
		if s.raw != nil {
			_ = s.raw.Close()
		}
		<-done
	}
}

// ServeSession serves a page's session socket:
// GET …?ServerSession=…&ClientSession=… (a WebSocket; see the package doc).
func (r *Relay) ServeSession(w http.ResponseWriter, req *http.Request) {
	q := req.URL.Query()
	ss, cs := q.Get("ServerSession"), q.Get("ClientSession")
	sock, err := accept(w, req)
	if err != nil {
		return // Accept answered the HTTP request
	}
	sock.ws.SetReadLimit(4096)
	if ss == "" || cs == "" || len(ss) > maxSessionParam || len(cs) > maxSessionParam {
		sock.close(StatusBadRequest, "ServerSession and ClientSession required, 1–8192 bytes each")
		return
	}
	c, code, reason := r.connect(ss, cs)
	if c == nil {
		sock.close(code, reason)
		return
	}
	defer r.handlers.Done()
	c.serve(sock)
}

// connect registers a connection for ss, attaches it to the emulator's
// session and binds its proxy port. On failure it returns the close code.
// It registers before attaching so that the session's end, whenever it
// comes, finds the connection.
func (r *Relay) connect(ss, cs string) (*conn, websocket.StatusCode, string) {
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		return nil, websocket.StatusGoingAway, "harness stopping"
	}
	if len(r.conns) >= r.opts.MaxConns {
		r.mu.Unlock()
		return nil, StatusTooMany, fmt.Sprintf("too many connections (%d)", r.opts.MaxConns)
	}
	r.seq++
	c := &conn{r: r, id: rand.Text(), seq: r.seq, done: make(chan struct{}), channels: map[int]*channel{}}
	c.info.ServerSession = ss
	r.conns[c.id] = c
	r.bySession[ss] = append(r.bySession[ss], c)
	r.handlers.Add(1)
	r.mu.Unlock()

	fail := func(code websocket.StatusCode, reason string) (*conn, websocket.StatusCode, string) {
		r.remove(c)
		r.handlers.Done()
		return nil, code, reason
	}
	info, detach, err := r.s.Attach(ss, cs)
	switch {
	case errors.Is(err, caremu.ErrUnknownSession):
		return fail(StatusUnknownSession, "no live session has this ServerSession (never issued, or ended)")
	case errors.Is(err, caremu.ErrClientMismatch):
		return fail(StatusClientMismatch, "this ServerSession was created for another ClientSession")
	case err != nil:
		return fail(websocket.StatusInternalError, err.Error())
	}
	udp, err := r.bindProxyPort()
	if err != nil {
		detach()
		return fail(websocket.StatusInternalError, "bind a proxy port: "+err.Error())
	}
	// A newer start of the same ServerSession takes over from the older ones.
	r.mu.Lock()
	c.info, c.detach, c.udp = info, detach, udp
	c.port = udp.LocalAddr().(*net.UDPAddr).Port
	var older []*conn
	for _, o := range r.bySession[ss] {
		if o.seq < c.seq {
			older = append(older, o)
		}
	}
	r.mu.Unlock()
	for _, o := range older {
		o.end(StatusReplaced, "replaced by a newer start of this ServerSession")
	}
	return c, 0, ""
}

// remove forgets c, and when it had a proxy port, remembers when it closed.
func (r *Relay) remove(c *conn) {
	r.mu.Lock()
	defer r.mu.Unlock()
	delete(r.conns, c.id)
	ss := c.info.ServerSession
	list := r.bySession[ss]
	for i, o := range list {
		if o == c {
			list = append(list[:i:i], list[i+1:]...)
			break
		}
	}
	if len(list) == 0 {
		delete(r.bySession, ss)
	} else {
		r.bySession[ss] = list
	}
	if c.port != 0 {
		r.closedAt[c.port] = time.Now()
	}
}

// portQuarantine is how long a closed proxy port is not handed out again, so
// that an application still answering a page's old proxy port cannot reach
// another page that happens to get the port next (every session shares this
// host here, unlike on CAR). maxQuarantined bounds what is remembered.
const (
	portQuarantine = 10 * time.Minute
	maxQuarantined = 4096
)

// bindProxyPort binds a UDP port on 127.0.0.1 that no connection closed in
// the last portQuarantine.
func (r *Relay) bindProxyPort() (*net.UDPConn, error) {
	var rejected []*net.UDPConn
	defer func() {
		for _, u := range rejected {
			u.Close()
		}
	}()
	for range 32 {
		u, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
		if err != nil {
			return nil, err
		}
		if !r.recentlyClosed(u.LocalAddr().(*net.UDPAddr).Port) {
			return u, nil
		}
		rejected = append(rejected, u) // kept open while binding again, so the next port differs
	}
	return nil, errors.New("every port the system offered was closed lately")
}

func (r *Relay) recentlyClosed(port int) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	now := time.Now()
	if len(r.closedAt) > maxQuarantined/2 {
		for p, t := range r.closedAt {
			if now.Sub(t) > portQuarantine || len(r.closedAt) > maxQuarantined {
				delete(r.closedAt, p)
			}
		}
	}
	t, ok := r.closedAt[port]
	return ok && now.Sub(t) <= portQuarantine
}

// conn is one page connection: a session socket, its proxy port and its channels.
type conn struct {
	r    *Relay
	id   string
	seq  uint64
	info caremu.SessionInfo
	// Set by connect before serve; read-only afterwards.
	detach func()
	udp    *net.UDPConn
	port   int
	sock   socket // the session socket, set by serve

	endOnce sync.Once
	done    chan struct{} // closed by end
	code    websocket.StatusCode
	reason  string

	mu       sync.Mutex
	channels map[int]*channel // by destination port

	up, down, dropped atomic.Int64 // datagrams to the application, to the page, dropped
	queued            atomic.Int64 // bytes waiting in the channels' queues (Options.QueueBytes)
}

// end asks the connection to close with code and reason (the first call wins).
func (c *conn) end(code websocket.StatusCode, reason string) {
	c.endOnce.Do(func() {
		c.code, c.reason = code, reason
		close(c.done)
	})
}

func (c *conn) ended() bool {
	select {
	case <-c.done:
		return true
	default:
		return false
	}
}

// serve runs the connection until it ends, then tears it down.
func (c *conn) serve(sock socket) {
	c.sock = sock
	log := c.r.log.With("UserId", c.info.UserID, "proxyPort", c.port)
	var wg sync.WaitGroup
	defer func() {
		c.udp.Close()
		c.mu.Lock()
		chs := make([]*channel, 0, len(c.channels))
		for _, ch := range c.channels {
			chs = append(chs, ch)
		}
		c.mu.Unlock()
		for _, ch := range chs {
			ch.end(c.code, c.reason)
		}
		sock.close(c.code, c.reason)
		c.detach()
		wg.Wait()
		c.r.remove(c) // last, so that Conns lists a page until it is detached
		log.Info("data channel: page disconnected", "code", int(c.code), "reason", c.reason,
			"toApp", c.up.Load(), "toPage", c.down.Load(), "dropped", c.dropped.Load())
	}()
	if c.ended() { // the session ended while connecting
		return
	}
	hello, _ := json.Marshal(map[string]any{"type": "connected", "proxyPort": c.port, "userId": c.info.UserID, "conn": c.id})
	if err := c.write(websocket.MessageText, hello); err != nil {
		c.end(websocket.StatusInternalError, "write: "+err.Error())
		return
	}
	log.Info("data channel: page connected")
	wg.Go(c.readPage)
	wg.Go(c.readUDP)
	ping := time.NewTicker(c.r.opts.PingInterval)
	defer ping.Stop()
	for {
		select {
		case <-c.done:
			return
		case <-ping.C:
			ctx, cancel := context.WithTimeout(context.Background(), c.r.opts.WriteTimeout)
			err := sock.ws.Ping(ctx)
			cancel()
			if err != nil {
				c.end(websocket.StatusGoingAway, "the page stopped answering pings")
			}
		}
	}
}

func (c *conn) write(typ websocket.MessageType, p []byte) error {
	ctx, cancel := context.WithTimeout(context.Background(), c.r.opts.WriteTimeout)
	defer cancel()
	return c.sock.ws.Write(ctx, typ, p)
}

// readPage reads the page's control messages (pings) until the socket closes.
func (c *conn) readPage() {
	for {
		_, data, err := c.sock.ws.Read(context.Background())
		if err != nil {
			if code := websocket.CloseStatus(err); code != -1 {
				c.end(code, "closed by the page")
			} else {
				c.end(websocket.StatusGoingAway, "the page went away")
			}
			return
		}
		var msg struct {
			Type string
			T    json.RawMessage
		}
		if json.Unmarshal(data, &msg) == nil && msg.Type == "ping" {
			pong, _ := json.Marshal(map[string]any{"type": "pong", "t": msg.T})
			if err := c.write(websocket.MessageText, pong); err != nil {
				c.end(websocket.StatusGoingAway, "write: "+err.Error())
				return
			}
		}
	}
}

// readUDP hands each datagram arriving at the proxy port to the channel of
// its source port, until the port closes.
func (c *conn) readUDP() {
	buf := make([]byte, MaxDatagram+1)
	for {
		n, src, err := c.udp.ReadFromUDPAddrPort(buf)
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			continue // e.g. an ICMP error reported on the socket
		}
		if !src.Addr().Unmap().IsLoopback() {
			c.dropped.Add(1)
			continue
		}
		c.mu.Lock() // held while offering, so that a removed channel gets nothing more (see drain)
		ch := c.channels[int(src.Port())]
		ok := ch != nil && ch.offer(buf[:n])
		c.mu.Unlock()
		if !ok {
			c.dropped.Add(1)
		}
	}
}

// ServeChannel serves a data channel socket of a connection:
// GET …?conn=<id from the connected message>&destPort=N&protocol=text|binary.
// Refusals are plain HTTP errors before the upgrade: 404 unknown or ended
// connection, 400 bad destPort or protocol, 409 a channel to destPort is
// open, 429 MaxChannels are open.
func (r *Relay) ServeChannel(w http.ResponseWriter, req *http.Request) {
	q := req.URL.Query()
	r.mu.Lock()
	c := r.conns[q.Get("conn")]
	if c == nil || c.udp == nil || r.closed || c.ended() {
		r.mu.Unlock()
		http.Error(w, "no such connection: start first, and use the conn of its connected message", http.StatusNotFound)
		return
	}
	r.handlers.Add(1)
	r.mu.Unlock()
	defer r.handlers.Done()
	port, err := strconv.Atoi(q.Get("destPort"))
	if err != nil || port < 1 || port > 65535 {
		http.Error(w, "destPort: want a port 1–65535", http.StatusBadRequest)
		return
	}
	var text bool
	switch q.Get("protocol") {
	case "", "text":
		text = true
	case "binary":
	default:
		http.Error(w, "protocol: want text or binary", http.StatusBadRequest)
		return
	}
	ch, status, msg := c.addChannel(port, text)
	if ch == nil {
		http.Error(w, msg, status)
		return
	}
	sock, err := accept(w, req)
	if err != nil {
		c.removeChannel(ch)
		return
	}
	sock.ws.SetReadLimit(MaxDatagram)
	ch.serve(sock)
}

func (c *conn) addChannel(port int, text bool) (*channel, int, string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.channels[port] != nil {
		return nil, http.StatusConflict, fmt.Sprintf("a channel to port %d is open on this connection", port)
	}
	if len(c.channels) >= c.r.opts.MaxChannels {
		return nil, http.StatusTooManyRequests, fmt.Sprintf("too many channels (%d) on this connection", c.r.opts.MaxChannels)
	}
	ch := &channel{c: c, port: port, text: text, queue: make(chan []byte, 256), done: make(chan struct{})}
	ch.dest = netip.AddrPortFrom(netip.AddrFrom4([4]byte{127, 0, 0, 1}), uint16(port))
	c.channels[port] = ch
	if c.ended() { // the connection ended meanwhile: its teardown may have missed this channel
		ch.end(c.code, c.reason)
	}
	return ch, 0, ""
}

func (c *conn) removeChannel(ch *channel) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.channels[ch.port] == ch {
		delete(c.channels, ch.port)
	}
}

// toValidUTF8 replaces each invalid byte sequence of p with U+FFFD, as a
// browser's TextDecoder does.
func toValidUTF8(p []byte) []byte {
	if utf8.Valid(p) {
		return p
	}
	return []byte(strings.ToValidUTF8(string(p), "\uFFFD"))
}

// channel is one data channel: a socket to the page and a destination port.
type channel struct {
	c     *conn
	port  int
	dest  netip.AddrPort
	text  bool
	queue chan []byte // datagrams for the page (their bytes count in conn.queued)

	endOnce sync.Once
	done    chan struct{}
	code    websocket.StatusCode
	reason  string
}

func (ch *channel) end(code websocket.StatusCode, reason string) {
	ch.endOnce.Do(func() {
		ch.code, ch.reason = code, reason
		close(ch.done)
	})
}

// offer queues a copy of a datagram for the page; false when the queue or
// the connection's budget is full.
func (ch *channel) offer(p []byte) bool {
	n := int64(len(p))
	if ch.c.queued.Add(n) > int64(ch.c.r.opts.QueueBytes) {
		ch.c.queued.Add(-n)
		return false
	}
	select {
	case ch.queue <- append([]byte(nil), p...):
		return true
	default:
		ch.c.queued.Add(-n)
		return false
	}
}

// serve relays until the channel or its connection ends.
func (ch *channel) serve(sock socket) {
	c := ch.c
	var wg sync.WaitGroup
	wg.Go(func() { // page → application
		for {
			_, data, err := sock.ws.Read(context.Background())
			if err != nil {
				if code := websocket.CloseStatus(err); code != -1 {
					ch.end(code, "closed by the page")
				} else {
					ch.end(websocket.StatusGoingAway, "the page went away")
				}
				return
			}
			if _, err := c.udp.WriteToUDPAddrPort(data, ch.dest); err != nil {
				c.dropped.Add(1)
				continue
			}
			c.up.Add(1)
		}
	})
	wg.Go(func() { // application → page
		for {
			select {
			case <-ch.done:
				return
			case p := <-ch.queue:
				c.queued.Add(-int64(len(p)))
				typ := websocket.MessageBinary
				if ch.text {
					typ = websocket.MessageText
					p = toValidUTF8(p) // a text frame must be UTF-8, or the browser fails the socket
				}
				ctx, cancel := context.WithTimeout(context.Background(), c.r.opts.WriteTimeout)
				err := sock.ws.Write(ctx, typ, p)
				cancel()
				if err != nil {
					ch.end(websocket.StatusGoingAway, "write: "+err.Error())
					return
				}
				c.down.Add(1)
			}
		}
	})
	select {
	case <-ch.done:
	case <-c.done:
		ch.end(c.code, c.reason)
	}
	sock.close(ch.code, ch.reason)
	wg.Wait()
	c.removeChannel(ch)
	ch.drain()
}

// drain gives back the budget of the datagrams left in the queue of a removed channel.
func (ch *channel) drain() {
	for {
		select {
		case p := <-ch.queue:
			ch.c.queued.Add(-int64(len(p)))
		default:
			return
		}
	}
}

// Refuse accepts a session socket and closes it at once with code and
// reason, so that the page learns why (a browser sees no HTTP status of a
// refused upgrade): the harness answers so when it has no emulator to relay.
func Refuse(w http.ResponseWriter, req *http.Request, code websocket.StatusCode, reason string) {
	sock, err := accept(w, req)
	if err != nil {
		return
	}
	sock.close(code, reason)
}
