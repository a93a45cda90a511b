package main

import (
	"context"
	"strings"
	"testing"
)

// TestBadSettings: each server-mode setting is checked before anything starts, and the error
// names the variable.
func TestBadSettings(t *testing.T) {
	for name, val := range map[string]string{"PORT": "70000", "REAPER_TICK": "-1s", "REDIS_POOL_SIZE": "0"} {
		env := map[string]string{name: val}
		err := run(context.Background(), func(k string) string { return env[k] })
		if err == nil || !strings.Contains(err.Error(), name) {
			t.Errorf("%s=%s: got %v, want an error naming %s", name, val, err, name)
		}
	}
}
