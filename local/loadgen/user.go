package loadgen

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"time"
)

// role is what a simulated user sets out to do.
type role string

const (
	rolePlay       role = "play"        // queue, play, heartbeat, /stop
	roleVanish     role = "vanish"      // queue, maybe play a little, then go silent
	roleReconnect  role = "reconnect"   // as play, with one dropped connection and /reconnect mid-play
	roleQuitQueued role = "quit-queued" // /stop while still Queued
)

// Outcomes: what the user ended up doing (Report.Outcomes counts them).
const (
	outStopped    = "stopped"     // played and sent /stop
	outQuit       = "quit-queued" // sent /stop while Queued
	outVanished   = "vanished"    // went silent after Ready: the reaper must reclaim
	outLost       = "lost"        // the server said Expired although the user did everything right
	outUnfinished = "unfinished"  // Timeout ended it, or a request failed for good
)

// waitObs is one Queued answer before the user's first admission.
type waitObs struct {
	Sent     time.Time // when the request left: the server answered after this
	Position int64
}

// user is one simulated client. Its goroutine owns it; Run reads it after the goroutine ends.
type user struct {
	id, cs   string
	idx      int // order of the first /start answer: the FIFO reference
	role     role
	play     time.Duration
	atOnce   bool // vanish: right after Ready, before any heartbeat
	quitPoll int  // quit-queued: after this many polls
	rnd      *rand.Rand
	c        *client
	cfg      Config

	ticket    string
	started   bool
	startRecv time.Time
	// firstETA is the EtaSeconds of the first answer (/start); told says there was one.
	firstETA time.Duration
	told     bool
	claimAt  time.Time // first Admitting or Ready answer: the server had claimed the user by then
	readyAt  time.Time // first Ready answer
	waits    []waitObs
	polls    int
	beats    int // heartbeats answered Active
	lastBeat time.Time
	reconn   bool // sent /reconnect
	fellBack bool // /reconnect answered Queued: back in the line
	outcome  string
	leftAt   time.Time // /stop answered, or the user went silent
	problems []string

	finalStatus, finalReason string
	finalSent                time.Time
}

func (u *user) problem(format string, args ...any) {
	u.problems = append(u.problems, fmt.Sprintf("user %s (#%d, %s): ", u.id, u.idx, u.role)+fmt.Sprintf(format, args...))
}

// fail ends the user on a request error: out of time, or a request the server rejected.
func (u *user) fail(err error) {
	u.outcome = outUnfinished
	if errors.Is(err, errRefused) {
		u.outcome = outLost
	}
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		u.problem("did not finish before the timeout (last: %v)", err)
		return
	}
	u.problem("%v", err)
}

// start sends the first /start; Run calls it one user after another, so the order of these
// answers is the FIFO order the contract promises.
func (u *user) start(ctx context.Context) (answer, error) {
	a, err := u.c.post(ctx, u.rnd, "start", map[string]any{"UserId": u.id, "ClientSession": u.cs, "RequestId": u.id + "-start"})
	if err != nil {
		return a, err
	}
	u.started, u.startRecv, u.ticket = true, a.Recv, a.str("Ticket")
	if eta, ok := a.Data["EtaSeconds"].(float64); ok && a.str("Status") == "Queued" {
		u.firstETA, u.told = time.Duration(eta)*time.Second, true
	}
	if u.ticket == "" {
		return a, fmt.Errorf("/start answered no Ticket: %v", a.Data)
	}
	return a, nil
}

func (u *user) body() map[string]any {
	return map[string]any{"UserId": u.id, "Ticket": u.ticket}
}

func (u *user) pollDelay(nextPollMs int64) time.Duration {
	d := time.Duration(float64(time.Duration(nextPollMs)*time.Millisecond) * u.cfg.PollScale)
	return max(d, MinPollInterval)
}

// run plays the user's part after its first /start answer.
func (u *user) run(ctx context.Context, first answer) {
	st, ok := u.waitReady(ctx, first)
	if !ok {
		return
	}
	u.readyAt = st.Recv
	if u.claimAt.IsZero() {
		u.claimAt = st.Recv
	}
	if st.str("ServerSession") == "" {
		u.problem("Ready without a ServerSession")
	}
	if u.role == roleVanish && u.atOnce {
		u.outcome, u.leftAt = outVanished, time.Now()
		return
	}
	if !u.playFor(ctx) {
		return
	}
	if u.role == roleVanish {
		u.outcome, u.leftAt = outVanished, time.Now()
		return
	}
	a, err := u.c.post(ctx, u.rnd, "stop", u.body())
	if err != nil {
		u.fail(err)
		return
	}
	if s := a.str("Status"); s != "Stopped" {
		u.problem("/stop answered %q, want Stopped", s)
	}
	u.outcome, u.leftAt = outStopped, a.Recv
}

// waitReady polls until Ready; false when the user left (quit, dropped or failed).
func (u *user) waitReady(ctx context.Context, st answer) (answer, bool) {
	for {
		switch s := st.str("Status"); s {
		case "Ready":
			return st, true
		case "Admitting":
			if u.claimAt.IsZero() {
				u.claimAt = st.Recv
			}
		case "Queued":
			if u.claimAt.IsZero() {
				u.waits = append(u.waits, waitObs{Sent: st.Sent, Position: st.num("Position")})
			}
			if u.role == roleQuitQueued && u.readyAt.IsZero() && u.polls >= u.quitPoll {
				a, err := u.c.post(ctx, u.rnd, "stop", u.body())
				if err != nil {
					u.fail(err)
					return st, false
				}
				if s := a.str("Status"); s != "Stopped" {
					u.problem("/stop while queued answered %q, want Stopped", s)
				}
				u.outcome, u.leftAt = outQuit, a.Recv
				return st, false
			}
		case "Expired":
			u.outcome = outLost
			u.problem("Expired (Reason %q) while waiting in line after %d polls", st.str("Reason"), u.polls)
			return st, false
		default:
			u.outcome = outLost
			u.problem("unexpected Status %q while waiting: %v", s, st.Data)
			return st, false
		}
		if !sleep(ctx, u.pollDelay(st.num("NextPollMs"))) {
			u.fail(ctx.Err())
			return st, false
		}
		a, err := u.c.post(ctx, u.rnd, "poll", u.body())
		if err != nil {
			u.fail(err)
			return st, false
		}
		u.polls++
		st = a
	}
}

// playFor heartbeats at NextHeartbeatMs for the play time (a vanishing user: half of it),
// reconnecting once halfway for roleReconnect. false when the user cannot go on.
func (u *user) playFor(ctx context.Context) bool {
	play := u.play
	if u.role == roleVanish {
		play /= 2
	}
	begin := time.Now()
	end, reconnectAt := begin.Add(play), begin.Add(play/2)
	var interval time.Duration // the first heartbeat goes at once, as TCGSDK.start returns
	for {
		if !sleep(ctx, interval) {
			u.fail(ctx.Err())
			return false
		}
		now := time.Now()
		if u.role == roleReconnect && !u.reconn && !now.Before(reconnectAt) {
			if !u.reconnect(ctx, interval) {
				return false
			}
			interval = 0
			continue
		}
		if !now.Before(end) && u.beats > 0 {
			return true
		}
		a, err := u.c.post(ctx, u.rnd, "heartbeat", u.body())
		if err != nil {
			u.fail(err)
			return false
		}
		if s := a.str("Status"); s != "Active" {
			u.outcome = outLost
			u.problem("/heartbeat answered %q (Reason %q) %s after the last Active heartbeat, want Active",
				s, a.str("Reason"), since(u.lastBeat, a.Sent))
			return false
		}
		u.beats++
		u.lastBeat = a.Recv
		interval = time.Duration(a.num("NextHeartbeatMs")) * time.Millisecond
		if interval <= 0 {
			u.problem("/heartbeat answered no NextHeartbeatMs")
			interval = time.Second
		}
	}
}

// reconnect drops the connection for one heartbeat interval, then /reconnect with a new
// ClientSession; it must come back Ready on the same user without queueing.
func (u *user) reconnect(ctx context.Context, interval time.Duration) bool {
	u.reconn = true
	if !sleep(ctx, interval) {
		u.fail(ctx.Err())
		return false
	}
	u.cs = u.cs + "-r"
	b := u.body()
	b["ClientSession"] = u.cs
	a, err := u.c.post(ctx, u.rnd, "reconnect", b)
	if err != nil {
		u.fail(err)
		return false
	}
	if t := a.str("Ticket"); t != "" {
		u.ticket = t
	}
	window := u.cfg.HeartbeatTimeout
	if window == 0 {
		window = 4 * interval
	}
	for {
		switch s := a.str("Status"); s {
		case "Ready":
			if a.str("ServerSession") == "" {
				u.problem("/reconnect Ready without a ServerSession")
			}
			return true
		case "Admitting":
		case "Queued":
			if !u.fellBack {
				u.fellBack = true
				// Inside the window the contract promises the slot back without queueing.
				if gap := a.Sent.Sub(u.lastBeat); gap < window*8/10 {
					u.problem("/reconnect %s after the last heartbeat (window %s) put the user back in line (Position %d), want its slot back",
						gap.Round(time.Millisecond), window, a.num("Position"))
				}
			}
		default:
			u.outcome = outLost
			u.problem("/reconnect then /poll answered %q (Reason %q), want Ready", s, a.str("Reason"))
			return false
		}
		if !sleep(ctx, u.pollDelay(a.num("NextPollMs"))) {
			u.fail(ctx.Err())
			return false
		}
		if a, err = u.c.post(ctx, u.rnd, "poll", u.body()); err != nil {
			u.fail(err)
			return false
		}
	}
}

// final asks the server, after the drain, what became of the user.
func (u *user) final(ctx context.Context) {
	if !u.started {
		return
	}
	a, err := u.c.post(ctx, u.rnd, "poll", u.body())
	if err != nil {
		u.finalStatus = "error: " + err.Error()
		return
	}
	u.finalStatus, u.finalReason, u.finalSent = a.str("Status"), a.str("Reason"), a.Sent
}

func since(from, to time.Time) string {
	if from.IsZero() {
		return "(no heartbeat before)"
	}
	return to.Sub(from).Round(time.Millisecond).String()
}
