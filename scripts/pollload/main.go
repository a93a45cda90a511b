// Command pollload measures what one answered poll costs a carqueue HTTP server: N users join
// through /start, then each polls /poll once per interval at a random phase (open loop), or C
// users poll back to back (closed loop, -closed C), over keep-alive HTTP/1.1. Every answer is
// checked: while nobody moves (admission impossible: run the server with its capacity held,
// see -hold), each user's Position must be exactly the one /start gave it, and the N positions
// must be 1..N. It reports answers/s, latency percentiles, errors by kind, and the CPU
// (utime+stime from /proc/<pid>/stat) and RSS of the given PIDs over the measured span, so
// CPU per answer = (server + Redis CPU) / answers; and its own CPU per answer, so one can see
// that the generator did not eat the CPU it measures.
//
// To stay cheap it speaks HTTP/1.1 itself on raw keep-alive TCP connections: each request is
// prebuilt bytes written in one call, each answer is read with a bufio.Reader (status line,
// Content-Length, body) and checked with a byte search for its Status and Position, with no
// net/http client, no JSON decoding and no allocation per poll.
//
//	go run ./scripts/pollload -url http://127.0.0.1:8080 -users 10000 -interval 5s -duration 30s -pids 1234,5678
//	go run ./scripts/pollload -url http://127.0.0.1:8080 -users 1000 -closed 1000 -duration 15s -pids 1234,5678
package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/url"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// answer is the envelope as /start and the hold's polls decode it (not the measured polls).
type answer struct {
	Code int    `json:"Code"`
	Msg  string `json:"Msg"`
	Data struct {
		Status   string `json:"Status"`
		Ticket   string `json:"Ticket"`
		Position int64  `json:"Position"`
	} `json:"Data"`
}

type user struct {
	id   string
	pos  int64
	req  []byte // the prebuilt POST /poll request
	conn *conn  // open loop with one connection per user
}

type stats struct {
	mu     sync.Mutex
	lat    []time.Duration
	errs   map[string]int
	n      atomic.Int64
	record atomic.Bool
}

func (s *stats) fail(kind string) {
	s.mu.Lock()
	s.errs[kind]++
	s.mu.Unlock()
}

// addLat merges one worker's latencies at its end.
func (s *stats) addLat(l []time.Duration) {
	s.mu.Lock()
	s.lat = append(s.lat, l...)
	s.mu.Unlock()
}

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "pollload:", err)
		os.Exit(1)
	}
}

func run() error {
	base := flag.String("url", "http://127.0.0.1:8080", "server base URL (http only)")
	users := flag.Int("users", 1000, "users to join through /start")
	interval := flag.Duration("interval", 5*time.Second, "open loop: one poll per user per interval, random phase")
	closed := flag.Int("closed", 0, "closed loop: this many users poll back to back, each on its own connection (0: open loop)")
	duration := flag.Duration("duration", 30*time.Second, "measured span")
	warmup := flag.Duration("warmup", 0, "unmeasured span before it (default: one interval, or 2s closed loop)")
	pidList := flag.String("pids", "", "comma-separated PIDs whose CPU and RSS to report (server, redis-server)")
	hold := flag.Bool("hold", true, "first start one user and wait until it holds a slot, so the N users cannot move (run the server with capacity 1)")
	prefix := flag.String("prefix", "", "UserId prefix (default: random per run)")
	conns := flag.Int("conns", 0, "open loop: keep-alive connections shared by the users (default: one per user)")
	idle := flag.Bool("idle", false, "memory per idle keep-alive connection: every user polls once on its own connection, then all stay open and idle; report the RSS growth of the given PIDs per connection")
	flag.Parse()
	if *prefix == "" {
		*prefix = fmt.Sprintf("pl%06d-", rand.IntN(1_000_000))
	}
	if *users < 1 {
		return errors.New("-users: at least 1")
	}
	pids, err := parsePids(*pidList)
	if err != nil {
		return err
	}
	tgt, err := parseTarget(*base)
	if err != nil {
		return err
	}

	if *hold {
		if err := holdSlot(tgt, *prefix+"hold"); err != nil {
			return err
		}
	}
	us, err := join(tgt, *prefix, *users)
	if err != nil {
		return err
	}
	if *idle {
		return idleConns(tgt, us, pids)
	}

	st := &stats{errs: map[string]int{}}
	warm := *warmup
	if warm == 0 {
		warm = *interval
		if *closed > 0 {
			warm = 2 * time.Second
		}
	}
	var stop atomic.Bool
	stopped := make(chan struct{}) // closed with stop set: wakes the open loop's users
	var wg sync.WaitGroup
	// pollOnce polls u on c and records the outcome; lat collects the worker's latencies.
	pollOnce := func(c *conn, u *user, lat *[]time.Duration) {
		t := time.Now()
		status, code, pos, err := c.poll(t, u.req)
		d := time.Since(t)
		if stop.Load() || !st.record.Load() {
			return
		}
		switch {
		case err != nil:
			st.fail("transport: " + shortErr(err))
		case status != 200 || code != "0":
			st.fail(fmt.Sprintf("http %d code %s", status, code))
		case pos != u.pos:
			st.fail("position moved or status not Queued")
		default:
			st.n.Add(1)
			*lat = append(*lat, d)
		}
	}
	if *closed > 0 {
		for i := 0; i < *closed; i++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				c := &conn{t: tgt}
				defer c.close()
				lat := make([]time.Duration, 0, 1024)
				for j := i; !stop.Load(); j += *closed {
					pollOnce(c, us[j%len(us)], &lat)
				}
				st.addLat(lat)
			}()
		}
	} else {
		// Users share -conns connections (a channel as the pool), or each has its own.
		var pool chan *conn
		if *conns > 0 && *conns < len(us) {
			pool = make(chan *conn, *conns)
			for range *conns {
				pool <- &conn{t: tgt}
			}
		}
		for _, u := range us {
			wg.Add(1)
			go func() {
				defer wg.Done()
				var lat []time.Duration
				next := time.Now().Add(time.Duration(rand.Int64N(int64(*interval))))
				t := time.NewTimer(time.Until(next))
				defer t.Stop()
				for {
					select {
					case <-t.C:
					case <-stopped:
					}
					if stop.Load() {
						break
					}
					if pool == nil {
						if u.conn == nil {
							u.conn = &conn{t: tgt}
						}
						pollOnce(u.conn, u, &lat)
					} else {
						c := <-pool
						pollOnce(c, u, &lat)
						pool <- c
					}
					next = next.Add(*interval)
					t.Reset(time.Until(next))
				}
				st.addLat(lat)
				if u.conn != nil {
					u.conn.close()
				}
			}()
		}
		defer func() {
			if pool != nil {
				for range *conns {
					(<-pool).close()
				}
			}
		}()
	}
	time.Sleep(warm)
	cpu0, err := cpuOf(pids)
	if err != nil {
		return err
	}
	self0, _ := cpuOf([]int{os.Getpid()})
	st.record.Store(true)
	m0 := time.Now()
	rssMax := make([]int64, len(pids))
	tick := time.NewTicker(500 * time.Millisecond)
	deadline := time.After(*duration)
loop:
	for {
		select {
		case <-tick.C:
			for i, p := range pids {
				if r := rssOf(p); r > rssMax[i] {
					rssMax[i] = r
				}
			}
		case <-deadline:
			break loop
		}
	}
	st.record.Store(false)
	span := time.Since(m0)
	cpu1, err := cpuOf(pids)
	if err != nil {
		return err
	}
	self1, _ := cpuOf([]int{os.Getpid()})
	stop.Store(true)
	close(stopped)
	wg.Wait()

	n := st.n.Load()
	st.mu.Lock()
	defer st.mu.Unlock()
	slices.Sort(st.lat)
	pct := func(q float64) time.Duration {
		if len(st.lat) == 0 {
			return 0
		}
		return st.lat[min(len(st.lat)-1, int(q*float64(len(st.lat))))]
	}
	mode := fmt.Sprintf("open loop, %d users, one poll each per %s", len(us), *interval)
	if *closed > 0 {
		mode = fmt.Sprintf("closed loop, %d concurrent of %d users", *closed, len(us))
	}
	fmt.Printf("%s, %s measured\n", mode, span.Round(time.Millisecond))
	fmt.Printf("answers: %d correct, %.0f/s\n", n, float64(n)/span.Seconds())
	fmt.Printf("latency: p50 %s p90 %s p99 %s max %s\n", pct(.5), pct(.9), pct(.99), pct(1))
	errTotal := 0
	for k, v := range st.errs {
		fmt.Printf("error: %s ×%d\n", k, v)
		errTotal += v
	}
	fmt.Printf("errors: %d\n", errTotal)
	var cpuSum float64
	for i, p := range pids {
		c := (cpu1[i] - cpu0[i]).Seconds()
		cpuSum += c
		fmt.Printf("pid %d (%s): cpu %.3fs (%.2f cores), rss max %.1f MB, ms/answer %.4f\n",
			p, comm(p), c, c/span.Seconds(), float64(rssMax[i])/1e6, 1000*c/float64(max(n, 1)))
	}
	if len(pids) > 0 {
		fmt.Printf("cpu per answer (all pids): %.4f ms\n", 1000*cpuSum/float64(max(n, 1)))
	}
	if len(self0) == 1 && len(self1) == 1 {
		c := (self1[0] - self0[0]).Seconds()
		fmt.Printf("pollload itself: cpu %.3fs (%.2f cores), ms/answer %.4f\n", c, c/span.Seconds(), 1000*c/float64(max(n, 1)))
	}
	if la, err := os.ReadFile("/proc/loadavg"); err == nil {
		fmt.Printf("load average: %s\n", strings.Join(strings.Fields(string(la))[:3], " "))
	}
	if errTotal > 0 {
		return fmt.Errorf("%d wrong or failed answers", errTotal)
	}
	return nil
}

func parsePids(list string) ([]int, error) {
	var pids []int
	for _, p := range strings.Split(list, ",") {
		if p = strings.TrimSpace(p); p != "" {
			n, err := strconv.Atoi(p)
			if err != nil {
				return nil, fmt.Errorf("-pids: %q is not a PID", p)
			}
			pids = append(pids, n)
		}
	}
	return pids, nil
}

// target is where the requests go: the address to dial, the Host header and the path prefix.
type target struct {
	addr, host, path string
}

func parseTarget(base string) (target, error) {
	u, err := url.Parse(base)
	if err != nil || u.Scheme != "http" || u.Host == "" {
		return target{}, fmt.Errorf("-url: %q is not an http://host:port URL", base)
	}
	addr := u.Host
	if u.Port() == "" {
		addr = net.JoinHostPort(u.Hostname(), "80")
	}
	return target{addr: addr, host: u.Host, path: strings.TrimRight(u.Path, "/")}, nil
}

// request builds one POST with a JSON body as HTTP/1.1 bytes.
func (t target) request(route string, body []byte) []byte {
	return fmt.Appendf(nil, "POST %s/%s HTTP/1.1\r\nHost: %s\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s",
		t.path, route, t.host, len(body), body)
}

// conn is one keep-alive connection, dialled on first use and again after a failure.
type conn struct {
	t        target
	c        net.Conn
	r        *bufio.Reader
	body     []byte
	deadline time.Time
}

func (c *conn) close() {
	if c.c != nil {
		c.c.Close()
		c.c = nil
	}
}

// roundTrip writes req and reads the answer into c.body; it returns the HTTP status.
func (c *conn) roundTrip(now time.Time, req []byte) (int, error) {
	if c.c == nil {
		nc, err := net.DialTimeout("tcp", c.t.addr, 5*time.Second)
		if err != nil {
			return 0, err
		}
		c.c = nc
		if c.r == nil {
			c.r = bufio.NewReaderSize(nc, 4096)
		} else {
			c.r.Reset(nc)
		}
		c.deadline = time.Time{}
	}
	// One deadline for many requests: moving it costs a timer update, so only every 5 s.
	if now.After(c.deadline.Add(-25 * time.Second)) {
		c.deadline = now.Add(30 * time.Second)
		_ = c.c.SetDeadline(c.deadline)
	}
	status, keep, err := c.exchange(req)
	if err != nil || !keep {
		c.close()
	}
	return status, err
}

func (c *conn) exchange(req []byte) (status int, keep bool, err error) {
	if _, err := c.c.Write(req); err != nil {
		return 0, false, err
	}
	line, err := c.r.ReadSlice('\n')
	if err != nil {
		return 0, false, err
	}
	if len(line) < 12 || !bytes.HasPrefix(line, []byte("HTTP/1.")) {
		return 0, false, fmt.Errorf("bad status line %.40q", line)
	}
	status = int(line[9]-'0')*100 + int(line[10]-'0')*10 + int(line[11]-'0')
	keep = line[7] == '1' // HTTP/1.0 closes unless told otherwise; we never ask
	length := -1
	for {
		line, err = c.r.ReadSlice('\n')
		if err != nil {
			return status, false, err
		}
		if len(line) <= 2 {
			break
		}
		name, value, ok := bytes.Cut(line, []byte(":"))
		if !ok {
			return status, false, fmt.Errorf("bad header line %.40q", line)
		}
		value = bytes.TrimSpace(value)
		switch {
		case bytes.EqualFold(name, []byte("Content-Length")):
			n, err := strconv.Atoi(string(value)) // no allocation: the compiler converts in place
			if err != nil || n < 0 {
				return status, false, fmt.Errorf("bad Content-Length %q", value)
			}
			length = n
		case bytes.EqualFold(name, []byte("Connection")):
			if bytes.EqualFold(value, []byte("close")) {
				keep = false
			}
		case bytes.EqualFold(name, []byte("Transfer-Encoding")):
			return status, false, errors.New("chunked answer (no Content-Length)")
		}
	}
	if length < 0 {
		return status, false, errors.New("answer without Content-Length")
	}
	if cap(c.body) < length {
		c.body = make([]byte, length)
	}
	c.body = c.body[:length]
	if _, err := io.ReadFull(c.r, c.body); err != nil {
		return status, false, err
	}
	return status, keep, nil
}

var (
	keyCode     = []byte(`"Code":`)
	keyPosition = []byte(`"Position":`)
	queued      = []byte(`"Status":"Queued"`)
)

// poll sends one prebuilt /poll and reads the envelope's Code and, when the Status is Queued,
// its Position (-1 otherwise) with byte searches.
func (c *conn) poll(now time.Time, req []byte) (status int, code string, pos int64, err error) {
	status, err = c.roundTrip(now, req)
	if err != nil {
		return status, "", -1, err
	}
	b := c.body
	code = "?"
	if i := bytes.Index(b, keyCode); i >= 0 {
		j := i + len(keyCode)
		k := j
		for k < len(b) && (b[k] == '-' || b[k] >= '0' && b[k] <= '9') {
			k++
		}
		if k-j == 1 && b[j] == '0' {
			code = "0" // the common case, without an allocation
		} else {
			code = string(b[j:k])
		}
	}
	pos = -1
	if bytes.Contains(b, queued) {
		if i := bytes.Index(b, keyPosition); i >= 0 {
			pos = 0
			for k := i + len(keyPosition); k < len(b) && b[k] >= '0' && b[k] <= '9'; k++ {
				pos = pos*10 + int64(b[k]-'0')
			}
		}
	}
	return status, code, pos, nil
}

// post sends one request and decodes the envelope (for /start and the hold, not measured).
func (c *conn) post(route string, body []byte, out *answer) (int, error) {
	status, err := c.roundTrip(time.Now(), c.t.request(route, body))
	if err != nil {
		return status, err
	}
	if err := json.Unmarshal(c.body, out); err != nil {
		return status, fmt.Errorf("not the JSON envelope: %.60q", c.body)
	}
	return status, nil
}

// join starts the users in order, 64 at a time, and checks that their positions are 1..N.
func join(t target, prefix string, n int) ([]*user, error) {
	us := make([]*user, n)
	for i := range us {
		us[i] = &user{id: prefix + strconv.Itoa(i)}
	}
	t0 := time.Now()
	var wg sync.WaitGroup
	var next atomic.Int64
	var startErr atomic.Value
	for range min(64, n) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c := &conn{t: t}
			defer c.close()
			for {
				i := int(next.Add(1) - 1)
				if i >= n || startErr.Load() != nil {
					return
				}
				u := us[i]
				b, _ := json.Marshal(map[string]string{"UserId": u.id, "ClientSession": "cs-" + strconv.Itoa(i)})
				var a answer
				code, err := c.post("start", b, &a)
				if err != nil || code != 200 || a.Data.Status != "Queued" {
					startErr.Store(fmt.Errorf("start %s: http %d status %q msg %q err %v", u.id, code, a.Data.Status, a.Msg, err))
					return
				}
				u.pos = a.Data.Position
				pb, _ := json.Marshal(map[string]string{"UserId": u.id, "Ticket": a.Data.Ticket})
				u.req = t.request("poll", pb)
			}
		}()
	}
	wg.Wait()
	if e := startErr.Load(); e != nil {
		return nil, e.(error)
	}
	seen := make([]bool, n+1)
	for _, u := range us {
		if u.pos >= 1 && u.pos <= int64(n) {
			seen[u.pos] = true
		}
	}
	for p := 1; p <= n; p++ {
		if !seen[p] {
			return nil, fmt.Errorf("positions after /start are not 1..%d (missing %d): is admission possible? run the server with capacity 1 and -hold", n, p)
		}
	}
	fmt.Printf("joined %d users in %s\n", n, time.Since(t0).Round(time.Millisecond))
	return us, nil
}

// holdSlot starts one user and polls until it holds the only slot, so nobody after it moves.
func holdSlot(t target, id string) error {
	c := &conn{t: t}
	defer c.close()
	b, _ := json.Marshal(map[string]string{"UserId": id, "ClientSession": "hold"})
	var a answer
	if code, err := c.post("start", b, &a); err != nil || code != 200 {
		return fmt.Errorf("hold: start: http %d: %v %s", code, err, a.Msg)
	}
	pb, _ := json.Marshal(map[string]string{"UserId": id, "Ticket": a.Data.Ticket})
	for range 600 {
		switch a.Data.Status {
		case "Ready", "Active":
			return nil
		case "Queued", "Admitting":
		default:
			return fmt.Errorf("hold: user is %s (%s)", a.Data.Status, a.Msg)
		}
		time.Sleep(100 * time.Millisecond)
		if code, err := c.post("poll", pb, &a); err != nil || code != 200 {
			return fmt.Errorf("hold: poll: http %d: %v", code, err)
		}
	}
	return errors.New("hold: not admitted within 60s (is the reaper running?)")
}

func shortErr(err error) string {
	s := err.Error()
	if i := strings.LastIndex(s, ": "); i >= 0 {
		s = s[i+2:]
	}
	return s
}

// cpuOf reads utime+stime of each PID.
func cpuOf(pids []int) ([]time.Duration, error) {
	out := make([]time.Duration, len(pids))
	for i, p := range pids {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", p))
		if err != nil {
			return nil, fmt.Errorf("-pids: %w", err)
		}
		s := string(b)
		f := strings.Fields(s[strings.LastIndexByte(s, ')')+2:])
		// fields after ")": state is f[0]; utime is stat field 14, stime 15 → f[11], f[12].
		ut, _ := strconv.ParseInt(f[11], 10, 64)
		stt, _ := strconv.ParseInt(f[12], 10, 64)
		out[i] = time.Duration(ut+stt) * time.Second / 100 // USER_HZ is 100 on Linux
	}
	return out, nil
}

func rssOf(pid int) int64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	for _, l := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(l, "VmRSS:") {
			f := strings.Fields(l)
			kb, _ := strconv.ParseInt(f[1], 10, 64)
			return kb * 1024
		}
	}
	return 0
}

func comm(pid int) string {
	b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/comm", pid))
	return strings.TrimSpace(string(b))
}

// idleConns measures RSS per idle keep-alive connection: RSS of the PIDs once the join
// connections are closed, then again after every user has polled once on a connection of its
// own (all open at once), all idle.
func idleConns(t target, us []*user, pids []int) error {
	time.Sleep(2 * time.Second)
	rss0 := make([]int64, len(pids))
	for i, p := range pids {
		rss0[i] = rssOf(p)
	}
	cs := make([]*conn, len(us))
	var wg sync.WaitGroup
	var bad atomic.Int64
	sem := make(chan struct{}, 256) // dial at a pace the listen backlog takes
	for i, u := range us {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer func() { <-sem; wg.Done() }()
			c := &conn{t: t}
			cs[i] = c
			if status, code, pos, err := c.poll(time.Now(), u.req); err != nil || status != 200 || code != "0" || pos != u.pos || c.c == nil {
				bad.Add(1)
			}
		}()
	}
	wg.Wait()
	time.Sleep(3 * time.Second)
	open := 0
	for _, c := range cs {
		if c.c != nil {
			open++
		}
	}
	fmt.Printf("idle keep-alive connections: %d open of %d (failed polls %d)\n", open, len(us), bad.Load())
	for i, p := range pids {
		r := rssOf(p)
		fmt.Printf("pid %d (%s): rss %.1f MB -> %.1f MB, %.1f KB per idle connection\n",
			p, comm(p), float64(rss0[i])/1e6, float64(r)/1e6, float64(r-rss0[i])/1024/float64(max(open, 1)))
	}
	for _, c := range cs {
		c.close()
	}
	if bad.Load() > 0 {
		return fmt.Errorf("%d failed polls", bad.Load())
	}
	return nil
}
