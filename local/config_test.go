package main

import (
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/carqueue/carqueue/shared/config"
)

// The harness's start-up path refuses a configuration the functions would refuse, before
// serving anything: the error names both variables of the broken rule and means exit status 2.
func TestRunRefusesBadConfiguration(t *testing.T) {
	for _, tc := range []struct {
		name  string
		flags []string
		env   map[string]string
		want  []string
	}{
		{"poll rule (issue 8)", nil, map[string]string{"QUEUE_IDLE_TIMEOUT": "3s", "POLL_MAX_INTERVAL": "5s"},
			[]string{"POLL_MAX_INTERVAL: got 5s, want at most QUEUE_IDLE_TIMEOUT/2.4 (1.25s)"}},
		{"claim lease", nil, map[string]string{"CLAIM_LEASE": "10s"},
			[]string{"CLAIM_LEASE: got 10s, want at least CAR_LOCK_TTL (30s)"}},
		{"bad value", nil, map[string]string{"CAPACITY": "lots"},
			[]string{`CAPACITY: got "lots"`}},
		{"reaper run past -reaper-timeout", []string{"-reaper-timeout", "20s"}, nil,
			[]string{"REAPER_RUN_TIME: got 45s", "flag -reaper-timeout", "its lease until REAPER_LEASE"}},
		{"admission past -function-timeout", []string{"-function-timeout", "15s"}, nil,
			[]string{"CAR_LOCK_TTL: got 30s", "flag -function-timeout"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var out bytes.Buffer
			ready := make(chan Addrs, 1)
			args := append([]string{"-addr", "127.0.0.1:0", "-emulator-addr", "127.0.0.1:0", "-redis", "embedded"}, tc.flags...)
			err := run(context.Background(), args, env(tc.env), &out, ready)
			if err == nil {
				t.Fatal("run accepted the configuration")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q lacks %q", err, w)
				}
			}
			if code := exitCode(err); code != 2 {
				t.Errorf("exit code %d, want 2", code)
			}
			select {
			case a := <-ready:
				t.Errorf("harness reported ready at %+v", a)
			default:
			}
			if strings.Contains(out.String(), "carqueue local harness") {
				t.Errorf("banner printed although the configuration was refused:\n%s", out.String())
			}
		})
	}
}

// The real command: exit status 2 and the message on stderr, naming both variables and no
// secret.
func TestCommandExitsOnBadConfiguration(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the command")
	}
	bin := harnessBinary(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, "-addr", "127.0.0.1:0", "-emulator-addr", "127.0.0.1:0", "-redis", "embedded")
	cmd.Env = append(os.Environ(), "REDIS_ADDR=", "CAR_ENDPOINT=", "QUEUE_IDLE_TIMEOUT=3s", "POLL_MAX_INTERVAL=5s",
		"TICKET_SECRET=short-secret", "TMPDIR="+t.TempDir())
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	var exit *exec.ExitError
	if !errors.As(err, &exit) || exit.ExitCode() != 2 {
		t.Fatalf("exit: %v, want status 2\nstdout:\n%s\nstderr:\n%s", err, stdout.String(), stderr.String())
	}
	msg := stderr.String()
	for _, w := range []string{"local: configuration:", "POLL_MAX_INTERVAL: got 5s", "QUEUE_IDLE_TIMEOUT/2.4 (1.25s)", "TICKET_SECRET: want at least 16 characters"} {
		if !strings.Contains(msg, w) {
			t.Errorf("stderr lacks %q:\n%s", w, msg)
		}
	}
	if strings.Contains(msg+stdout.String(), "short-secret") {
		t.Errorf("the secret's value was printed:\n%s%s", stdout.String(), msg)
	}
}

// Setting only the contract's variables works in the harness too: the rest is derived.
func TestCheckConfigContractVariablesAlone(t *testing.T) {
	s, _ := parseSettings(nil, &bytes.Buffer{})
	getenv := env(map[string]string{"QUEUE_IDLE_TIMEOUT": "3s", "HEARTBEAT_TIMEOUT": "3s", "READY_TIMEOUT": "4s"})
	vars, err := functionEnv(s, getenv, "127.0.0.1:7000", "127.0.0.1:8081")
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := checkConfig(s, vars, getenv)
	if err != nil {
		t.Fatalf("refused: %v", err)
	}
	if cfg.PollMaxInterval != 1250*time.Millisecond || !cfg.Local {
		t.Errorf("POLL_MAX_INTERVAL %s (local %v), want 1.25s derived in local mode", cfg.PollMaxInterval, cfg.Local)
	}
	// The derived values are in the banner, marked as such.
	var out bytes.Buffer
	printBanner(&out, s, Addrs{HTTP: "127.0.0.1:8080", Emulator: "127.0.0.1:8081"}, &redisBackend{Kind: "redis-server", Addr: "127.0.0.1:7000"}, vars, cfg)
	for _, w := range []string{"POLL_MAX_INTERVAL", "1.25s", "derived"} {
		if !strings.Contains(out.String(), w) {
			t.Errorf("banner lacks %q:\n%s", w, out.String())
		}
	}
}

// A variable the harness does not set itself still reaches the check (the functions read the
// whole environment).
func TestCheckConfigSeesTheWholeEnvironment(t *testing.T) {
	s, _ := parseSettings(nil, &bytes.Buffer{})
	getenv := env(map[string]string{"REAPER_LEASE": "2s"})
	vars, _ := functionEnv(s, getenv, "127.0.0.1:7000", "127.0.0.1:8081")
	_, err := checkConfig(s, vars, getenv)
	if err == nil || !strings.Contains(err.Error(), `REAPER_LEASE: got "2s"`) {
		t.Fatalf("err = %v, want REAPER_LEASE refused", err)
	}
}

func TestConflicts(t *testing.T) {
	parse := func(args ...string) settings {
		s, err := parseSettings(args, &bytes.Buffer{})
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	emu := Addrs{Emulator: "127.0.0.1:8081"}
	real := Addrs{}
	local := &redisBackend{Kind: "redis-server"}
	given := &redisBackend{Kind: "REDIS_ADDR"}
	base := config.Config{Capacity: 4, CARScheme: "http", QueueIdleTimeout: 30 * time.Second, ReadyTimeout: 30 * time.Second, HeartbeatTimeout: 20 * time.Second}
	withCfg := func(f func(*config.Config)) config.Config { c := base; f(&c); return c }
	realVars := []envVar{{Name: "CAR_ENDPOINT", Value: "car.tencentcloudapi.com", FromEnv: true}}
	for _, tc := range []struct {
		name string
		s    settings
		a    Addrs
		r    *redisBackend
		vars []envVar
		cfg  config.Config
		want string // "" for no warning
	}{
		{"defaults", parse(), emu, local, nil, base, ""},
		{"CAPACITY above -capacity", parse("-capacity", "2"), emu, local, nil, withCfg(func(c *config.Config) { c.Capacity = 5 }),
			"CAPACITY=5 is above -capacity 2"},
		{"CAPACITY below -capacity is fine", parse("-capacity", "8"), emu, local, nil, base, ""},
		{"https against the emulator", parse(), emu, local, nil, withCfg(func(c *config.Config) { c.CARScheme = "https" }),
			"CAR_SCHEME=https"},
		{"emulator flags with a real CAR", parse("-emulator-addr", "127.0.0.1:9", "-cleanup-delay", "1s"), real, local, realVars,
			withCfg(func(c *config.Config) { c.CARScheme = "https" }), "-emulator-addr, -cleanup-delay have no effect"},
		{"faults from the environment with a real CAR", func() settings { s := parse(); s.emulatorFaults = "*:InternalError=0.1"; return s }(),
			real, local, realVars, withCfg(func(c *config.Config) { c.CARScheme = "https" }), "$CAREMU_FAULTS has no effect"},
		{"a real CAR alone is fine", parse(), real, local, realVars, withCfg(func(c *config.Config) { c.CARScheme = "https"; c.Capacity = 50 }), ""},
		{"-redis with REDIS_ADDR", parse("-redis", "server"), emu, given, nil, base, "-redis=server has no effect"},
		{"REDIS_ADDR alone is fine", parse(), emu, given, nil, base, ""},
		{"slow tick", parse("-tick", "25s"), emu, local, nil, base, "-tick 25s is longer than HEARTBEAT_TIMEOUT (20s)"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := strings.Join(conflicts(tc.s, tc.a, tc.r, tc.vars, tc.cfg), "\n")
			if (tc.want == "") != (got == "") || !strings.Contains(got, tc.want) {
				t.Errorf("conflicts = %q, want %q", got, tc.want)
			}
		})
	}
}
