package main

import "testing"

// TestFaultsOutlastTheTimeouts: in both presets the Redis outage is longer than every timeout
// it must not charge to the users (else the run would prove nothing about the outage hold),
// and the faults follow one another, each meeting users in line.
func TestFaultsOutlastTheTimeouts(t *testing.T) {
	for name, o := range map[string]options{"long": longRun(), "short": shortRun()} {
		if o.redisDown <= max(idleTimeout, heartbeatTimeout, readyTimeout) {
			t.Errorf("%s: Redis is down %v, not longer than the timeouts", name, o.redisDown)
		}
		if o.redisDownAt <= o.redisRestartAt || o.killAt <= o.redisDownAt+o.redisDown || o.carDownAt <= o.killAt {
			t.Errorf("%s: faults overlap: %+v", name, o)
		}
	}
}
