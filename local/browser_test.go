package main

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/redis/go-redis/v9"

	"github.com/carqueue/carqueue/shared/redistest"
	"github.com/carqueue/carqueue/shared/testkit"
)

// chromiumPath is where CI (and .ci/run) installs Chromium.
const chromiumPath = "/usr/bin/chromium"

// browserKit drives one headless Chromium for a test: tabs, waits with deadlines, screenshots.
type browserKit struct {
	t     *testing.T
	alloc context.Context
	shots string
	logs  *testkit.SyncBuffer // every tab's console, shown when the test fails
}

// newBrowser starts headless Chromium (skipped without it, except in CI). Screenshots go to
// local/screenshots.
func newBrowser(t *testing.T, within time.Duration) *browserKit {
	t.Helper()
	if _, err := os.Stat(chromiumPath); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("CI needs Chromium at %s for the browser test: %v", chromiumPath, err)
		}
		t.Skipf("no Chromium at %s (apt-get install chromium); CI runs this test", chromiumPath)
	}
	shots, err := filepath.Abs("screenshots")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(shots, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Logf("screenshots in %s", shots)
	ctx, cancel := context.WithTimeout(context.Background(), within)
	t.Cleanup(cancel)
	alloc, cancelAlloc := chromedp.NewExecAllocator(ctx,
		chromedp.ExecPath(chromiumPath),
		chromedp.Flag("headless", true),
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.Flag("disable-quic", true),
		chromedp.NoFirstRun,
		chromedp.NoDefaultBrowserCheck,
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(1200, 1000),
	)
	t.Cleanup(cancelAlloc)
	b := &browserKit{t: t, alloc: alloc, shots: shots, logs: &testkit.SyncBuffer{}}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("browser console:\n%s", tail(b.logs.String(), 8000))
		}
	})
	return b
}

// tab opens a tab; the first one starts the browser, later ones are tabs of the same browser
// (parent is the first tab's context).
func (b *browserKit) tab(name string, parent context.Context) context.Context {
	b.t.Helper()
	if parent == nil {
		parent = b.alloc
	}
	tab, cancel := chromedp.NewContext(parent)
	b.t.Cleanup(cancel)
	if err := chromedp.Do(tab, chromedp.Navigate("about:blank")); err != nil {
		b.t.Fatalf("open tab %s: %v", name, err)
	}
	msgs := chromedp.Console(tab)
	go func() {
		for m, err := range msgs {
			if err != nil {
				return
			}
			fmt.Fprintf(b.logs, "[%s] %s\n", name, m)
		}
	}()
	return tab
}

func (b *browserKit) do(tab context.Context, step string, actions ...chromedp.Action[chromedp.Void]) {
	b.t.Helper()
	if err := chromedp.Do(tab, actions...); err != nil {
		b.t.Fatalf("%s: %v", step, err)
	}
}

func browserGet[T any](b *browserKit, tab context.Context, step string, a chromedp.Action[T]) T {
	b.t.Helper()
	v, err := chromedp.Run(tab, a)
	if err != nil {
		b.t.Fatalf("%s: %v", step, err)
	}
	return v
}

// shot saves a full-page screenshot under name.
func (b *browserKit) shot(name string) chromedp.Action[chromedp.Void] {
	return chromedp.Func(func(ctx context.Context, tg *chromedp.Target) error {
		png, err := chromedp.FullScreenshot(100)(ctx, tg)
		if err != nil {
			return err
		}
		return os.WriteFile(filepath.Join(b.shots, name), png, 0o644)
	})
}

// until waits, up to within, for a JavaScript expression to be true in the page.
func until(expr string, within time.Duration) chromedp.Action[chromedp.Void] {
	return chromedp.Poll[chromedp.Void](expr, chromedp.WithPollingTimeout(within))
}

// status waits for the demo page's status pill to show one of want.
func status(want ...string) chromedp.Action[chromedp.Void] {
	b, _ := json.Marshal(want)
	return until(string(b)+".includes(document.querySelector('#status').dataset.status)", 25*time.Second)
}

func textIs(sel, want string) chromedp.Action[chromedp.Void] {
	return until(fmt.Sprintf("(document.querySelector(%q) || {}).textContent === %q", sel, want), 10*time.Second)
}

func byID(s string) chromedp.ID { return chromedp.ID(strings.TrimPrefix(s, "#")) }

// servesClient fails the test at once, and says why, when the harness does not serve the
// browser client the demo page imports.
func servesClient(t *testing.T, h *runningHarness) {
	t.Helper()
	resp, err := http.Get(h.Base + "/carqueue.js")
	if err != nil {
		t.Fatalf("GET /carqueue.js: %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/javascript") {
		t.Fatalf("GET /carqueue.js: HTTP %d %q: the harness must serve local/web/carqueue.js (embedded by local/web/web.go), the demo page imports it",
			resp.StatusCode, resp.Header.Get("Content-Type"))
	}
}

// joinAs opens the demo page at base+path and joins as user.
func joinAs(base, path, user string) chromedp.Action[chromedp.Void] {
	return chromedp.Steps(
		chromedp.Navigate(base+path),
		chromedp.WaitVisible(byID("#user-id")),
		chromedp.SetValue(byID("#user-id"), user),
		chromedp.Click(byID("#join")),
	)
}

// TestBrowserTwoUsersOneSlot plays the demo page in headless Chromium: two tabs, two users, one
// emulated slot. The second waits at position 1, the first stops, the second gets the slot and
// its stream connects (TCGSDK stand-in); a reload reconnects from the tab's sessionStorage; a
// simulated dropped connection counts down the reconnect window, then shows the slot reclaimed,
// the reaper destroys the session (onDisconnect), and a late Reconnect plays again.
func TestBrowserTwoUsersOneSlot(t *testing.T) {
	b := newBrowser(t, 90*time.Second)
	h := startLocal(t, []string{"-capacity", "1", "-tick", "250ms", "-cleanup-delay", "100ms"},
		"POLL_MIN_INTERVAL=300ms", "POLL_MAX_INTERVAL=2s", "HEARTBEAT_TIMEOUT=3s", "READY_TIMEOUT=3s")
	servesClient(t, h)

	alice := b.tab("alice", nil)
	aliceID, bobID := "alice-"+randomHex(3), "bob-"+randomHex(3)

	b.do(alice, "alice joins and plays", joinAs(h.Base, "/", aliceID), status("Active"),
		until("document.querySelector('#sdk-state').dataset.state === 'connected'", 10*time.Second),
		until("document.querySelector('#queue-picker').hidden && document.querySelector('#queue-note').hidden", time.Second)) // one queue: no picker
	bob := b.tab("bob", alice)
	b.do(bob, "bob joins and waits", joinAs(h.Base, "/", bobID), status("Queued"), textIs("#position", "1"), b.shot("1-bob-queued.png"))
	b.do(alice, "alice screenshot", b.shot("2-alice-playing.png"))

	b.do(alice, "alice stops", chromedp.Click(byID("#stop")), status("Stopped"), b.shot("3-alice-stopped.png"))
	b.do(bob, "bob gets the slot", status("Active"),
		until("document.querySelector('#sdk-state').dataset.state === 'connected'", 10*time.Second),
		b.shot("4-bob-playing.png"))
	if s := browserGet(b, bob, "bob's ServerSession", chromedp.TextContent(byID("#server-session"))); s == "" || s == "–" {
		t.Fatalf("bob is playing without a ServerSession shown: %q", s)
	}

	b.do(bob, "bob reloads and reconnects", chromedp.Reload(), status("Active"),
		until("document.querySelector('#sdk-state').dataset.state === 'connected'", 10*time.Second),
		b.shot("5-bob-reconnected.png"))
	if user := browserGet(b, bob, "bob's user id", chromedp.Value(byID("#user-id"))); user != bobID {
		t.Fatalf("after reload the tab is %q, want %q (identity per tab)", user, bobID)
	}

	dash := b.tab("dashboard", alice)
	b.do(dash, "dashboard", chromedp.Navigate(h.Base+"/dashboard"),
		chromedp.WaitVisible(byID("#admin-token")),
		chromedp.SetValue(byID("#admin-token"), h.AdminToken),
		chromedp.Click(byID("#save-token")),
		textIs(`#stats-counts [data-key="Active"] .value`, "1"),
		until("document.querySelector('#queues-card').hidden && !document.querySelector('#stats-counts [data-key=Queues]')", time.Second)) // one queue: no summary
	// A second sample, so the chart has a line to show: "Updated" changes at the next one.
	first := browserGet(b, dash, "dashboard's first sample", chromedp.TextContent(byID("#updated")))
	b.do(dash, "dashboard's second sample", until(fmt.Sprintf("document.querySelector('#updated').textContent !== %q", first), 10*time.Second),
		b.shot("6-dashboard.png"))

	// Bob's connection drops (heartbeats paused): the page counts down the reconnect window the
	// server told it (ReconnectWindowMs = HEARTBEAT_TIMEOUT, 3s here), then says the slot is
	// reclaimed, which the reaper does (destroying the session: the stand-in's onDisconnect);
	// Reconnect then behaves like /start and plays again.
	countdown := `(document.querySelector('#drop').textContent.match(/^Connection dropped — your slot is kept for (\d+) s: press Reconnect$/) || [])[1]`
	b.do(bob, "bob drops", chromedp.Click(byID("#pause-heartbeat")), status("Dropped"),
		until(countdown+" !== undefined", 5*time.Second),
		b.shot("7-bob-dropped.png"))
	if left := browserGet(b, bob, "the countdown", chromedp.Evaluate[string](countdown+` || ""`)); left > "1" { // one digit: 3 s window
		b.do(bob, "the countdown runs", until(fmt.Sprintf("Number(%s || 0) === %s - 1", countdown, left), 3*time.Second))
	}
	b.do(bob, "bob sees the slot reclaimed", status("Reclaimed"),
		until("document.querySelector('#drop').textContent.startsWith('Slot reclaimed — no heartbeat for 3 s')", 5*time.Second),
		until("!document.querySelector('#rejoin').hidden && !document.querySelector('#reconnect').hidden", time.Second))
	eventually(t, 20*time.Second, "bob's slot reclaimed", func() error {
		if s := h.emulatorState(t); len(s.Sessions) > 0 {
			return fmt.Errorf("%w: %+v", errNotYet, s)
		}
		return nil
	})
	b.do(bob, "the reaper's DestroySession reaches the page", until("document.querySelector('#sdk-state').dataset.state === 'disconnected'", 10*time.Second),
		b.shot("8-bob-reclaimed.png"))
	b.do(bob, "bob reconnects late, as a new join", chromedp.Click(byID("#reconnect")), status("Active"),
		until("document.querySelector('#drop').hidden", time.Second),
		until("document.querySelector('#sdk-state').dataset.state === 'connected'", 10*time.Second))
	b.do(bob, "bob stops", chromedp.Click(byID("#stop")), status("Stopped"))
	eventually(t, 15*time.Second, "every emulated slot idle", func() error {
		s := h.emulatorState(t)
		if s.Idle != s.Total || len(s.Locked) > 0 || len(s.Sessions) > 0 {
			return fmt.Errorf("%w: %+v", errNotYet, s)
		}
		return nil
	})
}

// TestBrowserTwoQueues plays a deployment of two queues (QUEUES: two CAR projects, one slot each)
// in headless Chromium: the demo page shows a queue picker; two users fill and queue on A while a
// third picks B and is Ready at once (a full A never delays B); the same user cannot join B while
// in A (409, code 4090, said plainly); the dashboard's summary counts each queue, and selecting B
// shows B's counts and B's project in the emulator.
func TestBrowserTwoQueues(t *testing.T) {
	b := newBrowser(t, 120*time.Second)
	tag := randomHex(4)
	qa, qb := "game-a-"+tag, "game-b-"+tag
	queues := fmt.Sprintf(`[{"Id":%q,"ProjectId":"cap-a-%s","Capacity":1},{"Id":%q,"ProjectId":"cap-b-%s","Capacity":1}]`, qa, tag, qb, tag)
	if addr := os.Getenv("REDIS_ADDR"); addr != "" {
		// Registered first, so it runs after the harness has stopped: this test's queues and
		// users (every id carries tag), and only them.
		t.Cleanup(func() {
			rdb := redis.NewClient(&redis.Options{Addr: addr})
			defer rdb.Close()
			redistest.DeleteMatching(context.Background(), rdb, "*"+tag+"*")
		})
	}
	h := startLocal(t, []string{"-tick", "250ms", "-cleanup-delay", "100ms"},
		"QUEUE_ID=" /* startLocal sets one; with QUEUES each item names its own */, "QUEUES="+queues, "POLL_MIN_INTERVAL=300ms", "POLL_MAX_INTERVAL=2s")
	servesClient(t, h)
	ann, bea, cal := "ann-"+tag, "bea-"+tag, "cal-"+tag
	picked := func(id string) chromedp.Action[chromedp.Void] {
		return until(fmt.Sprintf(`!document.querySelector('#queue-picker').hidden && document.querySelector('#queue-id').value === %q`, id), 5*time.Second)
	}
	// The picker is filled once /harness/queues has answered; only then is the join form enabled.
	joinIn := func(path, user string) chromedp.Action[chromedp.Void] {
		return chromedp.Steps(
			chromedp.Navigate(h.Base+path),
			until("!document.querySelector('#queue-picker').hidden && !document.querySelector('#join').disabled", 5*time.Second),
			chromedp.SetValue(byID("#user-id"), user),
		)
	}

	tab1 := b.tab("ann", nil)
	b.do(tab1, "ann joins the first queue, preselected", joinIn("/", ann), picked(qa),
		chromedp.Click(byID("#join")), status("Ready", "Active"), textIs("#queue-note-id", qa))
	tab2 := b.tab("bea", tab1)
	b.do(tab2, "bea joins A (?queue=) and waits", joinIn("/?queue="+qa, bea), picked(qa),
		chromedp.Click(byID("#join")), status("Queued"), textIs("#position", "1"),
		until("document.querySelector('#queue-id').disabled", time.Second), // a session stays in its queue
		b.shot("q1-bea-queued-in-a.png"))
	tab3 := b.tab("cal", tab1)
	b.do(tab3, "cal picks B and is Ready at once", joinIn("/", cal), picked(qa),
		chromedp.SetValue(byID("#queue-id"), qb),
		chromedp.Click(byID("#join")), status("Ready", "Active"), textIs("#queue-note-id", qb),
		b.shot("q2-cal-ready-in-b.png"))
	b.do(tab2, "bea still waits in A", status("Queued"), textIs("#position", "1"))

	// Ann, from another tab, tries queue B while she holds A's slot: one queue at a time.
	tab4 := b.tab("ann-again", tab1)
	b.do(tab4, "ann cannot join B while in A", joinIn("/?queue="+qb, ann), picked(qb),
		chromedp.Click(byID("#join")), status("Elsewhere"),
		until(fmt.Sprintf("document.querySelector('#error').textContent.startsWith('You are already in queue %s ')", qa), 5*time.Second),
		b.shot("q3-ann-already-in-a.png"))

	dash := b.tab("dashboard", tab1)
	cell := func(q, key, want string) chromedp.Action[chromedp.Void] {
		return textIs(fmt.Sprintf(`#queues-table tr[data-queue=%q] td[data-key=%q]`, q, key), want)
	}
	b.do(dash, "the dashboard sums up both queues", chromedp.Navigate(h.Base+"/dashboard"),
		chromedp.WaitVisible(byID("#admin-token")),
		chromedp.SetValue(byID("#admin-token"), h.AdminToken),
		chromedp.Click(byID("#save-token")),
		until("!document.querySelector('#queues-card').hidden", 10*time.Second),
		cell(qa, "Capacity", "1"), cell(qa, "Queued", "1"), cell(qa, "Holding", "1"), cell(qa, "Free", "0"),
		cell(qb, "Capacity", "1"), cell(qb, "Queued", "0"), cell(qb, "Holding", "1"), cell(qb, "Free", "0"),
		textIs("#queue-name", " "+qa),
		textIs(`#stats-counts [data-key="Queued"] .value`, "1"),
		textIs(`#emu-counts [data-key="Total"] .value`, "1"))
	first := browserGet(b, dash, "dashboard's first sample", chromedp.TextContent(byID("#updated")))
	b.do(dash, "dashboard's second sample", until(fmt.Sprintf("document.querySelector('#updated').textContent !== %q", first), 10*time.Second),
		b.shot("q4-dashboard-a.png"))
	b.do(dash, "selecting B shows B's counts", chromedp.Click(chromedp.CSS(fmt.Sprintf(`#queues-table tr[data-queue=%q] button`, qb))),
		textIs("#queue-name", " "+qb), textIs("#stats-route", "/stats?QueueId="+qb),
		until(fmt.Sprintf("document.querySelector('#queue-pick').value === %q", qb), time.Second),
		until(fmt.Sprintf(`new URL(location.href).searchParams.get("queue") === %q`, qb), time.Second),
		textIs(`#stats-counts [data-key="Queued"] .value`, "0"),
		textIs(`#stats-counts [data-key="Holding"] .value`, "1"),
		textIs("#emu-route", "/emulator/state?ProjectId=cap-b-"+tag),
		until(fmt.Sprintf(`[...document.querySelectorAll('#emu-slots .slot')].map((e) => e.textContent).join() === %q`, cal+" · streaming"), 10*time.Second),
		b.shot("q5-dashboard-b.png"))

	// A reload reconnects to the queue the tab joined (its URL names none: the kept QueueId does).
	b.do(tab3, "cal reloads and reconnects in B", chromedp.Reload(), picked(qb), status("Active"), textIs("#queue-note-id", qb))

	// Ann stops: A's slot goes to Bea; B is untouched.
	b.do(tab1, "ann stops", chromedp.Click(byID("#stop")), status("Stopped"))
	b.do(tab2, "bea gets A's slot", status("Ready", "Active"))
	b.do(tab3, "cal still plays in B", status("Ready", "Active"))
	b.do(dash, "the summary follows", cell(qa, "Queued", "0"), cell(qa, "Holding", "1"), cell(qb, "Holding", "1"),
		cell(qa, "AdmittedTotal", "2"))
}

// freeUDPPort finds a port in 10000–20000 (the range CAR suggests for a cloud app) that nothing
// on 127.0.0.1 uses now.
func freeUDPPort(t *testing.T) int {
	t.Helper()
	for range 200 {
		p := 10000 + int(randomUint16()%10000)
		c, err := net.ListenPacket("udp", fmt.Sprintf("127.0.0.1:%d", p))
		if err == nil {
			c.Close()
			return p
		}
	}
	t.Fatal("no free UDP port in 10000–20000")
	return 0
}

func randomUint16() uint16 {
	var b [2]byte
	_, _ = rand.Read(b[:])
	return uint16(b[0])<<8 | uint16(b[1])
}

// fakeAnswer is one scripted answer of fakeQueue.
type fakeAnswer struct {
	HTTP       int    // 0: 200
	RetryAfter string // Retry-After header
	Code       int
	Drop       bool // close the connection without an answer (a network error)
	Data       map[string]any
}

// fakeRequest is one request fakeQueue received.
type fakeRequest struct {
	Route       string
	At          time.Time
	ContentType string
	Body        map[string]any
	answer      chan fakeAnswer // buffered: answering never blocks the test
}

// fakeQueue answers the contract's routes from a script, so a test can put carqueue.js through
// failures the real harness does not produce on demand; requests arrive on reqs, one by one.
type fakeQueue struct {
	t    *testing.T
	srv  *httptest.Server
	reqs chan fakeRequest
}

func newFakeQueue(t *testing.T, page string) *fakeQueue {
	t.Helper()
	f := &fakeQueue{t: t, reqs: make(chan fakeRequest)}
	js, err := os.ReadFile(filepath.Join("web", "carqueue.js"))
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /carqueue.js", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/javascript; charset=utf-8")
		_, _ = w.Write(js)
	})
	mux.HandleFunc("GET /favicon.ico", func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusNoContent) })
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		_, _ = io.WriteString(w, page)
	})
	mux.HandleFunc("POST /{route}", func(w http.ResponseWriter, r *http.Request) {
		req := fakeRequest{Route: r.PathValue("route"), At: time.Now(), ContentType: r.Header.Get("Content-Type"), answer: make(chan fakeAnswer, 1)}
		raw, _ := io.ReadAll(r.Body)
		if err := json.Unmarshal(raw, &req.Body); err != nil {
			t.Errorf("/%s: the body is not JSON: %q", req.Route, raw)
		}
		select {
		case f.reqs <- req:
		case <-r.Context().Done():
			return
		}
		var a fakeAnswer
		select {
		case a = <-req.answer:
		case <-r.Context().Done():
			return
		}
		if a.Drop {
			conn, _, err := http.NewResponseController(w).Hijack()
			if err == nil {
				conn.Close()
			}
			return
		}
		if a.RetryAfter != "" {
			w.Header().Set("Retry-After", a.RetryAfter)
		}
		if a.HTTP == 0 {
			a.HTTP = http.StatusOK
		}
		if a.Data == nil {
			a.Data = map[string]any{}
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(a.HTTP)
		_ = json.NewEncoder(w).Encode(map[string]any{"Code": a.Code, "Msg": http.StatusText(a.HTTP), "RequestId": "fake", "Data": a.Data})
	})
	f.srv = httptest.NewUnstartedServer(mux)
	// A fresh connection per request: a browser resends a request whose reused connection was
	// closed, which would hide the network error a dropped connection is meant to be.
	f.srv.Config.SetKeepAlivesEnabled(false)
	f.srv.Start()
	t.Cleanup(f.srv.Close)
	return f
}

// expect waits for the next request, which must be to route (heartbeats in between are
// answered with Active and skipped unless route is heartbeat), and answers it with a.
func (f *fakeQueue) expect(route string, a fakeAnswer) fakeRequest {
	f.t.Helper()
	deadline := time.After(15 * time.Second)
	for {
		select {
		case req := <-f.reqs:
			if req.Route == "heartbeat" && route != "heartbeat" {
				req.answer <- fakeAnswer{Data: map[string]any{"Status": "Active", "NextHeartbeatMs": 500, "ReconnectWindowMs": 2000}}
				continue
			}
			if req.Route != route {
				req.answer <- fakeAnswer{HTTP: http.StatusBadRequest, Code: 4001}
				f.t.Fatalf("got /%s %v, want /%s", req.Route, req.Body, route)
			}
			req.answer <- a
			return req
		case <-deadline:
			f.t.Fatalf("no /%s within 15s", route)
		}
	}
}

func queued(pos int, ticket string, nextPollMs int) fakeAnswer {
	d := map[string]any{"Status": "Queued", "Position": pos, "QueueLength": pos, "NextPollMs": nextPollMs}
	if ticket != "" {
		d["Ticket"] = ticket
	}
	return fakeAnswer{Data: d}
}

// TestBrowserCarqueueRetries puts /carqueue.js through what a crowd meets: 503 and 429 with
// Retry-After, a dropped connection, a 503 without it; the place (the ticket) is kept
// throughout, and the retries come at the server's pace. A hidden tab polls at the server's
// pace, no faster, and polls at once when it is shown again. A reload reconnects with the kept
// ticket, and a ticket the server refuses falls back to /start.
func TestBrowserCarqueueRetries(t *testing.T) {
	b := newBrowser(t, 90*time.Second)
	// The page can fake its visibility (headless tabs are always visible) and records every event.
	f := newFakeQueue(t, `<!doctype html><title>carqueue.js</title>
<script>
  window.hidden_ = false;
  Object.defineProperty(document, "visibilityState", { get: () => (window.hidden_ ? "hidden" : "visible") });
  window.setHidden = (h) => { window.hidden_ = h; document.dispatchEvent(new Event("visibilitychange")); };
</script>
<script type="module">
  import { join } from "/carqueue.js";
  window.events = [];
  const q = join("user-1", () => "client-session-" + (window.csVersion || 1));
  q.on("*", (e) => window.events.push({ type: e.type, status: e.status, position: e.position, fatal: e.fatal,
    retryInMs: e.retryInMs, http: e.http, reason: e.reason, serverSession: e.serverSession }));
  window.q = q;
</script>`)
	tab := b.tab("carqueue.js", nil)
	b.do(tab, "open the page", chromedp.Navigate(f.srv.URL+"/"))

	gap := func(what string, from, to fakeRequest, atLeast, below time.Duration) {
		t.Helper()
		if d := to.At.Sub(from.At); d < atLeast || d >= below {
			t.Errorf("%s: %s between /%s and /%s, want at least %s and below %s", what, d, from.Route, to.Route, atLeast, below)
		}
	}
	carries := func(req fakeRequest, ticket string) {
		t.Helper()
		if req.Body["UserId"] != "user-1" || (ticket != "" && req.Body["Ticket"] != ticket) || (ticket == "" && req.Body["Ticket"] != nil) {
			t.Errorf("/%s carries %v, want UserId user-1 and Ticket %q", req.Route, req.Body, ticket)
		}
		if !strings.HasPrefix(req.ContentType, "text/plain") {
			t.Errorf("/%s sent as %q: a CORS preflight for every request", req.Route, req.ContentType)
		}
	}

	s1 := f.expect("start", fakeAnswer{HTTP: 503, Code: 5030, RetryAfter: "1"})
	carries(s1, "")
	if s1.Body["ClientSession"] != "client-session-1" {
		t.Errorf("/start carries ClientSession %v", s1.Body["ClientSession"])
	}
	s2 := f.expect("start", queued(2, "T-1", 200))
	gap("503 with Retry-After: 1", s1, s2, time.Second, 3*time.Second)
	p1 := f.expect("poll", fakeAnswer{HTTP: 429, Code: 4290, RetryAfter: "1"})
	carries(p1, "T-1")
	if _, ok := p1.Body["ClientSession"]; ok {
		t.Errorf("/poll resends an unchanged ClientSession")
	}
	gap("NextPollMs 200", s2, p1, 150*time.Millisecond, 2*time.Second)
	p2 := f.expect("poll", fakeAnswer{Drop: true})
	gap("429 with Retry-After: 1", p1, p2, time.Second, 3*time.Second)
	p3 := f.expect("poll", fakeAnswer{HTTP: 503, Code: 5030})
	gap("a dropped connection, backoff capped at the pace", p2, p3, 0, 1500*time.Millisecond)
	p4 := f.expect("poll", queued(1, "", 6000))
	gap("a 503 without Retry-After, backoff capped at the pace", p3, p4, 0, 1500*time.Millisecond)
	for _, p := range []fakeRequest{p2, p3, p4} {
		carries(p, "T-1") // the place is kept: the same ticket, never a new /start
	}

	// Hidden: no extra poll (not even for "online"); the server's pace holds.
	queuedSeen := func(n int) chromedp.Action[chromedp.Void] { // the page has read that answer
		return until(fmt.Sprintf(`events.filter((e) => e.type === "queued").length === %d`, n), 5*time.Second)
	}
	b.do(tab, "hide the tab", queuedSeen(2), chromedp.Evaluate[chromedp.Void](`setHidden(true); window.dispatchEvent(new Event("online"))`))
	p5 := f.expect("poll", queued(1, "", 6000))
	gap("a hidden tab at NextPollMs 6000", p4, p5, 5900*time.Millisecond, 8*time.Second)
	// Shown again: a poll at once, or a second after the last one (p5 just now), not 6s later.
	// The bounds are loose on purpose: CI machines are slow and shared.
	b.do(tab, "show the tab", queuedSeen(3), chromedp.Evaluate[chromedp.Void](`setHidden(false)`))
	shown := time.Now()
	p6 := f.expect("poll", fakeAnswer{Data: map[string]any{"Status": "Ready", "ServerSession": "SS-1", "NextHeartbeatMs": 500, "ReconnectWindowMs": 2000}})
	if d := p6.At.Sub(shown); d > 3*time.Second {
		t.Errorf("a tab shown again polled %s later, want about a second (its next poll was due in 6s)", d)
	}
	gap("a tab shown again, one second after the last poll", p5, p6, 950*time.Millisecond, 3500*time.Millisecond)
	h1 := f.expect("heartbeat", fakeAnswer{Data: map[string]any{"Status": "Active", "NextHeartbeatMs": 500, "ReconnectWindowMs": 2000}})
	gap("the first heartbeat goes at once", p6, h1, 0, 1500*time.Millisecond)
	carries(h1, "T-1")
	h2 := f.expect("heartbeat", fakeAnswer{HTTP: 502})
	gap("NextHeartbeatMs 500", h1, h2, 400*time.Millisecond, 2500*time.Millisecond)
	h3 := f.expect("heartbeat", fakeAnswer{Data: map[string]any{"Status": "Active", "NextHeartbeatMs": 500, "ReconnectWindowMs": 2000}})
	gap("a 502 on a heartbeat, retried within the pace", h2, h3, 0, 1500*time.Millisecond)

	b.do(tab, "the events", until(`events.filter((e) => e.type === "active").length === 2`, 5*time.Second))
	type event struct {
		Type, Status, ServerSession, Reason string
		Position, RetryInMs, HTTP           float64
		Fatal                               bool
	}
	events := browserGet(b, tab, "read the events", chromedp.Evaluate[[]event](`events`))
	var kinds []string
	for _, e := range events {
		k := e.Type
		switch e.Type {
		case "queued":
			k += fmt.Sprint(e.Position)
		case "error":
			if e.Fatal || e.RetryInMs <= 0 {
				t.Errorf("a retried failure reported as %+v", e)
			}
			k += fmt.Sprint(e.HTTP)
		}
		kinds = append(kinds, k)
	}
	want := "error503 queued2 error429 error0 error503 queued1 queued1 ready active error502 active"
	if got := strings.Join(kinds, " "); got != want {
		t.Errorf("events:\n got %s\nwant %s", got, want)
	}

	// A reload: /reconnect with the kept ticket and a new ClientSession; refused (an earlier
	// join's ticket), it falls back to /start, without a ticket.
	b.do(tab, "reload", chromedp.Reload())
	r1 := f.expect("reconnect", fakeAnswer{HTTP: 401, Code: 4010})
	carries(r1, "T-1")
	if r1.Body["ClientSession"] != "client-session-1" {
		t.Errorf("/reconnect carries ClientSession %v", r1.Body["ClientSession"])
	}
	s3 := f.expect("start", queued(1, "T-2", 200))
	carries(s3, "")
	p7 := f.expect("poll", fakeAnswer{Data: map[string]any{"Status": "Expired", "Reason": "idle"}})
	carries(p7, "T-2")
	b.do(tab, "expired, and the ticket forgotten", until(`events.some((e) => e.type === "expired" && e.reason === "idle") && sessionStorage.getItem("carqueue") === null && q.closed && q.next === null`, 5*time.Second))
}

// startEchoApp builds and runs the example cloud app (local/echoapp) on a free UDP port of
// 127.0.0.1 and waits until it answers; it is stopped with SIGINT at cleanup.
func startEchoApp(t *testing.T) int {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "echoapp")
	if out, err := exec.Command("go", "build", "-o", bin, "./echoapp").CombinedOutput(); err != nil {
		t.Fatalf("go build ./local/echoapp: %v\n%s", err, out)
	}
	port := freeUDPPort(t)
	cmd := exec.Command(bin, "-port", fmt.Sprint(port), "-tick", "1s")
	out := &testkit.SyncBuffer{}
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatalf("start echoapp: %v", err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGINT)
		select {
		case <-exited:
		case <-time.After(10 * time.Second):
			_ = cmd.Process.Kill()
			<-exited
			t.Errorf("echoapp did not stop within 10s of SIGINT")
		}
		if t.Failed() {
			t.Logf("echoapp output:\n%s", tail(out.String(), 4000))
		}
	})

	// Ready when it echoes a datagram of our own.
	c, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	app := &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: port}
	buf := make([]byte, 2048)
	eventually(t, 30*time.Second, "echoapp answers on port "+fmt.Sprint(port), func() error {
		select {
		case err := <-exited:
			exited <- err
			t.Fatalf("echoapp exited (%v):\n%s", err, out.String())
		default:
		}
		if _, err := c.WriteTo([]byte("ready?"), app); err != nil {
			return err
		}
		_ = c.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
		for {
			n, _, err := c.ReadFrom(buf)
			if err != nil {
				return fmt.Errorf("%w: %v", errNotYet, err)
			}
			if string(buf[:n]) == "echo: ready?" {
				return nil
			}
		}
	})
	return port
}

// TestBrowserDataChannel plays the whole CAR flow of one page: it joins through /carqueue.js,
// starts through the TCGSDK stand-in, opens a data channel to the example cloud app and gets its
// echo (with a round trip) and its ticks; it reloads, reconnects, and the app still answers, on
// the session's new proxy port, over a framed channel that carries a 64 KiB message both ways;
// then a /stop with its ticket, sent from elsewhere (here), destroys the session: the page gets
// onDisconnect and says the session ended.
func TestBrowserDataChannel(t *testing.T) {
	b := newBrowser(t, 120*time.Second)
	appPort := startEchoApp(t)
	h := startLocal(t, []string{"-capacity", "1", "-tick", "250ms", "-cleanup-delay", "100ms"},
		"POLL_MIN_INTERVAL=300ms", "POLL_MAX_INTERVAL=2s", "HEARTBEAT_TIMEOUT=3s", "READY_TIMEOUT=3s")
	servesClient(t, h)

	carol := b.tab("carol", nil)
	user := "carol-" + randomHex(3)
	connected := until("document.querySelector('#sdk-state').dataset.state === 'connected'", 10*time.Second)
	channelOpen := until("document.querySelector('#chan-state').dataset.state === 'open'", 15*time.Second)
	// send types msg, sends it, and waits for the app's echo with its round trip.
	send := func(msg string) chromedp.Action[chromedp.Void] {
		return chromedp.Steps(
			chromedp.SetValue(byID("#chan-input"), msg),
			chromedp.Click(byID("#chan-send")),
			until(fmt.Sprintf(`[...document.querySelectorAll('#chan-log li[data-kind=echo]')].some((li) =>
				li.querySelector('.text').textContent === %q && / ms$/.test(li.querySelector('.extra').textContent))`, "echo: "+msg), 10*time.Second),
		)
	}
	// ticks waits for n ticks on the page's counter (the app pushes one every few seconds).
	ticks := func(n int) chromedp.Action[chromedp.Void] {
		return until(fmt.Sprintf("Number(document.querySelector('#ticks').textContent) >= %d", n), 20*time.Second)
	}

	b.do(carol, "carol joins and plays", joinAs(h.Base, fmt.Sprintf("/?port=%d", appPort), user), status("Active"), connected, channelOpen)
	if p := browserGet(b, carol, "the port field", chromedp.Value(byID("#chan-port"))); p != fmt.Sprint(appPort) {
		t.Fatalf("the port field shows %q, want %d (from ?port=)", p, appPort)
	}
	b.do(carol, "the app echoes and ticks", send("ping 1"), ticks(1), b.shot("9-carol-data-channel.png"))
	proxyPort := func(step string) int {
		return browserGet(b, carol, step, chromedp.Evaluate[int](`TCGSDK.getLocalInfo().proxyPort`))
	}
	before := proxyPort("the proxy port")

	// Framing on (it applies from the next start: TCGSDK keeps a channel per connection), then a
	// reload: carqueue.js finds the ticket in sessionStorage and reconnects; the stand-in starts
	// a new session, on a new proxy port, and the app answers there, a 64 KiB message too (split
	// into datagrams by frames() of carqueue.js, joined by shared/datachannel, and back).
	b.do(carol, "framing on", chromedp.Click(byID("#chan-framed")),
		until("new URLSearchParams(location.search).get('framing') === '1'", 5*time.Second))
	b.do(carol, "carol reloads", chromedp.Reload(), status("Active"), connected, channelOpen,
		until("document.querySelector('#chan-framed').checked", time.Second),
		send("ping 2"),
		chromedp.Click(byID("#chan-send-big")),
		until(fmt.Sprintf(`[...document.querySelectorAll('#chan-log li[data-kind=echo]')].some((li) =>
			li.dataset.length === "%d" && / ms$/.test(li.querySelector('.extra').textContent))`, len("echo: ")+64*1024), 10*time.Second),
		ticks(1),
		b.shot("10-carol-reconnected.png"))
	if after := proxyPort("the new proxy port"); after == 0 || after == before {
		t.Errorf("the proxy port after the reload is %d, before it %d: want a new one", after, before)
	}
	if shown := browserGet(b, carol, "the proxy port shown", chromedp.TextContent(byID("#proxy-port"))); shown != fmt.Sprint(proxyPort("the proxy port")) {
		t.Errorf("the page shows proxy port %q, the stand-in uses %d", shown, proxyPort("the proxy port"))
	}

	// The session destroyed from elsewhere: the test stops it with the page's own ticket.
	ticket := browserGet(b, carol, "carol's ticket", chromedp.Evaluate[string](`JSON.parse(sessionStorage.getItem("carqueue.demo.tab")).Ticket`))
	if code, env := h.post(t, "stop", map[string]string{"UserId": user, "Ticket": ticket}); code != http.StatusOK || str(env.Data, "Status") != "Stopped" {
		t.Fatalf("/stop from elsewhere: HTTP %d %s %v", code, env.Msg, env.Data)
	}
	b.do(carol, "carol's page is disconnected", until("document.querySelector('#sdk-state').dataset.state === 'disconnected'", 10*time.Second),
		status("Expired"),
		until("document.querySelector('#message').textContent.includes('(stopped)')", 5*time.Second),
		until("document.querySelector('#chan-state').dataset.state === 'closed'", 5*time.Second),
		b.shot("11-carol-stopped-elsewhere.png"))
	if logs := browserGet(b, carol, "the page's log", chromedp.TextContent(byID("#log"))); !strings.Contains(logs, "onDisconnect") {
		t.Errorf("the page never got onDisconnect; its log:\n%s", logs)
	}
	eventually(t, 15*time.Second, "every emulated slot idle", func() error {
		s := h.emulatorState(t)
		if s.Idle != s.Total || len(s.Locked) > 0 || len(s.Sessions) > 0 {
			return fmt.Errorf("%w: %+v", errNotYet, s)
		}
		return nil
	})
}
