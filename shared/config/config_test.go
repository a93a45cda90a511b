package config

import (
	"flag"
	"os"
	"reflect"
	"regexp"
	"strings"
	"testing"
	"time"
)

func env(m map[string]string) func(string) string {
	return func(k string) string { return m[k] }
}

// prod is a minimal valid production environment.
func prod() map[string]string {
	return map[string]string{
		"REDIS_ADDR":     "10.0.0.5:6379",
		"CAR_PROJECT_ID": "cap-abc",
		"CAPACITY":       "10",
		"TICKET_SECRET":  "0123456789abcdef0123",
	}
}

func TestDefaults(t *testing.T) {
	c, err := FromEnv(env(prod()), false)
	if err != nil {
		t.Fatal(err)
	}
	if c.QueueID != "default" || c.CAREndpoint != "car.tencentcloudapi.com" || c.CARScheme != "https" ||
		c.CORSOrigin != "*" || c.Capacity != 10 || c.RedisDB != 0 {
		t.Fatalf("unexpected defaults: %+v", c)
	}
	if c.QueueIdleTimeout != 90*time.Second || c.HeartbeatTimeout != time.Minute || c.ReadyTimeout != time.Minute {
		t.Fatalf("timeouts: %+v", c)
	}
	if c.HeartbeatInterval != 15*time.Second {
		t.Fatalf("HeartbeatInterval = %s, want HEARTBEAT_TIMEOUT/4", c.HeartbeatInterval)
	}
	// QUEUE_IDLE_TIMEOUT/2.4 is 37.5s: the 30s cap wins.
	if c.PollMaxInterval != 30*time.Second || c.PollMinInterval != time.Second {
		t.Fatalf("poll intervals %s, %s, want 30s and 1s", c.PollMinInterval, c.PollMaxInterval)
	}
	if c.CARLockTTL != 30*time.Second || c.CARBudget != 25*time.Second || c.ClaimLease != 30*time.Second {
		t.Fatalf("CAR lock %s, budget %s, claim lease %s", c.CARLockTTL, c.CARBudget, c.ClaimLease)
	}
	if c.ReaperBatch != 25 || c.ReaperMaxBatches != 400 || c.ReaperLease != 6*time.Second || c.ReaperParallel != 8 ||
		c.ReaperRunTime != 45*time.Second || c.ReaperPause != 100*time.Millisecond {
		t.Fatalf("reaper settings: %+v", c)
	}
	if got := strings.Join(c.Derived, ","); got != "HEARTBEAT_INTERVAL,POLL_MIN_INTERVAL,POLL_MAX_INTERVAL" {
		t.Fatalf("Derived = %s", got)
	}
	if c.AdminToken != "" || c.CARRates != nil {
		t.Fatalf("optional values must stay empty: %+v", c)
	}
}

func TestLocalDefaults(t *testing.T) {
	c, err := FromEnv(env(nil), true)
	if err != nil {
		t.Fatal(err)
	}
	if c.TicketSecret != LocalTicketSecret || c.AdminToken != LocalAdminToken || c.Capacity != 2 ||
		c.RedisAddr != "127.0.0.1:6379" || !c.Local {
		t.Fatalf("local defaults: %+v", c)
	}
	// Explicit values still win locally.
	c, err = FromEnv(env(map[string]string{"TICKET_SECRET": "another-secret-of-length", "CAPACITY": "7"}), true)
	if err != nil || c.TicketSecret != "another-secret-of-length" || c.Capacity != 7 {
		t.Fatalf("explicit local values: %+v %v", c, err)
	}
}

func TestAllVariablesParsed(t *testing.T) {
	m := prod()
	for k, v := range map[string]string{
		"REDIS_PASSWORD": "pw", "REDIS_DB": "3", "QUEUE_ID": "q-1",
		"CAR_APPLICATION_ID": "app-1", "CAR_APPLICATION_VERSION_ID": "ver-1",
		"CAR_ENDPOINT": "127.0.0.1:9000", "CAR_SCHEME": "HTTP", "CAR_REGION": "ap-guangzhou",
		"CAR_RUN_MODE": "RunWithoutClient", "CAR_CALL_TIMEOUT": "5s", "CAR_MAX_RETRIES": "1",
		"CAR_RATE_LIMIT": "ApplyConcurrent=50, CreateSession=20.5", "CAR_LOCK_TTL": "20s",
		"QUEUE_IDLE_TIMEOUT": "2m", "HEARTBEAT_TIMEOUT": "40s", "READY_TIMEOUT": "45s",
		"HEARTBEAT_INTERVAL": "10s", "POLL_MIN_INTERVAL": "2s", "POLL_MAX_INTERVAL": "20s",
		"CLAIM_LEASE": "25s", "GONE_RETENTION": "5m", "RATE_WINDOW": "10m",
		"REAPER_BATCH": "50", "REAPER_MAX_BATCHES": "7", "REAPER_LEASE": "4s", "REAPER_OUTAGE_GRACE": "25s", "REAPER_MAX_ADMIT": "5", "REAPER_PARALLEL": "4",
		"REAPER_RUN_TIME": "25s", "REAPER_PAUSE": "250ms", "REAPER_QUEUES": "3", "CAR_TOTAL_REFRESH": "45s",
		"STOP_RELEASE_WAIT": "3s", "RELEASE_RETRY_MIN": "2s", "RELEASE_RETRY_MAX": "30s",
		"TICKET_SECRET_PREVIOUS": "previous-secret-0123", "ADMIN_TOKEN": "tok", "CORS_ORIGIN": "https://a.example",
		"LOG_LEVEL": "debug", "LANES": "vip=3,default=1", "OPENS_AT": "2026-12-24T20:00:00+08:00",
		"MAX_SESSION": "1h", "SESSION_WARNING": "10m", "RECORDS_MAX": "5000",
		"WEBHOOK_URL": "https://hooks.example.com/r", "WEBHOOK_SECRET": "webhook-secret-0123",
		"PORT": "8081", "REAPER_TICK": "250ms", "REDIS_POOL_SIZE": "16", "GOGC": "off",
	} {
		m[k] = v
	}
	c, err := FromEnv(env(m), false)
	if err != nil {
		t.Fatal(err)
	}
	opens, _ := time.Parse(time.RFC3339, "2026-12-24T20:00:00+08:00")
	want := Config{
		RedisAddr: "10.0.0.5:6379", RedisAddrs: []string{"10.0.0.5:6379"}, RedisPassword: "pw", RedisDB: 3, QueueID: "q-1",
		CARProjectID: "cap-abc", CARApplicationID: "app-1", CARApplicationVersionID: "ver-1",
		CAREndpoint: "127.0.0.1:9000", CARScheme: "http", CARRegion: "ap-guangzhou", CARRunMode: "RunWithoutClient",
		CARCallTimeout: 5 * time.Second, CARMaxRetries: 1, CARLockTTL: 20 * time.Second, CARBudget: 16666 * time.Millisecond,
		Capacity: 10, QueueIdleTimeout: 2 * time.Minute, HeartbeatTimeout: 40 * time.Second, ReadyTimeout: 45 * time.Second,
		HeartbeatInterval: 10 * time.Second, PollMinInterval: 2 * time.Second, PollMaxInterval: 20 * time.Second,
		ClaimLease: 25 * time.Second, GoneRetention: 5 * time.Minute, RateWindow: 10 * time.Minute,
		ReaperBatch: 50, ReaperMaxBatches: 7, ReaperLease: 4 * time.Second, ReaperOutageGrace: 25 * time.Second, ReaperMaxAdmit: 5, ReaperParallel: 4,
		ReaperRunTime: 25 * time.Second, ReaperPause: 250 * time.Millisecond, ReaperQueues: 3, CARTotalRefresh: 45 * time.Second,
		Queues: []Queue{{
			ID: "q-1", ProjectID: "cap-abc", ApplicationID: "app-1", ApplicationVersionID: "ver-1", Capacity: 10,
			RunMode: "RunWithoutClient", QueueIdleTimeout: 2 * time.Minute, HeartbeatTimeout: 40 * time.Second,
			ReadyTimeout: 45 * time.Second, HeartbeatInterval: 10 * time.Second, PollMinInterval: 2 * time.Second,
			PollMaxInterval: 20 * time.Second, Lanes: []Lane{{"vip", 3}, {"default", 1}}, OpensAt: opens,
			MaxSession: time.Hour, SessionWarning: 10 * time.Minute,
		}},
		Lanes: []Lane{{"vip", 3}, {"default", 1}}, OpensAt: opens, MaxSession: time.Hour, SessionWarning: 10 * time.Minute,
		RecordsMax: 5000, WebhookURL: "https://hooks.example.com/r", WebhookSecret: "webhook-secret-0123",
		Port: 8081, ReaperTick: 250 * time.Millisecond, RedisPoolSize: 16, GCPercent: -1,
		StopReleaseWait: 3 * time.Second, ReleaseRetryMin: 2 * time.Second, ReleaseRetryMax: 30 * time.Second,
		TicketSecret: "0123456789abcdef0123", TicketSecretPrevious: "previous-secret-0123",
		AdminToken: "tok", CORSOrigin: "https://a.example", LogLevel: -4,
	}
	rates := c.CARRates
	c.CARRates = nil
	if !reflect.DeepEqual(c, want) {
		t.Fatalf("got  %+v\nwant %+v", c, want)
	}
	if len(rates) != 2 || rates["ApplyConcurrent"] != 50 || rates["CreateSession"] != 20.5 {
		t.Fatalf("rates %v", rates)
	}
}

func TestBadValuesNameTheVariable(t *testing.T) {
	cases := []struct {
		name, value string
		want        string // substring of the error besides the name
	}{
		{"REDIS_ADDR", "", "required"},
		{"REDIS_ADDR", "redis://x:6379", "host[:port]"},
		{"REDIS_ADDR", "x:99999", "port"},
		{"REDIS_ADDR", "a:1,,b:2", "without empty items"},
		{"REDIS_ADDR", "a:1,b:99999", "port 1–65535 (address 2 of 2)"},
		{"REDIS_ADDR", "a:1, redis://b:2", "without scheme or path (address 2 of 2)"},
		{"REDIS_DB", "-1", "integer"},
		{"REDIS_MASTER_NAME", "my{master}", "A-Za-z0-9"},
		{"REDIS_TLS", "yes", "one of 0, 1"},
		{"QUEUE_ID", "a{b}", "A-Za-z0-9"},
		{"QUEUE_ID", strings.Repeat("q", 65), "1–64"},
		{"CAR_PROJECT_ID", "", "required"},
		{"CAR_SCHEME", "ftp", "https, http"},
		{"CAR_CALL_TIMEOUT", "5", "Go duration"},
		{"CAR_MAX_RETRIES", "x", "integer"},
		{"CAR_RATE_LIMIT", "ApplyConcurrent", "Action=rate"},
		{"CAR_RATE_LIMIT", "ApplyConcurrent=-1", "Action=rate"},
		{"CAPACITY", "", "required"},
		{"CAPACITY", "-1", "integer 0–"},
		{"CAPACITY", "ten", "integer 0–"},
		{"QUEUE_IDLE_TIMEOUT", "soon", "Go duration"},
		{"HEARTBEAT_TIMEOUT", "100ms", "at least 1s"},
		{"READY_TIMEOUT", "-5s", "Go duration"},
		{"REAPER_BATCH", "10001", "integer 1–10000"},
		{"REAPER_MAX_BATCHES", "0", "integer 1–10000"},
		{"REAPER_MAX_BATCHES", "10001", "integer 1–10000"},
		{"REAPER_LEASE", "2s", "at least 3s"},
		{"REAPER_RUN_TIME", "500ms", "at least 1s"},
		{"REAPER_PAUSE", "5ms", "at least 10ms"},
		{"TICKET_SECRET", "", "required"},
		{"TICKET_SECRET", "short", "at least 16"},
		{"LOG_LEVEL", "loud", "debug, info"},
		{"GOGC", "5", "integer 10–10000 or off"},
		{"GOGC", "fast", "integer 10–10000 or off"},
	}
	for _, tc := range cases {
		t.Run(tc.name+"="+tc.value, func(t *testing.T) {
			m := prod()
			m[tc.name] = tc.value
			_, err := FromEnv(env(m), false)
			if err == nil {
				t.Fatal("no error")
			}
			if !strings.Contains(err.Error(), tc.name+":") || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %q should name %s and say %q", err, tc.name, tc.want)
			}
		})
	}
}

func TestSecretsNeverEchoed(t *testing.T) {
	m := prod()
	m["TICKET_SECRET"] = "sh0rt-s3cret"
	_, err := FromEnv(env(m), false)
	if err == nil || strings.Contains(err.Error(), "sh0rt-s3cret") {
		t.Fatalf("error must not echo the secret: %v", err)
	}
}

// A password pasted into an address (redis://:pw@host) is refused without being shown.
func TestAddressWithCredentialsNotEchoed(t *testing.T) {
	m := prod()
	m["REDIS_ADDR"] = "redis://:hunter2-password@10.0.0.5:6379"
	_, err := FromEnv(env(m), false)
	if err == nil || !strings.Contains(err.Error(), "REDIS_ADDR: want host[:port]") || strings.Contains(err.Error(), "hunter2") {
		t.Fatalf("error %v should name REDIS_ADDR and not echo its value", err)
	}
}

// The Redis topology follows REDIS_ADDR and REDIS_MASTER_NAME (API.md): one address is a single
// node (or a cluster proxy), several are a Redis Cluster, REDIS_MASTER_NAME makes them sentinels.
// A missing port is Redis's (6379) or Sentinel's (26379).
func TestRedisTopologies(t *testing.T) {
	cases := []struct {
		env     []string
		addrs   []string
		cluster bool
	}{
		{[]string{"REDIS_ADDR", "10.0.0.5"}, []string{"10.0.0.5:6379"}, false},
		{[]string{"REDIS_ADDR", " 10.0.0.5:7000, 10.0.0.6:7001 ,10.0.0.7"}, []string{"10.0.0.5:7000", "10.0.0.6:7001", "10.0.0.7:6379"}, true},
		{[]string{"REDIS_ADDR", "[::1]:7000,[::1]"}, []string{"[::1]:7000", "[::1]:6379"}, true},
		{[]string{"REDIS_ADDR", "s1,s2:5000", "REDIS_MASTER_NAME", "mymaster", "REDIS_DB", "2"}, []string{"s1:26379", "s2:5000"}, false},
	}
	for _, tc := range cases {
		c, err := FromEnv(env(with(tc.env...)), false)
		if err != nil {
			t.Fatalf("%v: %v", tc.env, err)
		}
		if !reflect.DeepEqual(c.RedisAddrs, tc.addrs) || c.RedisCluster() != tc.cluster {
			t.Errorf("%v: addrs %q cluster %v, want %q %v", tc.env, c.RedisAddrs, c.RedisCluster(), tc.addrs, tc.cluster)
		}
		if want := strings.TrimSpace(with(tc.env...)["REDIS_ADDR"]); c.RedisAddr != want {
			t.Errorf("RedisAddr = %q, want the raw %q", c.RedisAddr, want)
		}
	}
	c, err := FromEnv(env(with("REDIS_USERNAME", "app", "REDIS_TLS", "1", "REDIS_MASTER_NAME", "m", "REDIS_SENTINEL_PASSWORD", "spw")), false)
	if err != nil || c.RedisUsername != "app" || !c.RedisTLS || c.RedisMasterName != "m" || c.RedisSentinelPassword != "spw" {
		t.Fatalf("%+v %v", c, err)
	}
}

func TestAllErrorsReportedAtOnce(t *testing.T) {
	_, err := FromEnv(env(nil), false)
	for _, name := range []string{"REDIS_ADDR", "CAR_PROJECT_ID", "CAPACITY", "TICKET_SECRET"} {
		if err == nil || !strings.Contains(err.Error(), name) {
			t.Fatalf("error %v should name %s", err, name)
		}
	}
}

// TestVarsAreExactlyWhatIsRead keeps Vars the one source of truth: every name FromEnv asks
// for is in Vars and every Var is asked for.
func TestVarsAreExactlyWhatIsRead(t *testing.T) {
	asked := map[string]bool{}
	_, _ = FromEnv(func(k string) string { asked[k] = true; return prod()[k] }, false)
	seen := map[string]bool{}
	for _, v := range Vars {
		if seen[v.Name] {
			t.Errorf("%s listed twice", v.Name)
		}
		seen[v.Name] = true
		if !asked[v.Name] {
			t.Errorf("%s is in Vars but FromEnv never reads it", v.Name)
		}
		if v.Required && v.Default != "" {
			t.Errorf("%s is required but has a default", v.Name)
		}
		if v.Meaning == "" {
			t.Errorf("%s has no meaning", v.Name)
		}
	}
	for k := range asked {
		if !seen[k] {
			t.Errorf("FromEnv reads %s, which Vars does not list", k)
		}
	}
}

// update rewrites README.md's generated parts (the configuration table and rules) in place.
var update = flag.Bool("update", false, "rewrite README.md's generated configuration table and rules")

// rewriteREADME replaces the one occurrence of old in README.md with new.
func rewriteREADME(t *testing.T, old, new string) {
	t.Helper()
	b, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	if strings.Count(string(b), old) != 1 {
		t.Fatalf("README.md: the generated block to replace is not there exactly once")
	}
	if err := os.WriteFile("../../README.md", []byte(strings.Replace(string(b), old, new, 1)), 0o644); err != nil {
		t.Fatal(err)
	}
}

// rulesList returns the first run of "- " lines of a section: the generated rules.
func rulesList(section string) string {
	var out strings.Builder
	for _, line := range strings.SplitAfter(section, "\n") {
		if strings.HasPrefix(line, "- ") {
			out.WriteString(line)
		} else if out.Len() > 0 {
			break
		}
	}
	return out.String()
}

// readmeSection returns the body of README.md's "## <title>" section.
func readmeSection(t *testing.T, title string) string {
	t.Helper()
	b, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	section := string(b)
	i := strings.Index(section, "\n## "+title+"\n")
	if i < 0 {
		t.Fatalf("README.md has no %q section", "## "+title)
	}
	section = section[i+1:]
	if j := strings.Index(section, "\n## "); j >= 0 {
		section = section[:j]
	}
	return section
}

// TestREADMETableIsMarkdown keeps README.md's reference table exactly config.Markdown(): the
// whole table, from its header to the first line that is not a row.
func TestREADMETableIsMarkdown(t *testing.T) {
	section := readmeSection(t, "Configuration")
	i := strings.Index(section, "| Variable | Default | Local default | Meaning |\n")
	if i < 0 {
		t.Fatal(`README.md's "## Configuration" has no table`)
	}
	var table strings.Builder
	for _, line := range strings.SplitAfter(section[i:], "\n") {
		if !strings.HasPrefix(line, "|") {
			break
		}
		table.WriteString(line)
	}
	if table.String() != Markdown() {
		if *update {
			rewriteREADME(t, table.String(), Markdown())
		} else {
			t.Fatalf("README.md's configuration table is stale; regenerate it with\n\tgo test ./shared/config -run TestREADME -update")
		}
	}
	// Only the generated table lists the variables: no stray row elsewhere in the section.
	re := regexp.MustCompile("(?m)^\\| `([A-Z0-9_]+)` \\|")
	if got, want := len(re.FindAllString(section, -1)), len(Vars); got != want {
		t.Fatalf("the Configuration section has %d variable rows, want the %d of Vars", got, want)
	}
}

// TestREADMERules keeps README.md's "Configuration rules" list exactly RulesMarkdown(), so
// every checked relation, and both of its variables, is documented.
func TestREADMERules(t *testing.T) {
	section := readmeSection(t, "Configuration rules")
	if !strings.Contains(section, RulesMarkdown()) {
		old := rulesList(section)
		if *update && old != "" {
			rewriteREADME(t, old, RulesMarkdown())
		} else {
			t.Fatalf("README.md's configuration rules are stale; regenerate them with\n\tgo test ./shared/config -run TestREADME -update")
		}
	}
	// The README says FromEnv checks all but the last two: the timeout rules come last.
	for i, r := range Rules {
		if r.Timeout != (i >= len(Rules)-2) {
			t.Errorf("rule %d (%s): the two timeout rules must be the last two", i, r.Text)
		}
	}
	for _, r := range Rules {
		for _, name := range []string{r.Var, r.Other} {
			if name != "" && !strings.Contains(r.Text, "`"+name+"`") {
				t.Errorf("rule %q does not mention %s", r.Text, name)
			}
		}
	}
}

func TestVariables(t *testing.T) {
	m := prod()
	delete(m, "CAPACITY")
	m["CAR_SCHEME"] = "ftp"
	_, err := FromEnv(env(m), false)
	got := strings.Join(Variables(err), ",")
	if got != "CAR_SCHEME,CAPACITY" {
		t.Fatalf("Variables = %q", got)
	}
	if Variables(nil) != nil {
		t.Fatal("Variables(nil) must be empty")
	}
	// A broken relation names both of its variables, once each.
	m = prod()
	m["CLAIM_LEASE"] = "10s"
	m["REAPER_RUN_TIME"] = "10s"
	_, err = FromEnv(env(m), false)
	if got := strings.Join(Variables(err), ","); got != "CLAIM_LEASE,CAR_LOCK_TTL,REAPER_RUN_TIME" {
		t.Fatalf("Variables = %q", got)
	}
}
