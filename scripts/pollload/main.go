// Command pollload measures what one answered poll costs a carqueue HTTP server: N users join
// through /start, then each polls /poll once per interval at a random phase (open loop), or C
// users poll back to back (closed loop, -closed C), over keep-alive HTTP. Every answer is
// checked: while nobody moves (admission impossible: run the server with its capacity held,
// see -hold), each user's Position must be exactly the one /start gave it, and the N positions
// must be 1..N. It reports answers/s, latency percentiles, errors by kind, and the CPU
// (utime+stime from /proc/<pid>/stat) and RSS of the given PIDs over the measured span, so
// CPU per answer = (server + Redis CPU) / answers.
//
//	go run ./scripts/pollload -url http://127.0.0.1:8080 -users 10000 -interval 5s -duration 30s -pids 1234,5678
//	go run ./scripts/pollload -url http://127.0.0.1:8080 -users 1000 -closed 1000 -duration 15s -pids 1234,5678
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

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
	id     string
	ticket string
	pos    int64
	body   []byte
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

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "pollload:", err)
		os.Exit(1)
	}
}

func run() error {
	base := flag.String("url", "http://127.0.0.1:8080", "server base URL")
	users := flag.Int("users", 1000, "users to join through /start")
	interval := flag.Duration("interval", 5*time.Second, "open loop: one poll per user per interval, random phase")
	closed := flag.Int("closed", 0, "closed loop: this many users poll back to back (0: open loop)")
	duration := flag.Duration("duration", 30*time.Second, "measured span")
	warmup := flag.Duration("warmup", 0, "unmeasured span before it (default: one interval, or 2s closed loop)")
	pidList := flag.String("pids", "", "comma-separated PIDs whose CPU and RSS to report (server, redis-server)")
	hold := flag.Bool("hold", true, "first start one user and wait until it holds a slot, so the N users cannot move (run the server with capacity 1)")
	prefix := flag.String("prefix", "", "UserId prefix (default: random per run)")
	conns := flag.Int("conns", 0, "max keep-alive connections (default: one per user)")
	idle := flag.Bool("idle", false, "memory per idle keep-alive connection: every user polls once on its own connection, then all stay open and idle; report the RSS growth of the given PIDs per connection")
	flag.Parse()
	if *prefix == "" {
		*prefix = fmt.Sprintf("pl%06d-", rand.IntN(1_000_000))
	}
	var pids []int
	for _, p := range strings.Split(*pidList, ",") {
		if p = strings.TrimSpace(p); p != "" {
			n, err := strconv.Atoi(p)
			if err != nil {
				return fmt.Errorf("-pids: %q is not a PID", p)
			}
			pids = append(pids, n)
		}
	}
	maxConns := *conns
	if maxConns == 0 {
		maxConns = *users
		if *closed > 0 {
			maxConns = *closed
		}
	}
	tr := &http.Transport{
		DialContext:         (&net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		MaxIdleConns:        maxConns + 16,
		MaxIdleConnsPerHost: maxConns + 16,
		MaxConnsPerHost:     maxConns,
		IdleConnTimeout:     5 * time.Minute,
		DisableCompression:  true,
		WriteBufferSize:     1024,
		ReadBufferSize:      2048,
	}
	client := &http.Client{Transport: tr, Timeout: 30 * time.Second}
	ctx := context.Background()

	if *hold {
		if err := holdSlot(ctx, client, *base, *prefix+"hold"); err != nil {
			return err
		}
	}
	us := make([]*user, *users)
	t0 := time.Now()
	var wg sync.WaitGroup
	sem := make(chan struct{}, 64)
	var startErr atomic.Value
	for i := range us {
		us[i] = &user{id: fmt.Sprintf("%s%d", *prefix, i)}
	}
	// Join in order so positions are known: batches of 64 concurrent starts are fine, the
	// answer's Position is what each user must then see.
	for i, u := range us {
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer func() { <-sem; wg.Done() }()
			b, _ := json.Marshal(map[string]string{"UserId": u.id, "ClientSession": "cs-" + strconv.Itoa(i)})
			var a answer
			code, err := post(ctx, client, *base+"/start", b, &a)
			if err != nil || code != 200 || a.Data.Status != "Queued" {
				startErr.Store(fmt.Errorf("start %s: http %d status %q msg %q err %v", u.id, code, a.Data.Status, a.Msg, err))
				return
			}
			u.ticket, u.pos = a.Data.Ticket, a.Data.Position
			u.body, _ = json.Marshal(map[string]string{"UserId": u.id, "Ticket": u.ticket})
		}()
	}
	wg.Wait()
	if e := startErr.Load(); e != nil {
		return e.(error)
	}
	seen := map[int64]bool{}
	for _, u := range us {
		seen[u.pos] = true
	}
	for p := int64(1); p <= int64(len(us)); p++ {
		if !seen[p] {
			return fmt.Errorf("positions after /start are not 1..%d (missing %d): is admission possible? run the server with capacity 1 and -hold", len(us), p)
		}
	}
	fmt.Printf("joined %d users in %s\n", len(us), time.Since(t0).Round(time.Millisecond))

	if *idle {
		return idleConns(ctx, client, tr, *base, us, pids)
	}
	st := &stats{errs: map[string]int{}}
	warm := *warmup
	if warm == 0 {
		warm = *interval
		if *closed > 0 {
			warm = 2 * time.Second
		}
	}
	runCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	pollOnce := func(u *user) {
		t := time.Now()
		var a answer
		code, err := post(runCtx, client, *base+"/poll", u.body, &a)
		d := time.Since(t)
		if runCtx.Err() != nil {
			return
		}
		if !st.record.Load() {
			return
		}
		switch {
		case err != nil:
			st.fail("transport: " + shortErr(err))
		case code != 200:
			st.fail(fmt.Sprintf("http %d code %d", code, a.Code))
		case a.Data.Status != "Queued":
			st.fail("status " + a.Data.Status)
		case a.Data.Position != u.pos:
			st.fail("position moved")
		default:
			st.n.Add(1)
			st.mu.Lock()
			st.lat = append(st.lat, d)
			st.mu.Unlock()
		}
	}
	if *closed > 0 {
		for i := 0; i < *closed; i++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for j := i; runCtx.Err() == nil; j += *closed {
					pollOnce(us[j%len(us)])
				}
			}()
		}
	} else {
		for _, u := range us {
			wg.Add(1)
			go func() {
				defer wg.Done()
				phase := time.Duration(rand.Int64N(int64(*interval)))
				next := time.Now().Add(phase)
				for {
					select {
					case <-runCtx.Done():
						return
					case <-time.After(time.Until(next)):
					}
					pollOnce(u)
					next = next.Add(*interval)
				}
			}()
		}
	}
	time.Sleep(warm)
	cpu0, err := cpuOf(pids)
	if err != nil {
		return err
	}
	st.record.Store(true)
	m0 := time.Now()
	var rssMax = make([]int64, len(pids))
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
	cancel()
	wg.Wait()

	n := st.n.Load()
	st.mu.Lock()
	sort.Slice(st.lat, func(i, j int) bool { return st.lat[i] < st.lat[j] })
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
	st.mu.Unlock()
	if errTotal > 0 {
		return fmt.Errorf("%d wrong or failed answers", errTotal)
	}
	return nil
}

// holdSlot starts one user and polls until it holds the only slot, so nobody after it moves.
func holdSlot(ctx context.Context, c *http.Client, base, id string) error {
	b, _ := json.Marshal(map[string]string{"UserId": id, "ClientSession": "hold"})
	var a answer
	if code, err := post(ctx, c, base+"/start", b, &a); err != nil || code != 200 {
		return fmt.Errorf("hold: start: http %d: %v %s", code, err, a.Msg)
	}
	pb, _ := json.Marshal(map[string]string{"UserId": id, "Ticket": a.Data.Ticket})
	for i := 0; i < 600; i++ {
		switch a.Data.Status {
		case "Ready", "Active", "Admitting":
			if a.Data.Status != "Admitting" {
				return nil
			}
		case "Queued":
		default:
			return fmt.Errorf("hold: user is %s (%s)", a.Data.Status, a.Msg)
		}
		time.Sleep(100 * time.Millisecond)
		if code, err := post(ctx, c, base+"/poll", pb, &a); err != nil || code != 200 {
			return fmt.Errorf("hold: poll: http %d: %v", code, err)
		}
	}
	return errors.New("hold: not admitted within 60s (is the reaper running?)")
}

func post(ctx context.Context, c *http.Client, url string, body []byte, out *answer) (int, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return 0, err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := c.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return resp.StatusCode, err
	}
	if err := json.Unmarshal(b, out); err != nil {
		return resp.StatusCode, fmt.Errorf("not the JSON envelope: %.60q", b)
	}
	return resp.StatusCode, nil
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

// idleConns measures RSS per idle keep-alive connection: RSS of the PIDs with the 64 join
// connections closed, then again after every user has polled once on a connection of its own
// (all open at once), all idle.
func idleConns(ctx context.Context, c *http.Client, tr *http.Transport, base string, us []*user, pids []int) error {
	tr.CloseIdleConnections()
	time.Sleep(2 * time.Second)
	rss0 := make([]int64, len(pids))
	for i, p := range pids {
		rss0[i] = rssOf(p)
	}
	var wg sync.WaitGroup
	var bad atomic.Int64
	gate := make(chan struct{})
	for _, u := range us {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-gate
			var a answer
			if code, err := post(ctx, c, base+"/poll", u.body, &a); err != nil || code != 200 || a.Data.Position != u.pos {
				bad.Add(1)
			}
		}()
	}
	close(gate)
	wg.Wait()
	time.Sleep(3 * time.Second)
	fmt.Printf("idle keep-alive connections: %d (failed polls %d)\n", len(us), bad.Load())
	for i, p := range pids {
		r := rssOf(p)
		fmt.Printf("pid %d (%s): rss %.1f MB -> %.1f MB, %.1f KB per idle connection\n",
			p, comm(p), float64(rss0[i])/1e6, float64(r)/1e6, float64(r-rss0[i])/1024/float64(len(us)))
	}
	tr.CloseIdleConnections()
	return nil
}
