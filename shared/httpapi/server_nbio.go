package httpapi

import (
	"context"
	"errors"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/lesismal/nbio"
	"github.com/lesismal/nbio/logging"
	"github.com/lesismal/nbio/nbhttp"
)

// The server mode's limits. A request's head and body are buffered whole before the handler
// runs, so these bound what one connection can make the server hold: a body up to
// maxServerBody still gets the contract's JSON 413 (MaxBody is far below it); beyond it, or
// beyond maxServerRead buffered, the connection is closed.
const (
	maxServerBody  = 64 << 10
	maxServerRead  = maxServerBody + 16<<10
	serverIdleTime = 2 * time.Minute // an idle keep-alive connection is closed after this
)

var quietNbio sync.Once

// Server is the server mode's HTTP server. It runs an http.Handler on nbio's event loop
// (github.com/lesismal/nbio/nbhttp) rather than net/http, because what a waiting line holds
// most of is idle keep-alive connections: net/http keeps a goroutine and its buffers per
// connection (~18 KB each, measured with scripts/pollceiling), nbio an entry in epoll and a
// small parser (~1.3 KB), for ~0.006 ms more CPU per answer. Handlers run on nbio's goroutine
// pool, so they may block (Redis, CAR) without stalling the loop.
type Server struct {
	Addr string

	h        http.Handler
	e        *nbhttp.Engine
	ln       *drainListener
	inflight atomic.Int64
	opened   atomic.Int64
	work     workers
	draining atomic.Bool
}

// NewServer returns the server mode's server for h on addr; Start starts it.
func NewServer(addr string, h http.Handler) *Server {
	return &Server{Addr: addr, h: h}
}

// Start listens and serves in the background; it returns once the port is open, with Addr
// the address listened on.
func (s *Server) Start() error {
	quietNbio.Do(func() { logging.SetLevel(logging.LevelError) }) // no start/stop chatter in the JSON logs
	ln, err := net.Listen("tcp", s.Addr)
	if err != nil {
		return err
	}
	s.Addr = ln.Addr().String() // the port chosen, when addr asked for any
	s.work.ch = make(chan func())
	s.ln = &drainListener{Listener: ln, closed: make(chan struct{})}
	s.e = nbhttp.NewEngine(nbhttp.Config{
		Network:         "tcp",
		Addrs:           []string{s.Addr},
		Listen:          func(string, string) (net.Listener, error) { return s.ln, nil },
		Handler:         http.HandlerFunc(s.serve),
		ReadBufferSize:  4096,
		ReadLimit:       maxServerRead,
		MaxHTTPBodySize: maxServerBody,
		KeepaliveTime:   serverIdleTime,
		WriteTimeout:    10 * time.Second,
		ServerExecutor:  s.work.run,
	})
	// nbio hands an accepted connection to its event loop through epoll, which the race
	// detector cannot see: an atomic written when the connection opens (in the accepting
	// goroutine, before epoll learns of it) and read before its data is parsed makes that
	// hand-off visible, at the cost of one atomic load per read.
	s.e.OnOpen(func(net.Conn) { s.opened.Add(1) })
	s.e.Engine.OnData(func(c *nbio.Conn, data []byte) {
		s.opened.Load()
		parse(c, data)
	})
	if err := s.e.Start(); err != nil {
		_ = ln.Close()
		return err
	}
	return nil
}

// serve counts the requests in flight for Shutdown, and answers those that arrive while it
// drains with Connection: close, so that the client's keep-alive connection ends with its
// answer. (A request already running when the drain begins has its head written without it;
// its connection is closed once it is answered, as net/http closes an idle one.)
func (s *Server) serve(w http.ResponseWriter, r *http.Request) {
	s.inflight.Add(1)
	defer s.inflight.Add(-1)
	if s.draining.Load() {
		r.Close = true
	}
	s.h.ServeHTTP(w, r)
}

// Shutdown stops gracefully, as net/http's Server.Shutdown does: it stops accepting, lets the
// requests in flight finish (their connections then close), closes the idle connections and
// stops the event loop. If ctx ends first, the connections left are closed and ctx's error is
// returned.
func (s *Server) Shutdown(ctx context.Context) error {
	if s.e == nil {
		return nil
	}
	s.draining.Store(true)
	s.ln.stopAccepting()
	t := time.NewTicker(10 * time.Millisecond)
	defer t.Stop()
	var err error
wait:
	for s.inflight.Load() > 0 {
		select {
		case <-ctx.Done():
			err = ctx.Err()
			break wait
		case <-t.C:
		}
	}
	// nbio's Shutdown closes every connection, then waits for its loops; give it a bound of
	// its own so a ctx already ended still stops the loops.
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	s.e.Shutdown(sctx) //nolint:errcheck // the connections are closed either way
	return err
}

// badRequest is the answer to bytes that are not an HTTP/1.x request (a request line that does
// not parse, such as a path with a bare %), as net/http gives it: nbio would only close the
// connection.
const badRequest = "HTTP/1.1 400 Bad Request\r\nContent-Type: text/plain; charset=utf-8\r\n" +
	"Content-Length: 15\r\nConnection: close\r\n\r\n400 Bad Request"

// parse feeds a connection's bytes to its nbio parser (what nbhttp's own data handler does),
// and when they are not HTTP answers 400 and closes, after the answers to the requests before
// them (c.Execute runs a connection's jobs in order).
func parse(c *nbio.Conn, data []byte) {
	defer func() {
		if recover() != nil {
			_ = c.Close()
		}
	}()
	p, ok := c.Session().(nbhttp.ParserCloser)
	if !ok || p == nil {
		_ = c.Close()
		return
	}
	if err := p.Parse(data); err != nil {
		if !c.Execute(func() { _, _ = c.Write([]byte(badRequest)); _ = c.Close() }) {
			_ = c.Close()
		}
	}
}

// maxWorkers bounds the long-lived handler goroutines; past it, a request runs on a goroutine
// of its own that ends with it.
const maxWorkers = 256

// workers runs nbio's handler tasks on long-lived goroutines: a request's handler goes deep
// (JSON, go-redis), so a fresh goroutine per request (nbio's default pool) pays for growing
// its stack every time (~7% of the server's CPU at saturation); a worker keeps its grown stack.
// A task goes to a worker parked on the unbuffered channel, else to a new worker (up to
// maxWorkers), else to a one-off goroutine, so a task never waits for a busy worker (a handler
// may block for seconds on CAR).
type workers struct {
	ch chan func()
	n  atomic.Int64
	mu sync.Mutex
}

func (w *workers) run(f func()) {
	select {
	case w.ch <- f:
		return
	default:
	}
	if w.n.Add(1) <= maxWorkers {
		go w.loop(f)
		return
	}
	w.n.Add(-1)
	go safeCall(f)
}

func (w *workers) loop(f func()) {
	for {
		safeCall(f)
		f = <-w.ch
	}
}

// safeCall runs f, and a panic that escapes it (ServeHTTP recovers its own) ends only f.
func safeCall(f func()) {
	defer func() { _ = recover() }()
	f()
}

// drainListener lets Shutdown stop accepting before nbio's own shutdown: the real listener
// closes (new connections are refused), while nbio's accept loop waits in Accept until nbio
// closes the listener itself, rather than spinning on the error.
type drainListener struct {
	net.Listener
	once, stop sync.Once
	closed     chan struct{}
	backoff    time.Duration // only nbio's one accepting goroutine reads and writes it
}

func (l *drainListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	switch {
	case err == nil:
		l.backoff = 0
	case errors.Is(err, net.ErrClosed):
		<-l.closed
	default:
		// nbio retries at once: out of file descriptors (EMFILE), that would spin a core.
		// Back off as net/http does, 5 ms doubling up to 1 s.
		l.backoff = min(max(2*l.backoff, 5*time.Millisecond), time.Second)
		select {
		case <-time.After(l.backoff):
		case <-l.closed:
		}
	}
	return c, err
}

func (l *drainListener) stopAccepting() {
	l.stop.Do(func() { _ = l.Listener.Close() })
}

func (l *drainListener) Close() error {
	l.stopAccepting()
	l.once.Do(func() { close(l.closed) })
	return nil
}
