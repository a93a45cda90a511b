package config

import (
	"strings"
	"testing"
	"time"
)

// with returns a valid production environment with changes.
func with(kv ...string) map[string]string {
	m := prod()
	for i := 0; i+1 < len(kv); i += 2 {
		m[kv[i]] = kv[i+1]
	}
	return m
}

// TestRelations: every relation of Rules, broken, gives an error filed under its variable
// that also names the other one, says the limit and why; the same values, set right, pass.
func TestRelations(t *testing.T) {
	cases := []struct {
		rule string   // Rule.Var + " " + Rule.Other
		env  []string // on top of prod()
		want string   // in the message, besides both names
	}{
		{"REDIS_DB REDIS_ADDR", []string{"REDIS_ADDR", "a:7000,b:7000,c:7000", "REDIS_DB", "1"}, "got 1, want 0 with the 3 cluster nodes of REDIS_ADDR, because a Redis Cluster has only database 0"},
		{"REDIS_SENTINEL_PASSWORD REDIS_MASTER_NAME", []string{"REDIS_SENTINEL_PASSWORD", "pw"}, "want empty, or REDIS_MASTER_NAME set, because only Sentinel"},
		{"HEARTBEAT_INTERVAL HEARTBEAT_TIMEOUT", []string{"HEARTBEAT_TIMEOUT", "50s", "HEARTBEAT_INTERVAL", "26s"}, "got 26s, want at most HEARTBEAT_TIMEOUT/2 (25s), so one lost heartbeat"},
		{"READY_TIMEOUT HEARTBEAT_INTERVAL", []string{"HEARTBEAT_INTERVAL", "20s", "READY_TIMEOUT", "30s"}, "got 30s, want at least 2 × HEARTBEAT_INTERVAL (40s), so a Ready user"},
		{"QUEUE_IDLE_TIMEOUT POLL_MIN_INTERVAL", []string{"QUEUE_IDLE_TIMEOUT", "3s", "POLL_MIN_INTERVAL", "2s"}, "got 3s, want at least 2.4 × POLL_MIN_INTERVAL (4.8s)"},
		// The case: a 60s idle timeout with POLL_MAX_INTERVAL set to its old default.
		{"POLL_MAX_INTERVAL QUEUE_IDLE_TIMEOUT", []string{"QUEUE_IDLE_TIMEOUT", "60s", "POLL_MAX_INTERVAL", "30s"}, "got 30s, want at most QUEUE_IDLE_TIMEOUT/2.4 (25s), or no value (then it is derived), so one lost poll"},
		{"POLL_MIN_INTERVAL POLL_MAX_INTERVAL", []string{"POLL_MIN_INTERVAL", "5s", "POLL_MAX_INTERVAL", "4s"}, "got 5s, want at most POLL_MAX_INTERVAL (4s), so the head"},
		{"CLAIM_LEASE CAR_LOCK_TTL", []string{"CLAIM_LEASE", "20s"}, "CLAIM_LEASE: got 20s, want at least CAR_LOCK_TTL (30s), so a claim outlives its admission"},
		{"CAR_CALL_TIMEOUT CAR_LOCK_TTL", []string{"CAR_CALL_TIMEOUT", "26s"}, "got 26s, want at most the CAR budget, CAR_LOCK_TTL×5/6 (25s)"},
		{"REAPER_OUTAGE_GRACE REAPER_LEASE", []string{"REAPER_OUTAGE_GRACE", "15s"}, "got 15s, want at least REAPER_LEASE + 10s (16s), because a run that died"},
		{"REAPER_RUN_TIME CAR_LOCK_TTL", []string{"REAPER_RUN_TIME", "29s"}, "got 29s, want at least CAR_LOCK_TTL (30s), so a reaper run"},
		{"STOP_RELEASE_WAIT CAR_LOCK_TTL", []string{"STOP_RELEASE_WAIT", "26s"}, "got 26s, want at most the CAR budget, CAR_LOCK_TTL×5/6 (25s)"},
		{"RELEASE_RETRY_MAX RELEASE_RETRY_MIN", []string{"RELEASE_RETRY_MIN", "10s", "RELEASE_RETRY_MAX", "5s"}, "got 5s, want at least RELEASE_RETRY_MIN (10s), so the backoff"},
		{"REQUIRE_GRANT GRANT_SECRET", []string{"REQUIRE_GRANT", "1"}, "want 0, or GRANT_SECRET set, because without the secret"},
		{"TICKET_SECRET_PREVIOUS TICKET_SECRET", []string{"TICKET_SECRET_PREVIOUS", "0123456789abcdef0123"}, "want a value different from TICKET_SECRET"},
		{"SESSION_WARNING MAX_SESSION", []string{"MAX_SESSION", "5m"}, "got 5m0s, want less than MAX_SESSION (5m0s), so a session"},
		{"WEBHOOK_URL WEBHOOK_SECRET", []string{"WEBHOOK_URL", "https://hooks.example.com/carqueue"}, "want WEBHOOK_SECRET set too (or WEBHOOK_URL empty), because the receiver"},
	}
	covered := map[string]bool{}
	for _, tc := range cases {
		t.Run(tc.rule, func(t *testing.T) {
			covered[tc.rule] = true
			names := strings.Fields(tc.rule)
			_, err := FromEnv(env(with(tc.env...)), false)
			if err == nil {
				t.Fatalf("%v: no error", tc.env)
			}
			msg := err.Error()
			if strings.Count(msg, "\n") != 0 {
				t.Errorf("want exactly one problem, got:\n%s", msg)
			}
			if !strings.Contains(msg, names[0]+": ") || !strings.Contains(msg, names[1]) || !strings.Contains(msg, tc.want) {
				t.Errorf("error %q should be filed under %s, name %s and say %q", msg, names[0], names[1], tc.want)
			}
			if got := strings.Join(Variables(err), " "); got != tc.rule {
				t.Errorf("Variables = %q, want %q", got, tc.rule)
			}
			// Same in local mode: the rules hold there too.
			if _, err := FromEnv(env(with(tc.env...)), true); err == nil {
				t.Errorf("local mode accepts %v", tc.env)
			}
		})
	}
	for _, r := range Rules {
		if !r.Timeout && !covered[r.Var+" "+r.Other] {
			t.Errorf("rule %s has no case here", r.Text)
		}
	}
}

// The edges: a relation that just holds is accepted.
func TestRelationsAtTheirLimit(t *testing.T) {
	for _, kv := range [][]string{
		{"HEARTBEAT_INTERVAL", "30s"},                                            // = HEARTBEAT_TIMEOUT/2
		{"HEARTBEAT_INTERVAL", "20s", "READY_TIMEOUT", "40s"},                    // = 2 × interval
		{"QUEUE_IDLE_TIMEOUT", "2.4s", "POLL_MIN_INTERVAL", "1s"},                // = 2.4 × min
		{"QUEUE_IDLE_TIMEOUT", "60s", "POLL_MAX_INTERVAL", "25s"},                // = idle/2.4
		{"POLL_MIN_INTERVAL", "4s", "POLL_MAX_INTERVAL", "4s"},                   // min = max
		{"CLAIM_LEASE", "30s", "REAPER_RUN_TIME", "30s"},                         // = CAR_LOCK_TTL
		{"REAPER_LEASE", "3s"},                                                   // the shortest
		{"CAR_CALL_TIMEOUT", "25s"},                                              // = the budget
		{"CAR_LOCK_TTL", "12s", "CAR_CALL_TIMEOUT", "10s", "CLAIM_LEASE", "12s"}, // budget 10s
	} {
		if _, err := FromEnv(env(with(kv...)), false); err != nil {
			t.Errorf("%v: %v", kv, err)
		}
	}
}

// Setting only the contract's variables always works: the rest is derived to fit.
func TestContractVariablesAlone(t *testing.T) {
	check := func(t *testing.T, kv ...string) {
		t.Helper()
		for _, local := range []bool{false, true} {
			m := map[string]string{}
			if !local {
				m = prod()
			}
			for i := 0; i+1 < len(kv); i += 2 {
				m[kv[i]] = kv[i+1]
			}
			c, err := FromEnv(env(m), local)
			if err != nil {
				t.Fatalf("local=%v %v: %v", local, kv, err)
			}
			if times24(c.PollMaxInterval) > c.QueueIdleTimeout || c.PollMinInterval > c.PollMaxInterval ||
				c.HeartbeatInterval > c.HeartbeatTimeout/2 || c.ReadyTimeout < 2*c.HeartbeatInterval {
				t.Fatalf("local=%v %v: derived values break a rule: %+v", local, kv, c)
			}
		}
	}
	check(t, "QUEUE_IDLE_TIMEOUT", "3s", "HEARTBEAT_TIMEOUT", "3s", "READY_TIMEOUT", "4s")
	check(t, "QUEUE_IDLE_TIMEOUT", "1s", "HEARTBEAT_TIMEOUT", "1s", "READY_TIMEOUT", "1s")
	check(t, "HEARTBEAT_TIMEOUT", "10m") // READY_TIMEOUT stays 60s: the interval follows it
	for _, idle := range []string{"1s", "1.5s", "2s", "3s", "7s", "59s", "60s", "71s", "72s", "73s", "90s", "1h"} {
		for _, hb := range []string{"1s", "3s", "20s", "1m", "1h"} {
			for _, ready := range []string{"1s", "4s", "30s", "1h"} {
				check(t, "QUEUE_IDLE_TIMEOUT", idle, "HEARTBEAT_TIMEOUT", hb, "READY_TIMEOUT", ready, "CAPACITY", "3")
			}
		}
	}
}

func TestDerivedValues(t *testing.T) {
	for _, tc := range []struct {
		env                    []string
		pollMin, pollMax, beat time.Duration
		derived                string
	}{
		{nil, time.Second, 30 * time.Second, 15 * time.Second, "HEARTBEAT_INTERVAL,POLL_MIN_INTERVAL,POLL_MAX_INTERVAL"},
		{[]string{"QUEUE_IDLE_TIMEOUT", "3s"}, time.Second, 1250 * time.Millisecond, 15 * time.Second, "HEARTBEAT_INTERVAL,POLL_MIN_INTERVAL,POLL_MAX_INTERVAL"},
		{[]string{"QUEUE_IDLE_TIMEOUT", "1s"}, 416 * time.Millisecond, 416 * time.Millisecond, 15 * time.Second, "HEARTBEAT_INTERVAL,POLL_MIN_INTERVAL,POLL_MAX_INTERVAL"},
		{[]string{"POLL_MAX_INTERVAL", "500ms"}, 500 * time.Millisecond, 500 * time.Millisecond, 15 * time.Second, "HEARTBEAT_INTERVAL,POLL_MIN_INTERVAL"},
		{[]string{"POLL_MIN_INTERVAL", "2s", "QUEUE_IDLE_TIMEOUT", "10s"}, 2 * time.Second, 4166 * time.Millisecond, 15 * time.Second, "HEARTBEAT_INTERVAL,POLL_MAX_INTERVAL"},
		{[]string{"HEARTBEAT_TIMEOUT", "2m", "READY_TIMEOUT", "20s"}, time.Second, 30 * time.Second, 10 * time.Second, "HEARTBEAT_INTERVAL,POLL_MIN_INTERVAL,POLL_MAX_INTERVAL"},
		{[]string{"HEARTBEAT_INTERVAL", "5s", "POLL_MIN_INTERVAL", "1s", "POLL_MAX_INTERVAL", "3s"}, time.Second, 3 * time.Second, 5 * time.Second, ""},
	} {
		c, err := FromEnv(env(with(tc.env...)), false)
		if err != nil {
			t.Errorf("%v: %v", tc.env, err)
			continue
		}
		if c.PollMinInterval != tc.pollMin || c.PollMaxInterval != tc.pollMax || c.HeartbeatInterval != tc.beat {
			t.Errorf("%v: poll %s–%s, heartbeat %s; want %s–%s, %s", tc.env, c.PollMinInterval, c.PollMaxInterval, c.HeartbeatInterval, tc.pollMin, tc.pollMax, tc.beat)
		}
		if got := strings.Join(c.Derived, ","); got != tc.derived {
			t.Errorf("%v: Derived = %q, want %q", tc.env, got, tc.derived)
		}
	}
}

// Derived variables say so in the README: the table shows "derived" and the Meaning says how,
// quoting the cap when there is one.
func TestDerivedVarsDocumented(t *testing.T) {
	n := 0
	for _, v := range Vars {
		if !v.Derived {
			continue
		}
		n++
		if !strings.Contains(v.Meaning, "Not set: ") || (v.Default != "" && !strings.Contains(v.Meaning, "min("+v.Default+", ")) {
			t.Errorf("%s: Meaning %q should say how it is derived (Not set: min(%s, …))", v.Name, v.Meaning, v.Default)
		}
		if !strings.Contains(Markdown(), "| `"+v.Name+"` | derived |") {
			t.Errorf("%s is not shown as derived in Markdown()", v.Name)
		}
	}
	if n != 3 {
		t.Errorf("%d derived variables, want HEARTBEAT_INTERVAL, POLL_MIN_INTERVAL, POLL_MAX_INTERVAL", n)
	}
}

func TestCheckTimeouts(t *testing.T) {
	c, err := FromEnv(env(prod()), false)
	if err != nil {
		t.Fatal(err)
	}
	sls := FunctionTimeouts{HTTP: 30 * time.Second, HTTPFrom: "serverless.yml (start)", Reaper: 60 * time.Second, ReaperFrom: "serverless.yml (reaper-cron)"}
	if err := CheckTimeouts(c, sls); err != nil {
		t.Fatalf("the defaults must fit serverless.yml's timeouts: %v", err)
	}
	if err := CheckTimeouts(c, FunctionTimeouts{}); err != nil {
		t.Fatalf("unknown timeouts are skipped: %v", err)
	}
	for _, tc := range []struct {
		name  string
		env   []string
		t     FunctionTimeouts
		want  []string
		names string
	}{
		{"reaper run past the reaper's timeout", nil,
			FunctionTimeouts{Reaper: 15 * time.Second, ReaperFrom: "flag -reaper-timeout"},
			[]string{"REAPER_RUN_TIME: got 45s, want at most the reaper function timeout 15s (flag -reaper-timeout) − 5s = 10s", "hand back unfinished claims"},
			"REAPER_RUN_TIME"},
		{"reaper timeout without room to wrap up", nil,
			FunctionTimeouts{Reaper: 5 * time.Second, ReaperFrom: "serverless.yml (reaper-cron)"},
			[]string{"REAPER_RUN_TIME: got 45s, want a reaper function timeout above 5s (it is 5s, serverless.yml (reaper-cron))"},
			"REAPER_RUN_TIME"},
		{"admission past the HTTP timeout", []string{"CAR_LOCK_TTL", "40s", "CLAIM_LEASE", "40s"},
			FunctionTimeouts{HTTP: 30 * time.Second, HTTPFrom: "serverless.yml (start)"},
			[]string{"CAR_LOCK_TTL: got 40s, want at most (the HTTP function timeout 30s, serverless.yml (start), − 5s) × 6/5 = 30s", "/start, /poll and /reconnect may admit within the request"},
			"CAR_LOCK_TTL"},
		{"both", nil,
			FunctionTimeouts{HTTP: 15 * time.Second, HTTPFrom: "flag -function-timeout", Reaper: 15 * time.Second, ReaperFrom: "flag -reaper-timeout"},
			[]string{"CAR_LOCK_TTL: got 30s", "flag -function-timeout", "REAPER_RUN_TIME: got 45s", "flag -reaper-timeout"},
			"CAR_LOCK_TTL REAPER_RUN_TIME"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := FromEnv(env(with(tc.env...)), false)
			if err != nil {
				t.Fatal(err)
			}
			err = CheckTimeouts(c, tc.t)
			if err == nil {
				t.Fatal("no error")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q lacks %q", err, w)
				}
			}
			if got := strings.Join(Variables(err), " "); got != tc.names {
				t.Errorf("Variables = %q, want %q", got, tc.names)
			}
		})
	}
	// At the limit: run time + 5s = timeout, budget + 5s = timeout.
	c, _ = FromEnv(env(with("REAPER_RUN_TIME", "45s", "CAR_LOCK_TTL", "30s")), false)
	if err := CheckTimeouts(c, FunctionTimeouts{HTTP: 30 * time.Second, Reaper: 50 * time.Second}); err != nil {
		t.Errorf("at the limit: %v", err)
	}
}

// No message of a rule may carry a secret, whatever the secrets are.
func TestRuleMessagesCarryNoSecret(t *testing.T) {
	const secret = "this-is-the-secret-value"
	m := with("TICKET_SECRET", secret, "TICKET_SECRET_PREVIOUS", secret, "ADMIN_TOKEN", secret, "REDIS_PASSWORD", secret,
		"CLAIM_LEASE", "1s", "REAPER_LEASE", "1s", "HEARTBEAT_INTERVAL", "59s", "CAR_CALL_TIMEOUT", "1h")
	_, err := FromEnv(env(m), false)
	if err == nil || strings.Contains(err.Error(), secret) {
		t.Fatalf("error must exist and not echo a secret: %v", err)
	}
	if n := strings.Count(err.Error(), "\n") + 1; n != 6 {
		t.Errorf("want 6 problems, got %d:\n%v", n, err)
	}
}
