package main

import (
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/carqueue/carqueue/shared/ticket"
	"github.com/chromedp/chromedp"
)

// TestBrowserLaneOpeningAndSessionLimit plays a launch on the demo page: a user who joins with
// a grant before the scheduled opening sees the lane and the opening as a countdown that ticks
// between polls (no position yet); at the opening the user plays and sees the session limit's
// time left, marked once the server's warning comes, and then the end by the limit.
func TestBrowserLaneOpeningAndSessionLimit(t *testing.T) {
	b := newBrowser(t, 90*time.Second)
	harnessBinary(t) // built before the clock starts: the opening must still be ahead
	const grantSecret = "grant-secret-0123456789"
	opens := time.Now().Add(9 * time.Second).UTC().Format(time.RFC3339)
	h := startLocal(t, []string{"-capacity", "1", "-tick", "250ms", "-cleanup-delay", "100ms"},
		"POLL_MIN_INTERVAL=300ms", "POLL_MAX_INTERVAL=1s", "HEARTBEAT_TIMEOUT=4s", "READY_TIMEOUT=4s",
		"LANES=vip=3,default=1", "GRANT_SECRET="+grantSecret, "OPENS_AT="+opens, "MAX_SESSION=10s", "SESSION_WARNING=7s")
	servesClient(t, h)
	user := "vip-" + randomHex(3)
	g := ticket.Sign(grantSecret, ticket.Grant{UserID: user, Lane: "vip", Exp: time.Now().Add(time.Hour)})

	tab := b.tab("vip", nil)
	b.do(tab, "a vip joins before the opening", joinAs(h.Base, "/?grant="+url.QueryEscape(g), user), status("Queued"),
		until(`document.querySelector('#eta').textContent.startsWith("opens in")`, 5*time.Second),
		textIs("#position", "–"),
		until(`!document.querySelector('#lane-note').hidden && document.querySelector('#lane-name').textContent === "vip"`, 5*time.Second),
		b.shot("launch-1-before-opening.png"))
	first := browserGet(b, tab, "the countdown", chromedp.Evaluate[string](`document.querySelector('#eta').textContent`))
	b.do(tab, "the countdown ticks", until(`document.querySelector('#eta').textContent !== `+strconv.Quote(first), 3*time.Second))

	b.do(tab, "at the opening the vip plays, with the time left", status("Active"),
		until(`!document.querySelector('#remaining-box').hidden`, 10*time.Second))
	left := browserGet(b, tab, "the time left", chromedp.Evaluate[string](`document.querySelector('#remaining').textContent`))
	if n, err := strconv.Atoi(strings.TrimSuffix(left, " s")); err != nil || n < 1 || n > 10 {
		t.Fatalf("time left %q, want 1–10 s of a 10 s limit", left)
	}
	b.do(tab, "the warning marks the time left", until(`document.querySelector('#remaining-box').classList.contains('warn')`, 8*time.Second),
		until(`document.querySelector('#lane-name').textContent === "vip"`, time.Second),
		b.shot("launch-2-time-left.png"))
	b.do(tab, "the limit ends the session", status("Expired"),
		until(`document.querySelector('#message').textContent.includes("time is up")`, 5*time.Second),
		until(`document.querySelector('#remaining-box').hidden && document.querySelector('#lane-note').hidden`, time.Second),
		b.shot("launch-3-time-up.png"))
}
