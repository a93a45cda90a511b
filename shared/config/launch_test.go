package config

import (
	"strings"
	"testing"
	"time"
)

// TestLaunchSettingsRefuseBadValues: each bad lane list, opening time, limit, record bound or
// webhook URL is named with its limit, and a QUEUES item may set its own lanes and opening.
func TestLaunchSettingsRefuseBadValues(t *testing.T) {
	for _, tc := range []struct{ name, value, want string }{
		{"LANES", "vip=3", "`default` among them"},
		{"LANES", "vip=3,default=1,vip=2", "each once"},
		{"LANES", "VIP=3,default=1", "[a-z0-9_-]"},
		{"LANES", "vip=0,default=1", "weights 1–100"},
		{"LANES", "vip=99,default=2", "summing to at most 100"},
		{"LANES", "vip,default=1", "name=weight"},
		{"OPENS_AT", "tomorrow", "RFC 3339"},
		{"MAX_SESSION", "30", "Go duration"},
		{"RECORDS_MAX", "10", "1000–10000000"},
		{"WEBHOOK_URL", "ftp://x", "http:// or https://"},
		{"WEBHOOK_SECRET", "short", "at least 16 characters"},
	} {
		_, err := FromEnv(env(with(tc.name, tc.value, "WEBHOOK_SECRET", map[bool]string{true: tc.value, false: "webhook-secret-0123"}[tc.name == "WEBHOOK_SECRET"])), false)
		if err == nil || !strings.Contains(err.Error(), tc.name+": ") || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s=%q: error %v, want it to name %s and say %q", tc.name, tc.value, err, tc.name, tc.want)
		}
		if tc.name == "WEBHOOK_SECRET" && err != nil && strings.Contains(err.Error(), tc.value) {
			t.Errorf("secret echoed: %v", err)
		}
	}
	c, err := FromEnv(env(map[string]string{"QUEUES": `[{"Id":"a","ProjectId":"pa","Capacity":1},
		{"Id":"b","ProjectId":"pb","Capacity":2,"Lanes":"gold=2,default=1","OpensAt":"2026-12-24T12:00:00Z","MaxSession":"30m"}]`}), true)
	if err != nil {
		t.Fatal(err)
	}
	a, b := c.Queues[0], c.Queues[1]
	if a.Lanes != nil || !a.OpensAt.IsZero() || a.MaxSession != 0 {
		t.Fatalf("queue a: %+v", a)
	}
	if len(b.Lanes) != 2 || b.Lanes[0] != (Lane{"gold", 2}) || b.OpensAt.Hour() != 12 || b.MaxSession != 30*time.Minute || b.SessionWarning != 5*time.Minute {
		t.Fatalf("queue b: %+v", b)
	}
	_, err = FromEnv(env(map[string]string{"QUEUES": `[{"Id":"a","ProjectId":"pa","Capacity":1,"MaxSession":"4m"}]`}), true)
	if err == nil || !strings.Contains(err.Error(), "queue 1") || !strings.Contains(err.Error(), "SessionWarning") || !strings.Contains(err.Error(), "MaxSession") {
		t.Fatalf("a QUEUES item breaking SESSION_WARNING < MAX_SESSION: %v", err)
	}
}
