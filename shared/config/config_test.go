package config

import (
	"os"
	"reflect"
	"regexp"
	"sort"
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
		"REAPER_BATCH": "50", "REAPER_LEASE": "40s", "REAPER_MAX_ADMIT": "5", "REAPER_PARALLEL": "4",
		"TICKET_SECRET_PREVIOUS": "previous-secret-0123", "ADMIN_TOKEN": "tok", "CORS_ORIGIN": "https://a.example",
		"LOG_LEVEL": "debug",
	} {
		m[k] = v
	}
	c, err := FromEnv(env(m), false)
	if err != nil {
		t.Fatal(err)
	}
	want := Config{
		RedisAddr: "10.0.0.5:6379", RedisPassword: "pw", RedisDB: 3, QueueID: "q-1",
		CARProjectID: "cap-abc", CARApplicationID: "app-1", CARApplicationVersionID: "ver-1",
		CAREndpoint: "127.0.0.1:9000", CARScheme: "http", CARRegion: "ap-guangzhou", CARRunMode: "RunWithoutClient",
		CARCallTimeout: 5 * time.Second, CARMaxRetries: 1, CARLockTTL: 20 * time.Second,
		Capacity: 10, QueueIdleTimeout: 2 * time.Minute, HeartbeatTimeout: 40 * time.Second, ReadyTimeout: 45 * time.Second,
		HeartbeatInterval: 10 * time.Second, PollMinInterval: 2 * time.Second, PollMaxInterval: 20 * time.Second,
		ClaimLease: 25 * time.Second, GoneRetention: 5 * time.Minute, RateWindow: 10 * time.Minute,
		ReaperBatch: 50, ReaperLease: 40 * time.Second, ReaperMaxAdmit: 5, ReaperParallel: 4,
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
		{"REDIS_DB", "-1", "integer"},
		{"QUEUE_ID", "a{b}", "A-Za-z0-9"},
		{"QUEUE_ID", strings.Repeat("q", 65), "1–64"},
		{"CAR_PROJECT_ID", "", "required"},
		{"CAR_SCHEME", "ftp", "https, http"},
		{"CAR_CALL_TIMEOUT", "5", "Go duration"},
		{"CAR_MAX_RETRIES", "x", "integer"},
		{"CAR_RATE_LIMIT", "ApplyConcurrent", "Action=rate"},
		{"CAR_RATE_LIMIT", "ApplyConcurrent=-1", "Action=rate"},
		{"CAPACITY", "", "required"},
		{"CAPACITY", "0", "integer 1–"},
		{"CAPACITY", "ten", "integer 1–"},
		{"QUEUE_IDLE_TIMEOUT", "soon", "Go duration"},
		{"HEARTBEAT_TIMEOUT", "100ms", "at least 1s"},
		{"READY_TIMEOUT", "-5s", "Go duration"},
		{"HEARTBEAT_INTERVAL", "45s", "HEARTBEAT_TIMEOUT/2"},
		{"POLL_MIN_INTERVAL", "40s", "POLL_MAX_INTERVAL"},
		{"POLL_MAX_INTERVAL", "60s", "QUEUE_IDLE_TIMEOUT/2.4"},
		{"TICKET_SECRET", "", "required"},
		{"TICKET_SECRET", "short", "at least 16"},
		{"TICKET_SECRET_PREVIOUS", "0123456789abcdef0123", "different"},
		{"LOG_LEVEL", "loud", "debug, info"},
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

func TestREADMEListsExactlyVars(t *testing.T) {
	b, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	// Only the "## Configuration" section is the reference table; other sections may
	// mention variables (the local harness's overrides, for one).
	section := string(b)
	if i := strings.Index(section, "\n## Configuration\n"); i >= 0 {
		section = section[i+1:]
		if j := strings.Index(section, "\n## "); j >= 0 {
			section = section[:j]
		}
	} else {
		t.Fatal("README.md has no \"## Configuration\" section")
	}
	b = []byte(section)
	re := regexp.MustCompile("(?m)^\\| `([A-Z0-9_]+)` \\|")
	var inDoc, inVars []string
	for _, m := range re.FindAllStringSubmatch(string(b), -1) {
		inDoc = append(inDoc, m[1])
	}
	for _, v := range Vars {
		inVars = append(inVars, v.Name)
	}
	sort.Strings(inDoc)
	sort.Strings(inVars)
	if strings.Join(inDoc, ",") != strings.Join(inVars, ",") {
		t.Fatalf("README.md lists %v\nVars lists      %v", inDoc, inVars)
	}
	if !strings.Contains(string(b), Markdown()) {
		t.Fatalf("README.md table is stale; paste config.Markdown():\n%s", Markdown())
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
}
