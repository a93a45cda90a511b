package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// chromiumPath is where CI (and .ci/run) installs Chromium.
const chromiumPath = "/usr/bin/chromium"

// TestBrowserTwoUsersOneSlot plays the demo page in headless Chromium: two tabs, two users, one
// emulated slot. The second waits at position 1, the first stops, the second gets the slot;
// a reload reconnects from the tab's sessionStorage; a simulated dropped connection counts down
// the reconnect window, then shows the slot reclaimed, and a late Reconnect plays again.
// Screenshots go to local/screenshots.
func TestBrowserTwoUsersOneSlot(t *testing.T) {
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

	h := startLocal(t, []string{"-capacity", "1", "-tick", "250ms", "-cleanup-delay", "100ms"},
		"POLL_MIN_INTERVAL=300ms", "POLL_MAX_INTERVAL=2s", "HEARTBEAT_TIMEOUT=3s", "READY_TIMEOUT=3s")

	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
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
	defer cancelAlloc()
	alice, closeAlice := chromedp.NewContext(alloc)
	defer closeAlice()

	aliceID, bobID := "alice-"+randomHex(3), "bob-"+randomHex(3)
	id := func(s string) chromedp.ID { return chromedp.ID(strings.TrimPrefix(s, "#")) }
	status := func(want ...string) chromedp.Action[chromedp.Void] {
		b, _ := json.Marshal(want)
		return chromedp.Poll[chromedp.Void](string(b)+".includes(document.querySelector('#status').dataset.status)",
			chromedp.WithPollingTimeout(25*time.Second))
	}
	textIs := func(sel, want string) chromedp.Action[chromedp.Void] {
		return chromedp.Poll[chromedp.Void](fmt.Sprintf("(document.querySelector(%q) || {}).textContent === %q", sel, want),
			chromedp.WithPollingTimeout(10*time.Second))
	}
	join := func(user string) chromedp.Action[chromedp.Void] {
		return chromedp.Steps(
			chromedp.Navigate(h.Base+"/"),
			chromedp.WaitVisible(id("#user-id")),
			chromedp.SetValue(id("#user-id"), user),
			chromedp.Click(id("#join")),
		)
	}
	shot := func(name string) chromedp.Action[chromedp.Void] {
		return chromedp.Func(func(ctx context.Context, tg *chromedp.Target) error {
			png, err := chromedp.FullScreenshot(100)(ctx, tg)
			if err != nil {
				return err
			}
			return os.WriteFile(filepath.Join(shots, name), png, 0o644)
		})
	}
	do := func(tab context.Context, step string, actions ...chromedp.Action[chromedp.Void]) {
		t.Helper()
		if err := chromedp.Do(tab, actions...); err != nil {
			t.Fatalf("%s: %v", step, err)
		}
	}
	get := func(tab context.Context, step string, a chromedp.Action[string]) string {
		t.Helper()
		v, err := chromedp.Run(tab, a)
		if err != nil {
			t.Fatalf("%s: %v", step, err)
		}
		return v
	}

	do(alice, "alice joins and plays", join(aliceID), status("Active"))
	// A second tab of the same browser (made once the browser runs; before, it would start its own).
	bob, closeBob := chromedp.NewContext(alice)
	defer closeBob()
	do(bob, "bob joins and waits", join(bobID), status("Queued"), textIs("#position", "1"), shot("1-bob-queued.png"))
	do(alice, "alice screenshot", shot("2-alice-playing.png"))

	do(alice, "alice stops", chromedp.Click(id("#stop")), status("Stopped"), shot("3-alice-stopped.png"))
	do(bob, "bob gets the slot", status("Active"), shot("4-bob-playing.png"))
	if s := get(bob, "bob's ServerSession", chromedp.TextContent(id("#server-session"))); s == "" || s == "–" {
		t.Fatalf("bob is playing without a ServerSession shown: %q", s)
	}

	do(bob, "bob reloads and reconnects", chromedp.Reload(), status("Active"), shot("5-bob-reconnected.png"))
	if user := get(bob, "bob's user id", chromedp.Value(id("#user-id"))); user != bobID {
		t.Fatalf("after reload the tab is %q, want %q (identity per tab)", user, bobID)
	}

	dash, closeDash := chromedp.NewContext(alice)
	defer closeDash()
	do(dash, "dashboard", chromedp.Navigate(h.Base+"/dashboard"),
		chromedp.WaitVisible(id("#admin-token")),
		chromedp.SetValue(id("#admin-token"), h.AdminToken),
		chromedp.Click(id("#save-token")),
		textIs(`#stats-counts [data-key="Active"] .value`, "1"),
		chromedp.Sleep(2500*time.Millisecond), // a second sample, so the chart has a line to show
		shot("6-dashboard.png"))

	// Bob's connection drops (heartbeats paused): the page counts down the reconnect window the
	// server told it (ReconnectWindowMs = HEARTBEAT_TIMEOUT, 3s here), then says the slot is
	// reclaimed, which the reaper does; Reconnect then behaves like /start and plays again.
	countdown := `(document.querySelector('#drop').textContent.match(/^Connection dropped — your slot is kept for (\d+) s: press Reconnect$/) || [])[1]`
	do(bob, "bob drops", chromedp.Click(id("#pause-heartbeat")), status("Dropped"),
		chromedp.Poll[chromedp.Void](countdown+" !== undefined", chromedp.WithPollingTimeout(5*time.Second)),
		shot("7-bob-dropped.png"))
	if left := get(bob, "the countdown", chromedp.Evaluate[string](countdown+` || ""`)); left > "1" { // one digit: 3 s window
		do(bob, "the countdown runs", chromedp.Poll[chromedp.Void](
			fmt.Sprintf("Number(%s || 0) === %s - 1", countdown, left), chromedp.WithPollingTimeout(3*time.Second)))
	}
	do(bob, "bob sees the slot reclaimed", status("Reclaimed"),
		chromedp.Poll[chromedp.Void]("document.querySelector('#drop').textContent.startsWith('Slot reclaimed — no heartbeat for 3 s')",
			chromedp.WithPollingTimeout(5*time.Second)),
		chromedp.Poll[chromedp.Void]("!document.querySelector('#rejoin').hidden && !document.querySelector('#reconnect').hidden",
			chromedp.WithPollingTimeout(time.Second)),
		shot("8-bob-reclaimed.png"))
	eventually(t, 20*time.Second, "bob's slot reclaimed", func() error {
		if s := h.emulatorState(t); len(s.Sessions) > 0 {
			return fmt.Errorf("%w: %+v", errNotYet, s)
		}
		return nil
	})
	do(bob, "bob reconnects late, as a new join", chromedp.Click(id("#reconnect")), status("Active"),
		chromedp.Poll[chromedp.Void]("document.querySelector('#drop').hidden", chromedp.WithPollingTimeout(time.Second)))
	do(bob, "bob stops", chromedp.Click(id("#stop")), status("Stopped"))
	eventually(t, 15*time.Second, "every emulated slot idle", func() error {
		s := h.emulatorState(t)
		if s.Idle != s.Total || len(s.Locked) > 0 || len(s.Sessions) > 0 {
			return fmt.Errorf("%w: %+v", errNotYet, s)
		}
		return nil
	})
}
