package config

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// WrapUp is the time the session and reaper packages give their queue bookkeeping after the
// work's context has ended (their bookkeepingTimeout): recording CAR's answer, handing back an
// unfinished claim, releasing the reaper's lease. The function timeouts must leave room for it,
// because SCF stops an invocation at its deadline and nothing after it runs.
const WrapUp = 5 * time.Second

// Rule is one relation between settings that the code relies on. FromEnv checks the rules
// without Timeout; CheckTimeouts checks the others, which need the functions' timeouts (known
// to the local harness and to the deployment, not to a function reading its environment).
// Rules is also rendered into README.md (RulesMarkdown), so the documentation is the check.
type Rule struct {
	Var   string // the variable the error is filed under
	Other string // the other variable of the relation ("" when it is a function timeout)
	Text  string // the relation in README form
	Why   string // what breaks otherwise; ends every error message of this rule
	// Timeout marks a rule about a function timeout (checked by CheckTimeouts).
	Timeout bool
	// check reports got (the value of Var as shown in the message, "" to show none) and want
	// (the limit, naming the other side) when the relation does not hold.
	check func(f facts) (got, want string, bad bool)
}

// facts is what a rule may look at: the parsed values, which variables were set explicitly
// (a derived value always fits its own rule), and the function timeouts when known.
type facts struct {
	c        *Config
	set      func(name string) bool
	timeouts FunctionTimeouts
}

// FunctionTimeouts are the SCF function timeouts of a deployment, when known (zero: unknown,
// the rule is skipped). The From fields name where each came from, for the messages.
type FunctionTimeouts struct {
	HTTP       time.Duration // the six HTTP functions (/start, /poll and /reconnect may admit inline)
	HTTPFrom   string        // e.g. "serverless.yml (start)" or "flag -function-timeout"
	Reaper     time.Duration // reaper-cron
	ReaperFrom string        // e.g. "serverless.yml (reaper-cron)" or "flag -reaper-timeout"
}

// pos reports whether every duration parsed (a zero one already has its own error).
func pos(ds ...time.Duration) bool {
	for _, d := range ds {
		if d <= 0 {
			return false
		}
	}
	return true
}

// times24 is 2.4 × d: two jittered intervals (each at most 1.2 × d).
func times24(d time.Duration) time.Duration { return d * 24 / 10 }

// div24 is d / 2.4, truncated to the millisecond so the derived value always fits.
func div24(d time.Duration) time.Duration { return (d * 10 / 24).Truncate(time.Millisecond) }

// Rules lists every relation between settings, in the order of the README list.
var Rules = []Rule{
	{
		Var: "REDIS_DB", Other: "REDIS_ADDR",
		Text: "`REDIS_DB` = 0 when `REDIS_ADDR` lists several nodes without `REDIS_MASTER_NAME` (a Redis Cluster)",
		Why:  "because a Redis Cluster has only database 0 and refuses SELECT",
		check: func(f facts) (string, string, bool) {
			c := f.c
			return strconv.Itoa(c.RedisDB), fmt.Sprintf("0 with the %d cluster nodes of REDIS_ADDR", len(c.RedisAddrs)),
				c.RedisCluster() && c.RedisDB != 0
		},
	},
	{
		Var: "REDIS_SENTINEL_PASSWORD", Other: "REDIS_MASTER_NAME",
		Text: "`REDIS_SENTINEL_PASSWORD` needs `REDIS_MASTER_NAME`",
		Why:  "because only Sentinel uses it: set without it, it is a mistake that would be silently ignored",
		check: func(f facts) (string, string, bool) {
			c := f.c
			// A password: no got.
			return "", "empty, or REDIS_MASTER_NAME set", c.RedisSentinelPassword != "" && c.RedisMasterName == ""
		},
	},
	{
		Var: "HEARTBEAT_INTERVAL", Other: "HEARTBEAT_TIMEOUT",
		Text: "`HEARTBEAT_INTERVAL` ≤ `HEARTBEAT_TIMEOUT`/2",
		Why:  "so one lost heartbeat does not end a session",
		check: func(f facts) (string, string, bool) {
			c := f.c
			return c.HeartbeatInterval.String(), fmt.Sprintf("at most HEARTBEAT_TIMEOUT/2 (%s)", c.HeartbeatTimeout/2),
				pos(c.HeartbeatInterval, c.HeartbeatTimeout) && c.HeartbeatInterval > c.HeartbeatTimeout/2
		},
	},
	{
		Var: "READY_TIMEOUT", Other: "HEARTBEAT_INTERVAL",
		Text: "`READY_TIMEOUT` ≥ 2 × `HEARTBEAT_INTERVAL`",
		Why:  "so a Ready user gets its first heartbeat in even when one is lost",
		check: func(f facts) (string, string, bool) {
			c := f.c
			return c.ReadyTimeout.String(), fmt.Sprintf("at least 2 × HEARTBEAT_INTERVAL (%s)", 2*c.HeartbeatInterval),
				pos(c.ReadyTimeout, c.HeartbeatInterval) && c.ReadyTimeout < 2*c.HeartbeatInterval
		},
	},
	{
		Var: "QUEUE_IDLE_TIMEOUT", Other: "POLL_MIN_INTERVAL",
		Text: "`QUEUE_IDLE_TIMEOUT` ≥ 2.4 × `POLL_MIN_INTERVAL` (when that is set; derived, it always fits)",
		Why:  "so a user at the head of the line, told to poll every POLL_MIN_INTERVAL (+20% jitter), is not dropped for one lost poll",
		check: func(f facts) (string, string, bool) {
			c := f.c
			return c.QueueIdleTimeout.String(), fmt.Sprintf("at least 2.4 × POLL_MIN_INTERVAL (%s)", times24(c.PollMinInterval)),
				f.set("POLL_MIN_INTERVAL") && pos(c.QueueIdleTimeout, c.PollMinInterval) && times24(c.PollMinInterval) > c.QueueIdleTimeout
		},
	},
	{
		Var: "POLL_MAX_INTERVAL", Other: "QUEUE_IDLE_TIMEOUT",
		Text: "2.4 × `POLL_MAX_INTERVAL` ≤ `QUEUE_IDLE_TIMEOUT` (when POLL_MAX_INTERVAL is set; not set, it is derived to fit)",
		Why:  "so one lost poll (the longest jittered interval is 1.2 × POLL_MAX_INTERVAL) does not drop a user",
		check: func(f facts) (string, string, bool) {
			c := f.c
			return c.PollMaxInterval.String(), fmt.Sprintf("at most QUEUE_IDLE_TIMEOUT/2.4 (%s), or no value (then it is derived)", div24(c.QueueIdleTimeout)),
				f.set("POLL_MAX_INTERVAL") && pos(c.PollMaxInterval, c.QueueIdleTimeout) && times24(c.PollMaxInterval) > c.QueueIdleTimeout
		},
	},
	{
		Var: "POLL_MIN_INTERVAL", Other: "POLL_MAX_INTERVAL",
		Text: "`POLL_MIN_INTERVAL` ≤ `POLL_MAX_INTERVAL`",
		Why:  "so the head of the line polls at least as often as its back",
		check: func(f facts) (string, string, bool) {
			c := f.c
			derived := ""
			if !f.set("POLL_MAX_INTERVAL") {
				derived = ", derived from QUEUE_IDLE_TIMEOUT"
				// Then this is the QUEUE_IDLE_TIMEOUT rule again, already reported.
				if pos(c.QueueIdleTimeout, c.PollMinInterval) && times24(c.PollMinInterval) > c.QueueIdleTimeout {
					return "", "", false
				}
			}
			return c.PollMinInterval.String(), fmt.Sprintf("at most POLL_MAX_INTERVAL (%s%s)", c.PollMaxInterval, derived),
				pos(c.PollMinInterval, c.PollMaxInterval) && c.PollMinInterval > c.PollMaxInterval
		},
	},
	{
		Var: "CLAIM_LEASE", Other: "CAR_LOCK_TTL",
		Text: "`CLAIM_LEASE` ≥ `CAR_LOCK_TTL`",
		Why: "so a claim outlives its admission (CAR calls for up to CAR_LOCK_TTL×5/6, then the queue is told); " +
			"a shorter lease hands the user to a second admission while the first is still calling CAR",
		check: func(f facts) (string, string, bool) {
			c := f.c
			return c.ClaimLease.String(), fmt.Sprintf("at least CAR_LOCK_TTL (%s)", c.CARLockTTL),
				pos(c.ClaimLease, c.CARLockTTL) && c.ClaimLease < c.CARLockTTL
		},
	},
	{
		Var: "CAR_CALL_TIMEOUT", Other: "CAR_LOCK_TTL",
		Text: "`CAR_CALL_TIMEOUT` (when set) ≤ the CAR budget, `CAR_LOCK_TTL`×5/6",
		Why: "because the budget is all the time the CAR calls of one admission get under the per-user lock: " +
			"a longer attempt is cut off anyway, and its retries never get their turn",
		check: func(f facts) (string, string, bool) {
			c := f.c
			return c.CARCallTimeout.String(), fmt.Sprintf("at most the CAR budget, CAR_LOCK_TTL×5/6 (%s)", c.CARBudget),
				pos(c.CARCallTimeout, c.CARBudget) && c.CARCallTimeout > c.CARBudget
		},
	},
	{
		Var: "REAPER_OUTAGE_GRACE", Other: "REAPER_LEASE",
		Text: "`REAPER_OUTAGE_GRACE` ≥ `REAPER_LEASE` + 10s",
		Why: "because a run that died holds the next one up for REAPER_LEASE and the timer fires every 5s (serverless.yml): " +
			"a shorter grace takes that ordinary gap for an outage and holds reaping for nothing",
		check: func(f facts) (string, string, bool) {
			c := f.c
			return c.ReaperOutageGrace.String(), fmt.Sprintf("at least REAPER_LEASE + 10s (%s)", c.ReaperLease+10*time.Second),
				pos(c.ReaperOutageGrace, c.ReaperLease) && c.ReaperOutageGrace < c.ReaperLease+10*time.Second
		},
	},
	{
		Var: "REAPER_RUN_TIME", Other: "CAR_LOCK_TTL",
		Text: "`REAPER_RUN_TIME` ≥ `CAR_LOCK_TTL`",
		Why:  "so a reaper run has room for one admission (up to CAR_LOCK_TTL×5/6 of CAR calls); a shorter run cuts it off and the user goes back to the front",
		check: func(f facts) (string, string, bool) {
			c := f.c
			return c.ReaperRunTime.String(), fmt.Sprintf("at least CAR_LOCK_TTL (%s)", c.CARLockTTL),
				pos(c.ReaperRunTime, c.CARLockTTL) && c.ReaperRunTime < c.CARLockTTL
		},
	},
	{
		Var: "STOP_RELEASE_WAIT", Other: "CAR_LOCK_TTL",
		Text: "`STOP_RELEASE_WAIT` ≤ the CAR budget, `CAR_LOCK_TTL`×5/6",
		Why:  "because the release's DestroySession is cut off at the CAR budget anyway",
		check: func(f facts) (string, string, bool) {
			c := f.c
			return c.StopReleaseWait.String(), fmt.Sprintf("at most the CAR budget, CAR_LOCK_TTL×5/6 (%s)", c.CARBudget),
				pos(c.StopReleaseWait, c.CARBudget) && c.StopReleaseWait > c.CARBudget
		},
	},
	{
		Var: "RELEASE_RETRY_MAX", Other: "RELEASE_RETRY_MIN",
		Text: "`RELEASE_RETRY_MIN` ≤ `RELEASE_RETRY_MAX`",
		Why:  "so the backoff between DestroySession attempts has a range to grow in",
		check: func(f facts) (string, string, bool) {
			c := f.c
			return c.ReleaseRetryMax.String(), fmt.Sprintf("at least RELEASE_RETRY_MIN (%s)", c.ReleaseRetryMin),
				pos(c.ReleaseRetryMin, c.ReleaseRetryMax) && c.ReleaseRetryMax < c.ReleaseRetryMin
		},
	},
	{
		Var: "REQUIRE_GRANT", Other: "GRANT_SECRET",
		Text: "`REQUIRE_GRANT` = 1 needs `GRANT_SECRET`",
		Why:  "because without the secret no grant verifies, and every /start would be refused",
		check: func(f facts) (string, string, bool) {
			c := f.c
			return "1", "0, or GRANT_SECRET set", c.RequireGrant && c.GrantSecret == ""
		},
	},
	{
		Var: "SESSION_WARNING", Other: "MAX_SESSION",
		Text: "`SESSION_WARNING` < `MAX_SESSION` when MAX_SESSION is set",
		Why:  "so a session is not in its warning from its first heartbeat on",
		check: func(f facts) (string, string, bool) {
			c := f.c
			return c.SessionWarning.String(), fmt.Sprintf("less than MAX_SESSION (%s)", c.MaxSession),
				c.MaxSession > 0 && c.SessionWarning >= c.MaxSession
		},
	},
	{
		Var: "WEBHOOK_URL", Other: "WEBHOOK_SECRET",
		Text: "`WEBHOOK_URL` needs `WEBHOOK_SECRET`",
		Why:  "because the receiver must be able to tell our records from forged ones",
		check: func(f facts) (string, string, bool) {
			c := f.c
			return "", "WEBHOOK_SECRET set too (or WEBHOOK_URL empty)", c.WebhookURL != "" && c.WebhookSecret == ""
		},
	},
	{
		Var: "TICKET_SECRET_PREVIOUS", Other: "TICKET_SECRET",
		Text: "`TICKET_SECRET_PREVIOUS` ≠ `TICKET_SECRET`",
		Why:  "so a rotation accepts two different secrets",
		check: func(f facts) (string, string, bool) {
			c := f.c
			// Secrets: no got.
			return "", "a value different from TICKET_SECRET, or empty",
				c.TicketSecretPrevious != "" && c.TicketSecretPrevious == c.TicketSecret
		},
	},
	{
		Var: "CAR_LOCK_TTL", Timeout: true,
		Text: "`CAR_LOCK_TTL`×5/6 + 5s ≤ the HTTP functions' timeout",
		Why: "because /start, /poll and /reconnect may admit within the request: up to CAR_LOCK_TTL×5/6 of CAR calls, then up to 5s " +
			"to record the result, all inside the invocation; cut off by the timeout, the user stays Admitting until CLAIM_LEASE ends",
		check: func(f facts) (string, string, bool) {
			c, t := f.c, f.timeouts
			if !pos(t.HTTP, c.CARLockTTL) {
				return "", "", false
			}
			if t.HTTP <= WrapUp {
				return c.CARLockTTL.String(), fmt.Sprintf("an HTTP function timeout above %s (it is %s, %s)", WrapUp, t.HTTP, t.HTTPFrom), true
			}
			limit := ((t.HTTP - WrapUp) * 6 / 5).Truncate(time.Millisecond)
			return c.CARLockTTL.String(), fmt.Sprintf("at most (the HTTP function timeout %s, %s, − %s) × 6/5 = %s, or a longer timeout",
				t.HTTP, t.HTTPFrom, WrapUp, limit), c.CARBudget+WrapUp > t.HTTP
		},
	},
	{
		Var: "REAPER_RUN_TIME", Timeout: true,
		Text: "`REAPER_RUN_TIME` + 5s ≤ the reaper function's timeout",
		Why: "because a run works for REAPER_RUN_TIME (or until its invocation deadline), then takes up to 5s to hand back " +
			"unfinished claims and release its lease; cut off by the timeout instead, it leaves its claims Admitting until CLAIM_LEASE " +
			"ends and its lease until REAPER_LEASE does",
		check: func(f facts) (string, string, bool) {
			c, t := f.c, f.timeouts
			if !pos(t.Reaper, c.ReaperRunTime) {
				return "", "", false
			}
			if t.Reaper <= WrapUp {
				return c.ReaperRunTime.String(), fmt.Sprintf("a reaper function timeout above %s (it is %s, %s)", WrapUp, t.Reaper, t.ReaperFrom), true
			}
			return c.ReaperRunTime.String(), fmt.Sprintf("at most the reaper function timeout %s (%s) − %s = %s, or a longer timeout",
				t.Reaper, t.ReaperFrom, WrapUp, t.Reaper-WrapUp), c.ReaperRunTime+WrapUp > t.Reaper
		},
	},
}

// apply records an error for every rule of the kind (timeout or not) that does not hold.
func (r *reader) apply(f facts, timeout bool) {
	for _, rule := range Rules {
		if rule.Timeout != timeout {
			continue
		}
		got, want, bad := rule.check(f)
		if !bad {
			continue
		}
		msg := "want " + want + ", " + rule.Why
		if got != "" {
			msg = "got " + got + ", " + msg
		}
		r.errs = append(r.errs, &VarError{Name: rule.Var, Other: rule.Other, Problem: msg})
	}
}

// CheckTimeouts checks the configuration against the functions' timeouts, which the local
// harness (its flags) and the deployment (serverless.yml) know but a function's environment
// does not. A zero timeout is skipped.
func CheckTimeouts(c Config, t FunctionTimeouts) error {
	r := &reader{}
	r.apply(facts{c: &c, set: func(string) bool { return true }, timeouts: t}, true)
	if len(r.errs) > 0 {
		return fmt.Errorf("function timeouts: %w", errors.Join(r.errs...))
	}
	return nil
}

// RulesMarkdown renders Rules as the README's list.
func RulesMarkdown() string {
	var b strings.Builder
	for _, rule := range Rules {
		fmt.Fprintf(&b, "- %s: %s.\n", rule.Text, rule.Why)
	}
	return b.String()
}
