package config

import (
	"strings"
	"testing"
)

// secretVars are the variables whose values must never appear in an error.
var secretVars = map[string]bool{"TICKET_SECRET": true, "TICKET_SECRET_PREVIOUS": true, "GRANT_SECRET": true,
	"ADMIN_TOKEN": true, "REDIS_PASSWORD": true, "REDIS_SENTINEL_PASSWORD": true, "WEBHOOK_SECRET": true,
	"TENCENTCLOUD_SECRETKEY": true, "TENCENTCLOUD_SESSIONTOKEN": true}

// FuzzFromEnv sets one variable (any of Vars, picked by which) to any value on top of a
// working local environment, and QUEUES to any text: FromEnv must not panic, must name the
// variable it refuses, and must never echo a secret's value.
func FuzzFromEnv(f *testing.F) {
	f.Add(uint8(0), "127.0.0.1:6379", "")
	f.Add(uint8(3), "x", `[{"Id":"a","ProjectId":"p","Capacity":1}]`)
	f.Add(uint8(9), "1m", `[{"Id":"a","ProjectId":"p","Capacity":1,"Lanes":"vip=3,default=1"}]`)
	f.Add(uint8(20), "-5", `[{"Id":"a"},{"Id":"a"}]`)
	f.Add(uint8(30), "2026-13-01T00:00:00Z", `{"Id":1}`)
	f.Fuzz(func(t *testing.T, which uint8, value, queues string) {
		name := Vars[int(which)%len(Vars)].Name
		env := map[string]string{name: value}
		if queues != "" && name != "QUEUES" {
			env["QUEUES"] = queues
		}
		c, err := FromEnv(func(k string) string { return env[k] }, true)
		if err == nil {
			if len(c.Queues) == 0 {
				t.Fatalf("no error and no queue for %s=%q QUEUES=%q", name, value, queues)
			}
			return
		}
		msg := err.Error()
		if !strings.Contains(msg, name) && !strings.Contains(msg, "QUEUES") {
			// A refusal is about the variable set, or about QUEUES, or a rule naming both ends.
			found := false
			for k := range env {
				found = found || strings.Contains(msg, k)
			}
			if !found {
				t.Fatalf("error names none of the variables set (%s, QUEUES): %v", name, err)
			}
		}
		if secretVars[name] && len(value) >= 12 && strings.Contains(msg, value) {
			t.Fatalf("%s's value in the error: %v", name, err)
		}
	})
}
