package main

import (
	"fmt"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// TestBrowserOperatorPauseAndNotice drives the dashboard's controls in headless Chromium and
// watches a waiting user's demo page: a pause with a notice shows on the page at once (the
// banner, "admission is paused"), a freed slot is not handed out while paused, resuming admits
// the user, and clearing the notice removes the banner. The chart reads the server's history.
func TestBrowserOperatorPauseAndNotice(t *testing.T) {
	b := newBrowser(t, 90*time.Second)
	h := startLocal(t, []string{"-capacity", "1", "-tick", "250ms", "-cleanup-delay", "100ms"},
		"POLL_MIN_INTERVAL=300ms", "POLL_MAX_INTERVAL=1s", "HEARTBEAT_TIMEOUT=4s", "READY_TIMEOUT=4s")
	servesClient(t, h)
	const notice = "Maintenance until 10:00, thanks for waiting"

	alice := b.tab("alice", nil)
	aliceID, bobID := "alice-"+randomHex(3), "bob-"+randomHex(3)
	b.do(alice, "alice plays", joinAs(h.Base, "/", aliceID), status("Active"))
	bob := b.tab("bob", alice)
	b.do(bob, "bob waits", joinAs(h.Base, "/", bobID), status("Queued"), textIs("#position", "1"),
		until("document.querySelector('#notice').hidden", time.Second))

	dash := b.tab("dashboard", alice)
	b.do(dash, "the operator opens the dashboard", chromedp.Navigate(h.Base+"/dashboard"),
		chromedp.WaitVisible(byID("#admin-token")),
		chromedp.SetValue(byID("#admin-token"), h.AdminToken),
		chromedp.Click(byID("#save-token")),
		textIs("#ops-state", "Admitting"),
		until("document.querySelector('#holders-table tbody tr') !== null", 15*time.Second))
	// Every control asks first: this operator answers yes.
	b.do(dash, "pause with a notice",
		chromedp.Evaluate[chromedp.Void](`window.confirm = () => true`),
		chromedp.SetValue(byID("#ops-notice"), notice),
		chromedp.Click(byID("#ops-pause")),
		textIs("#ops-state", "Paused"),
		until(`document.querySelector('#ops-message').textContent.startsWith("Admission paused")`, 5*time.Second),
		b.shot("op-1-dashboard-paused.png"))

	b.do(bob, "bob sees the pause and the notice",
		until(`!document.querySelector('#notice').hidden && document.querySelector('#notice').textContent.includes("paused")`+
			` && document.querySelector('#notice').textContent.includes("`+notice+`")`, 10*time.Second),
		b.shot("op-2-bob-paused.png"))

	// Alice leaves: her slot is free, but nobody is admitted while paused.
	b.do(alice, "alice stops", chromedp.Click(byID("#stop")), status("Stopped"))
	b.do(dash, "the slot stays free", until(`document.querySelector('#stats-counts [data-key="Holding"] .value').textContent === "0"`, 10*time.Second))
	polls := browserGet(b, bob, "bob's polls so far", chromedp.Evaluate[float64](`performance.getEntriesByType("resource").filter(e => e.name.endsWith("/poll")).length`))
	b.do(bob, "bob polls on, still queued",
		until(`performance.getEntriesByType("resource").filter(e => e.name.endsWith("/poll")).length >= `+ftoa(polls+3), 10*time.Second))
	if st := browserGet(b, bob, "bob's status while paused", chromedp.Evaluate[string](`document.querySelector('#status').dataset.status`)); st != "Queued" {
		t.Fatalf("bob is %s while admission is paused", st)
	}

	b.do(dash, "resume", chromedp.Click(byID("#ops-resume")), textIs("#ops-state", "Admitting"))
	b.do(bob, "bob is admitted and still sees the notice, without the pause", status("Active"),
		until(`document.querySelector('#notice').textContent.includes("`+notice+`") && !document.querySelector('#notice').textContent.includes("paused")`, 10*time.Second))
	// The operator starts typing (the box then keeps the draft), then clears the notice: the box
	// follows the server again, empty.
	b.do(dash, "clear the notice", chromedp.SendKeys(byID("#ops-notice"), " (draft)"),
		chromedp.Click(byID("#ops-notice-clear")),
		until(`document.querySelector('#ops-message').textContent === "Notice cleared."`, 5*time.Second),
		until(`document.querySelector('#ops-notice').value === "" && !document.querySelector('#ops-notice').dataset.edited`, 5*time.Second))
	b.do(bob, "the banner goes", until("document.querySelector('#notice').hidden", 10*time.Second), b.shot("op-3-bob-playing.png"))
	b.do(dash, "holders and history", until("document.querySelector('#holders-table tbody tr') !== null", 15*time.Second),
		chromedp.Reload(), textIs("#ops-state", "Admitting"), b.shot("op-4-dashboard.png"))
}

func ftoa(f float64) string { return fmt.Sprint(int(f)) }
