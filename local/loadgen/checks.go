package loadgen

import (
	"fmt"
	"slices"
	"time"
)

// FIFO rule (what checkFIFO calls a violation, and why it is sound).
//
// Users are started one after another, so index order = order of the first /start answers =
// the order the contract promises admission in. The server shows its own view of the line in
// every Queued answer (Position), and a claim is visible as the first Admitting or Ready answer
// (claimAt: the server had claimed the user before that answer arrived).
//
// The queue claims from the head only, and a claim that fails transiently (CAR InternalError,
// NoIdle while a slot is still cleaning, a lost lease) puts the user back at its old place,
// which is then at the front. So once a later user B has been claimed, an earlier user A who
// is still waiting can only be one of those returned claims, and there are never more of them
// than Capacity (each was holding a slot when it was claimed). Hence:
//
//	violation: A before B, and an answer to a request A sent after B's claim was seen
//	           says A is Queued with Position > Capacity (A was overtaken while far back).
//
// Only A's answers from before A's own first claim count (a /reconnect that falls back into
// the line rejoins at the back, as documented), so users who quit, were dropped or reconnect
// are handled without special cases. Two users claimed in the same reaper run, or one whose
// admission was retried, may see Ready in either order: those are counted as inversions
// (Report.ReadyInversions) but are not violations.
func checkFIFO(users []*user, capacity int64) (violations []string, inversions int, maxLag time.Duration) {
	n := len(users)
	// laterClaim[i]: the earliest claim among users i+1..n-1 and who it was.
	type claim struct {
		at  time.Time
		who int
	}
	laterClaim := make([]claim, n+1)
	for i := n - 1; i >= 0; i-- {
		laterClaim[i] = laterClaim[i+1]
		if i+1 < n {
			c := users[i+1].claimAt
			if !c.IsZero() && (laterClaim[i].at.IsZero() || c.Before(laterClaim[i].at)) {
				laterClaim[i] = claim{c, i + 1}
			}
		}
	}
	for i, a := range users {
		b := laterClaim[i]
		if b.at.IsZero() {
			continue
		}
		for _, w := range a.waits {
			if w.Sent.After(b.at) && w.Position > capacity {
				violations = append(violations, fmt.Sprintf(
					"FIFO: user %s (#%d) was still Queued at Position %d (> capacity %d) %s after user %s (#%d), who started after it, was admitted",
					a.id, a.idx, w.Position, capacity, w.Sent.Sub(b.at).Round(time.Millisecond), users[b.who].id, b.who))
				break
			}
		}
	}
	// Ready-order inversions, for the report: pairs A before B with B Ready first.
	ready := make([]*user, 0, n)
	for _, u := range users {
		if !u.readyAt.IsZero() {
			ready = append(ready, u)
		}
	}
	for i, a := range ready {
		for _, b := range ready[i+1:] {
			if b.readyAt.Before(a.readyAt) {
				inversions++
				maxLag = max(maxLag, a.readyAt.Sub(b.readyAt))
			}
		}
	}
	return violations, inversions, maxLag
}

// checkFinal compares what the server says became of each user, after the drain, with what
// the user did: stopped → Expired "stopped"; vanished → Expired "heartbeat_timeout" (it had
// heartbeated) or "never_started" (it had not); anything else is an unexplained loss. The
// server forgets a departed user's reason after GONE_RETENTION: a plain Expired is accepted
// (forgotten = true) only when the user left at least that long before the final /poll.
func checkFinal(u *user, retention time.Duration) (violations []string, forgotten bool) {
	if !u.started || u.outcome == outLost || u.outcome == outUnfinished {
		return nil, false // already reported by the user itself
	}
	var want []string
	switch u.outcome {
	case outStopped, outQuit:
		want = []string{"stopped"}
	case outVanished:
		want = []string{"heartbeat_timeout"}
		if u.beats == 0 {
			want = []string{"never_started"}
		}
	default:
		return []string{fmt.Sprintf("user %s (#%d, %s): unknown outcome %q", u.id, u.idx, u.role, u.outcome)}, false
	}
	if u.finalStatus == "Expired" && u.finalReason == "" && !u.leftAt.IsZero() && u.finalSent.Sub(u.leftAt) >= retention {
		return nil, true
	}
	if u.finalStatus != "Expired" || !slices.Contains(want, u.finalReason) {
		return []string{fmt.Sprintf("user %s (#%d, %s): %s %s before the final /poll, which answers %q (Reason %q), want Expired with Reason %v",
			u.id, u.idx, u.role, u.outcome, u.finalSent.Sub(u.leftAt).Round(time.Millisecond), u.finalStatus, u.finalReason, want)}, false
	}
	return nil, false
}
