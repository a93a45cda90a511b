package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// standinPage is a minimal page of its own origin that loads the stand-in from the harness, as
// an integrator's page would after swapping the script tag. It records every callback.
const standinPage = `<!doctype html>
<html><head><meta charset="utf-8"><title>stand-in check</title></head>
<body>
<div id="mount-point" style="width:640px;height:360px"></div>
<script src="%s/tcgsdk-local.js"></script>
<script>
window.events = [];
const record = (type) => (res) => events.push({ type, res: JSON.parse(JSON.stringify(res)) });
TCGSDK.init({
  mount: "mount-point", reconnect: false, statsInterval: 300,
  onInitSuccess: record("init"), onConnectSuccess: record("connect"), onDisconnect: record("disconnect"),
  onConnectFail: record("fail"), onWebrtcStatusChange: record("webrtc"), onNetworkChange: record("network"),
});
window.received = [];
window.senders = {};
window.openChannel = async (port, protocol) => {
  const r = await TCGSDK.createCustomDataChannel({
    destPort: port, protocol,
    onMessage: (m) => received.push(typeof m === "string" ? "text:" + m : "binary:" + Array.from(new Uint8Array(m)).join(",")),
  });
  senders[port] = r.sendMessage;
  return JSON.stringify({ code: r.code, msg: r.msg, send: typeof r.sendMessage });
};
window.last = (type) => JSON.stringify(events.filter((e) => e.type === type).pop() || null);
</script>
</body></html>`

// standinApp is a cloud application that answers each datagram with "<n> bytes" (text) or, on
// binary, with the datagram itself, and remembers where datagrams came from.
type standinApp struct {
	c      *net.UDPConn
	binary bool
	mu     sync.Mutex
	from   []int
}

func startStandinApp(t *testing.T, binary bool) *standinApp {
	t.Helper()
	c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	a := &standinApp{c: c, binary: binary}
	done := make(chan struct{})
	go func() {
		defer close(done)
		buf := make([]byte, 70000)
		for {
			n, src, err := c.ReadFromUDP(buf)
			if err != nil {
				return
			}
			a.mu.Lock()
			a.from = append(a.from, src.Port)
			a.mu.Unlock()
			reply := []byte(fmt.Sprintf("%d bytes", n))
			if binary {
				reply = buf[:n]
			}
			_, _ = c.WriteToUDP(reply, src)
		}
	}()
	t.Cleanup(func() { c.Close(); <-done })
	return a
}

func (a *standinApp) port() int { return a.c.LocalAddr().(*net.UDPAddr).Port }

func (a *standinApp) sources() []int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return append([]int(nil), a.from...)
}

// TestTCGSDKStandIn checks the stand-in alone in headless Chromium, loaded by a page of another
// origin: init and a fresh ClientSession, createCustomDataChannel's codes (1 before the
// connection, 0, 2), a refused start (onConnectFail), a start with the ServerSession the
// functions handed out (onConnectSuccess with the proxy port), every kind sendMessage takes on a
// text and a binary channel, the datagram limit, onNetworkChange, the placeholder canvas,
// onDisconnect when /stop destroys the session, and destroy(). (The demo page's own browser test
// is TestBrowserTwoUsersOneSlot.)
func TestTCGSDKStandIn(t *testing.T) {
	if _, err := os.Stat(chromiumPath); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("CI needs Chromium at %s for the browser test: %v", chromiumPath, err)
		}
		t.Skipf("no Chromium at %s (apt-get install chromium); CI runs this test", chromiumPath)
	}
	h := startLocal(t, []string{"-capacity", "2", "-tick", "200ms", "-cleanup-delay", "100ms"})
	text, bin := startStandinApp(t, false), startStandinApp(t, true)
	site := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		fmt.Fprintf(w, standinPage, h.Base)
	}))
	t.Cleanup(site.Close)

	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	alloc, cancelAlloc := chromedp.NewExecAllocator(ctx,
		chromedp.ExecPath(chromiumPath),
		chromedp.Flag("headless", true),
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.NoFirstRun,
		chromedp.NoDefaultBrowserCheck,
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(900, 600),
	)
	defer cancelAlloc()
	tab, closeTab := chromedp.NewContext(alloc)
	defer closeTab()
	if err := chromedp.Do(tab, chromedp.Navigate("about:blank")); err != nil { // starts the browser
		t.Fatalf("start Chromium: %v", err)
	}
	var console strings.Builder
	var consoleMu sync.Mutex
	msgs := chromedp.Console(tab)
	go func() {
		for m, err := range msgs {
			if err != nil {
				return
			}
			consoleMu.Lock()
			fmt.Fprintln(&console, m)
			consoleMu.Unlock()
		}
	}()
	t.Cleanup(func() {
		if t.Failed() {
			consoleMu.Lock()
			t.Logf("page console:\n%s", console.String())
			consoleMu.Unlock()
		}
	})
	do := func(step string, actions ...chromedp.Action[chromedp.Void]) {
		t.Helper()
		if err := chromedp.Do(tab, actions...); err != nil {
			t.Fatalf("%s: %v", step, err)
		}
	}
	eval := func(step, expr string) string {
		t.Helper()
		v, err := chromedp.Run(tab, chromedp.Evaluate[string](expr, chromedp.EvalAwaitPromise))
		if err != nil {
			t.Fatalf("%s: %v", step, err)
		}
		return v
	}
	wait := func(step, expr string) {
		t.Helper()
		do(step, chromedp.Poll[chromedp.Void](expr, chromedp.WithPollingTimeout(10*time.Second)))
	}
	type event struct {
		Type string
		Res  struct {
			Code      int
			Msg       string
			ProxyPort int
			UserID    string `json:"userId"`
			Status    string
			Stats     struct{ Rtt *float64 }
		}
	}
	last := func(typ string) event {
		t.Helper()
		var e event
		if err := json.Unmarshal([]byte(eval("last "+typ, fmt.Sprintf("last(%q)", typ))), &e); err != nil || e.Type == "" {
			t.Fatalf("no %s event (%v)", typ, err)
		}
		return e
	}
	has := func(typ string) string { return fmt.Sprintf("events.some((e) => e.type === %q)", typ) }
	count := func(typ string) string { return fmt.Sprintf("events.filter((e) => e.type === %q).length", typ) }

	do("open the page", chromedp.Navigate(site.URL+"/"))
	wait("onInitSuccess", has("init"))
	if e := last("init"); e.Res.Code != 0 {
		t.Fatalf("onInitSuccess %+v, want code 0", e.Res)
	}
	cs := eval("getClientSession", "TCGSDK.getClientSession()")
	if !strings.HasPrefix(cs, "tcgsdk-local.") || len(cs) < 30 {
		t.Fatalf("ClientSession %q", cs)
	}
	if got := eval("channel before start", fmt.Sprintf("openChannel(%d, 'text')", text.port())); !strings.Contains(got, `"code":1`) {
		t.Fatalf("createCustomDataChannel before the connection: %s, want code 1", got)
	}

	// A ServerSession the emulator never issued: onConnectFail with the harness's close code.
	eval("bad start", "TCGSDK.start('emu-never-issued'), ''")
	wait("onConnectFail", has("fail"))
	if e := last("fail"); e.Res.Code != 4404 || !strings.Contains(e.Res.Msg, "no live session") {
		t.Fatalf("onConnectFail %+v, want code 4404", e.Res)
	}
	if e := last("webrtc"); e.Res.Code != 2 {
		t.Fatalf("onWebrtcStatusChange %+v, want code 2", e.Res)
	}

	// The queue admits the user with the page's ClientSession; start connects.
	user := "standin-" + h.Queue
	_, env := h.post(t, "start", map[string]any{"UserId": user, "ClientSession": cs})
	ss, ticket := str(env.Data, "ServerSession"), str(env.Data, "Ticket")
	if ss == "" {
		t.Fatalf("/start: %+v", env)
	}
	eval("start", fmt.Sprintf("TCGSDK.start(%q), ''", ss))
	wait("onConnectSuccess", has("connect"))
	conn := last("connect")
	if conn.Res.Code != 0 || conn.Res.UserID != user || conn.Res.ProxyPort == 0 {
		t.Fatalf("onConnectSuccess %+v, want code 0 for %s with a proxy port", conn.Res, user)
	}
	if e := last("webrtc"); e.Res.Code != 0 {
		t.Fatalf("onWebrtcStatusChange %+v, want code 0", e.Res)
	}

	// Channels: 0, then 2 for the same port; every kind of message, each one datagram.
	for _, want := range []string{`"code":0`, `"code":2`} {
		if got := eval("open text channel", fmt.Sprintf("openChannel(%d, 'text')", text.port())); !strings.Contains(got, want) || !strings.Contains(got, `"send":"function"`) {
			t.Fatalf("createCustomDataChannel: %s, want %s", got, want)
		}
	}
	if got := eval("open binary channel", fmt.Sprintf("openChannel(%d, 'binary')", bin.port())); !strings.Contains(got, `"code":0`) {
		t.Fatalf("createCustomDataChannel binary: %s", got)
	}
	eval("send", fmt.Sprintf(`(() => { const s = senders[%d];
		s("hello"); s(new Uint8Array([1, 2, 3])); s(new ArrayBuffer(7)); s(new Blob(["four"]));
		s(new DataView(new ArrayBuffer(9))); s("x".repeat(70000)); // the last is over a datagram: dropped
		senders[%d]("abc"); senders[%d](new Uint8Array([0xff, 0xdc, 1]));
		return ""; })()`, text.port(), bin.port(), bin.port()))
	want := []string{"text:5 bytes", "text:3 bytes", "text:7 bytes", "text:4 bytes", "text:9 bytes", "binary:97,98,99", "binary:255,220,1"}
	wait("echoes", fmt.Sprintf("received.length >= %d", len(want)))
	var got []string
	if err := json.Unmarshal([]byte(eval("received", "JSON.stringify(received)")), &got); err != nil {
		t.Fatal(err)
	}
	text.mu.Lock()
	nText := len(text.from)
	text.mu.Unlock()
	slices.Sort(got)
	slices.Sort(want)
	if !slices.Equal(got, want) || nText != 5 {
		t.Fatalf("the page received %q (the text application %d datagrams), want %q (5)", got, nText, want)
	}
	for _, p := range append(text.sources(), bin.sources()...) {
		if p != conn.Res.ProxyPort {
			t.Fatalf("a datagram came from port %d, want the proxy port %d", p, conn.Res.ProxyPort)
		}
	}
	wait("onNetworkChange", has("network"))
	if e := last("network"); e.Res.Status != "stats" || e.Res.Stats.Rtt == nil {
		t.Fatalf("onNetworkChange %+v, want stats with an rtt", e.Res)
	}
	if info := eval("getLocalInfo", "JSON.stringify(TCGSDK.getLocalInfo())"); !strings.Contains(info, fmt.Sprintf(`"proxyPort":%d`, conn.Res.ProxyPort)) {
		t.Fatalf("getLocalInfo %s", info)
	}
	if n := eval("placeholder", "String(document.querySelectorAll('#mount-point canvas.tcgsdk-local-placeholder').length)"); n != "1" {
		t.Fatalf("%s placeholder canvases in the mount element, want 1", n)
	}
	if got := eval("a method of the real SDK not emulated", "String(TCGSDK.sendKeyboardEvent({ key: 1, down: true }))"); got != "undefined" {
		t.Fatalf("TCGSDK.sendKeyboardEvent returned %q", got)
	}
	standinShot(t, tab, "standin-connected.png")

	// /stop destroys the session: onDisconnect with code 0 (server close).
	h.post(t, "stop", map[string]any{"UserId": user, "Ticket": ticket})
	wait("onDisconnect", has("disconnect"))
	if e := last("disconnect"); e.Res.Code != 0 || !strings.Contains(e.Res.Msg, "destroyed") {
		t.Fatalf("onDisconnect %+v, want code 0, session destroyed", e.Res)
	}
	if got := eval("channel after the disconnect", fmt.Sprintf("openChannel(%d, 'text')", text.port())); !strings.Contains(got, `"code":1`) {
		t.Fatalf("createCustomDataChannel after the disconnect: %s, want code 1", got)
	}

	// A new init, a new join, a new start; destroy() ends it from the page.
	eval("init again", "TCGSDK.init(TCGSDK.getInitOptions()), ''")
	wait("second onInitSuccess", count("init")+" === 2")
	cs2 := eval("getClientSession", "TCGSDK.getClientSession()")
	if cs2 == cs || cs2 == "" {
		t.Fatalf("a new init kept ClientSession %q", cs2)
	}
	_, env = h.post(t, "start", map[string]any{"UserId": user, "ClientSession": cs2})
	if ss = str(env.Data, "ServerSession"); ss == "" {
		t.Fatalf("/start again: %+v", env)
	}
	eval("start again", fmt.Sprintf("TCGSDK.start(%q), ''", ss))
	wait("second onConnectSuccess", count("connect")+" === 2")
	if p := last("connect").Res.ProxyPort; p == conn.Res.ProxyPort || p == 0 {
		t.Fatalf("proxy port %d after a new start, had %d", p, conn.Res.ProxyPort)
	}
	eval("destroy", "TCGSDK.destroy(), ''")
	wait("onDisconnect of destroy", count("disconnect")+" === 2")
	if e := last("disconnect"); e.Res.Code != 0 || !strings.Contains(e.Res.Msg, "destroy") {
		t.Fatalf("onDisconnect after destroy() %+v", e.Res)
	}
	if got := eval("ClientSession after destroy", "TCGSDK.getClientSession()"); got != "" {
		t.Fatalf("ClientSession %q after destroy, want none until init", got)
	}
	h.post(t, "stop", map[string]any{"UserId": user, "Ticket": str(env.Data, "Ticket")})
}

// standinShot saves a screenshot to local/screenshots (git-ignored), as the demo's browser test does.
func standinShot(t *testing.T, tab context.Context, name string) {
	t.Helper()
	dir, err := filepath.Abs("screenshots")
	if err == nil {
		err = os.MkdirAll(dir, 0o755)
	}
	if err != nil {
		t.Fatal(err)
	}
	png, err := chromedp.Run(tab, chromedp.FullScreenshot(100))
	if err != nil {
		t.Fatalf("screenshot: %v", err)
	}
	if err := os.WriteFile(filepath.Join(dir, name), png, 0o644); err != nil {
		t.Fatal(err)
	}
}
