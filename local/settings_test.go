package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"strings"
	"testing"

	"github.com/carqueue/carqueue/local/caremu"
	"github.com/carqueue/carqueue/shared/config"
)

func TestParseSettingsRejectsBadFlags(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string // the flag the error must name
	}{
		{[]string{"-capacity", "0"}, "-capacity"},
		{[]string{"-tick", "0s"}, "-tick"},
		{[]string{"-functions", "docker"}, "-functions"},
		{[]string{"-redis", "cluster"}, "-redis"},
		{[]string{"-cleanup-delay", "-1s"}, "-cleanup-delay"},
		{[]string{"-function-timeout", "0s"}, "-function-timeout"},
		{[]string{"-nope"}, "nope"},
		{[]string{"extra"}, "extra"},
	} {
		_, err := parseSettings(tc.args, &bytes.Buffer{})
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("parseSettings(%q) = %v, want an error naming %s", tc.args, err, tc.want)
		}
	}
}

func TestParseSettingsDefaults(t *testing.T) {
	s, err := parseSettings(nil, &bytes.Buffer{})
	if err != nil {
		t.Fatal(err)
	}
	if s.addr != "127.0.0.1:8080" || s.emulatorAddr != "127.0.0.1:8081" || s.capacity != 4 || s.functions != modeInProcess || s.tick.String() != "1s" {
		t.Errorf("defaults = %+v", s)
	}
}

// -h prints the flags and run returns without starting anything.
func TestRunHelp(t *testing.T) {
	var out bytes.Buffer
	if err := run(context.Background(), []string{"-h"}, func(string) string { return "" }, &out, nil); err != nil {
		t.Fatalf("run -h = %v", err)
	}
	for _, f := range []string{"-addr", "-tick", "-capacity", "-functions", "-emulator-addr", "-cleanup-delay"} {
		if !strings.Contains(out.String(), f) {
			t.Errorf("-h output lacks %s:\n%s", f, out.String())
		}
	}
	if _, err := parseSettings([]string{"-h"}, &out); !errors.Is(err, flag.ErrHelp) {
		t.Errorf("parseSettings(-h) = %v, want flag.ErrHelp", err)
	}
}

func env(m map[string]string) func(string) string { return func(k string) string { return m[k] } }

func TestFunctionEnvLocalDefaults(t *testing.T) {
	s, _ := parseSettings([]string{"-capacity", "3"}, &bytes.Buffer{})
	vars, err := functionEnv(s, env(nil), "127.0.0.1:7000", "127.0.0.1:8081")
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{
		"REDIS_ADDR": "127.0.0.1:7000", "CAR_ENDPOINT": "127.0.0.1:8081", "CAR_SCHEME": "http",
		"TENCENTCLOUD_SECRETID": caremu.LocalSecretID, "TENCENTCLOUD_SECRETKEY": caremu.LocalSecretKey,
		"CAPACITY": "3", "QUEUE_ID": "local", "CARQUEUE_LOCAL": "1", "ADMIN_TOKEN": config.LocalAdminToken,
		"TICKET_SECRET": config.LocalTicketSecret, "HEARTBEAT_TIMEOUT": "20s", "QUEUE_IDLE_TIMEOUT": "30s", "READY_TIMEOUT": "30s",
	}
	for k, v := range want {
		if got := lookup(vars, k); got != v {
			t.Errorf("%s = %q, want %q", k, got, v)
		}
	}
	// The defaults must pass the functions' own configuration checks.
	m := map[string]string{}
	for _, v := range vars {
		m[v.Name] = v.Value
	}
	if _, err := config.FromEnv(env(m), true); err != nil {
		t.Errorf("harness defaults rejected by shared/config: %v", err)
	}
}

func TestFunctionEnvEnvironmentWins(t *testing.T) {
	s, _ := parseSettings(nil, &bytes.Buffer{})
	vars, err := functionEnv(s, env(map[string]string{"CAPACITY": "9", "HEARTBEAT_TIMEOUT": "1m", "REDIS_ADDR": "10.0.0.1:6379", "ADMIN_TOKEN": "s3cret"}), "127.0.0.1:7000", "127.0.0.1:8081")
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range map[string]string{"CAPACITY": "9", "HEARTBEAT_TIMEOUT": "1m", "REDIS_ADDR": "10.0.0.1:6379", "ADMIN_TOKEN": "s3cret"} {
		if got := lookup(vars, k); got != v {
			t.Errorf("%s = %q, want the environment's %q", k, got, v)
		}
	}
	for _, v := range vars {
		if v.Name == "ADMIN_TOKEN" && (!v.FromEnv || displayValue(v) != "(set)") {
			t.Errorf("a real admin token must show as (set), got %q (FromEnv %v)", displayValue(v), v.FromEnv)
		}
	}
}

func TestFunctionEnvRealCARNeedsCredentials(t *testing.T) {
	s, _ := parseSettings(nil, &bytes.Buffer{})
	_, err := functionEnv(s, env(map[string]string{"CAR_ENDPOINT": "car.tencentcloudapi.com"}), "127.0.0.1:7000", "")
	if err == nil || !strings.Contains(err.Error(), "TENCENTCLOUD_SECRETID") {
		t.Fatalf("real CAR without credentials: err = %v, want one naming TENCENTCLOUD_SECRETID", err)
	}
	vars, err := functionEnv(s, env(map[string]string{"CAR_ENDPOINT": "car.tencentcloudapi.com", "TENCENTCLOUD_SECRETID": "AKIDreal", "TENCENTCLOUD_SECRETKEY": "realkey"}), "127.0.0.1:7000", "")
	if err != nil {
		t.Fatal(err)
	}
	if lookup(vars, "CAR_SCHEME") != "" || lookup(vars, "CAR_ENDPOINT") != "car.tencentcloudapi.com" {
		t.Errorf("real CAR env = %+v, want the endpoint as given and no http scheme", vars)
	}
	for _, v := range vars {
		if strings.Contains(displayValue(v), "realkey") {
			t.Errorf("%s shows the secret key", v.Name)
		}
	}
}
