package main

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/carqueue/carqueue/local/caremu"
	"github.com/carqueue/carqueue/shared/config"
)

// Function runtime modes of -functions.
const (
	modeInProcess = "inprocess"
	modeBinaries  = "binaries"
	modeServer    = "server"
)

// settings are the harness's own flags; what the functions read comes from environment
// variables (see functionEnv) so that it is exactly what SCF would give them.
// faultsEnv is the environment variable read for -emulator-faults when the flag is not given.
const faultsEnv = "CAREMU_FAULTS"

type settings struct {
	addr            string
	emulatorAddr    string
	capacity        int
	tick            time.Duration
	functions       string
	redisMode       string
	cleanupDelay    time.Duration
	emulatorFaults  string
	functionTimeout time.Duration // deadline of an HTTP function invocation
	reaperTimeout   time.Duration // deadline of a reaper invocation
	moduleDir       string
	readyFile       string
	given           map[string]bool // flags set on the command line, by name without the dash
}

// parseSettings reads the flags; errors name the flag.
// -h prints the flags to help and returns flag.ErrHelp.
func parseSettings(args []string, help io.Writer) (settings, error) {
	var s settings
	fs := flag.NewFlagSet("local", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.Usage = func() {}
	fs.StringVar(&s.addr, "addr", "127.0.0.1:8080", "`host:port` of the routes, the demo page (/) and the dashboard (/dashboard)")
	fs.StringVar(&s.emulatorAddr, "emulator-addr", "127.0.0.1:8081", "`host:port` of the CAR emulator (unless CAR_ENDPOINT is set)")
	fs.IntVar(&s.capacity, "capacity", 4, "slots of the emulated CAR project; also CAPACITY unless that is set")
	fs.DurationVar(&s.tick, "tick", time.Second, "period of the reaper's timer trigger")
	fs.StringVar(&s.functions, "functions", modeInProcess, "`mode`: inprocess (call the handlers directly), binaries (build functions/* and drive them over the SCF Go runtime protocol) or server (the server mode of functions/web: its handler and in-process reaper timer)")
	fs.StringVar(&s.redisMode, "redis", "auto", "`which` Redis without REDIS_ADDR: auto (redis-server on PATH, else embedded), server or embedded")
	fs.DurationVar(&s.cleanupDelay, "cleanup-delay", 2*time.Second, "how long an emulated slot is cleaned after DestroySession before it is idle again (0: the emulator's default)")
	fs.StringVar(&s.emulatorFaults, "emulator-faults", "", "fault `spec` passed to the CAR emulator, e.g. ApplyConcurrent:InternalError=0.1 (see local/caremu; default $CAREMU_FAULTS)")
	fs.DurationVar(&s.functionTimeout, "function-timeout", 30*time.Second, "deadline of one HTTP function invocation, as serverless.yml's timeout of the HTTP functions")
	fs.DurationVar(&s.reaperTimeout, "reaper-timeout", 60*time.Second, "deadline of one reaper invocation, as serverless.yml's timeout of reaper-cron")
	fs.StringVar(&s.moduleDir, "module-dir", "", "module root to build the binaries from (default: found from the working directory)")
	fs.StringVar(&s.readyFile, "ready-file", "", "write the listening addresses as JSON to this `file` once serving (for scripts and tests)")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			fmt.Fprintln(help, "usage: go run ./local [flags]\n\nThe functions' settings come from environment variables (see README); flags:")
			fs.SetOutput(help)
			fs.PrintDefaults()
			return s, err
		}
		return s, fmt.Errorf("flags: %w (run with -h for the list)", err)
	}
	if fs.NArg() > 0 {
		return s, fmt.Errorf("flags: unexpected argument %q", fs.Arg(0))
	}
	// Which flags were given, so the banner can say when one has no effect.
	s.given = map[string]bool{}
	fs.Visit(func(f *flag.Flag) { s.given[f.Name] = true })
	switch {
	case s.capacity < 1:
		return s, fmt.Errorf("flag -capacity: want at least 1, got %d", s.capacity)
	case s.tick <= 0:
		return s, fmt.Errorf("flag -tick: want a positive duration, got %s", s.tick)
	case s.functions != modeInProcess && s.functions != modeBinaries && s.functions != modeServer:
		return s, fmt.Errorf("flag -functions: want %s, %s or %s, got %q", modeInProcess, modeBinaries, modeServer, s.functions)
	case s.redisMode != "auto" && s.redisMode != "server" && s.redisMode != "embedded":
		return s, fmt.Errorf("flag -redis: want auto, server or embedded, got %q", s.redisMode)
	case s.cleanupDelay < 0:
		return s, fmt.Errorf("flag -cleanup-delay: want a duration >= 0, got %s", s.cleanupDelay)
	case s.functionTimeout <= 0:
		return s, fmt.Errorf("flag -function-timeout: want a positive duration, got %s", s.functionTimeout)
	case s.reaperTimeout <= 0:
		return s, fmt.Errorf("flag -reaper-timeout: want a positive duration, got %s", s.reaperTimeout)
	}
	return s, nil
}

// envVar is one variable the harness hands the functions, and where its value came from.
type envVar struct {
	Name, Value string
	FromEnv     bool // set by the caller's environment, not a harness default
}

// harnessDefaults are the local values of the functions' variables the harness sets unless the
// environment does. Short timeouts make the demo's expiry visible in seconds, not minutes.
// Nothing that shared/config derives (POLL_MAX_INTERVAL, POLL_MIN_INTERVAL, HEARTBEAT_INTERVAL)
// is set here: a harness value would count as set by the user, so e.g. QUEUE_IDLE_TIMEOUT=3s
// would break the poll rule instead of deriving a shorter POLL_MAX_INTERVAL.
//
// With QUEUES (or QUEUES_FILE) the queues name their own ids and capacities, so QUEUE_ID and
// CAPACITY are left alone (the functions refuse both at once).
func harnessDefaults(s settings, multi bool) []envVar {
	vs := []envVar{{Name: "CARQUEUE_LOCAL", Value: "1"}}
	if !multi {
		vs = append(vs, envVar{Name: "QUEUE_ID", Value: "local"}, envVar{Name: "CAPACITY", Value: fmt.Sprint(s.capacity)})
	}
	return append(vs, []envVar{
		{Name: "QUEUE_IDLE_TIMEOUT", Value: "30s"},
		{Name: "HEARTBEAT_TIMEOUT", Value: "20s"},
		{Name: "READY_TIMEOUT", Value: "30s"},
		{Name: "TICKET_SECRET", Value: config.LocalTicketSecret},
		{Name: "ADMIN_TOKEN", Value: config.LocalAdminToken},
		// The reaper logs every run at info: once a second here, which would bury the banner.
		{Name: "LOG_LEVEL", Value: "warn"},
	}...)
}

// functionEnv resolves every variable the harness sets for the functions: the caller's
// environment wins, then what the harness chose (Redis and emulator addresses), then the local
// defaults. It fails when CAR is real and its credentials are missing.
func functionEnv(s settings, getenv func(string) string, redisAddr, emulatorAddr string) ([]envVar, error) {
	var out []envVar
	add := func(name, def string) {
		if v := getenv(name); v != "" {
			out = append(out, envVar{Name: name, Value: v, FromEnv: true})
			return
		}
		if def != "" {
			out = append(out, envVar{Name: name, Value: def})
		}
	}
	add("REDIS_ADDR", redisAddr)
	if emulatorAddr != "" {
		out = append(out, envVar{Name: "CAR_ENDPOINT", Value: emulatorAddr})
		add("CAR_SCHEME", "http")
		add("TENCENTCLOUD_SECRETID", caremu.LocalSecretID)
		add("TENCENTCLOUD_SECRETKEY", caremu.LocalSecretKey)
	} else {
		add("CAR_ENDPOINT", "")
		add("CAR_SCHEME", "")
		if getenv("TENCENTCLOUD_SECRETID") == "" || getenv("TENCENTCLOUD_SECRETKEY") == "" {
			return nil, usageError{fmt.Errorf("CAR_ENDPOINT=%s points at a real CAR: set TENCENTCLOUD_SECRETID and TENCENTCLOUD_SECRETKEY (unset CAR_ENDPOINT to use the local emulator)", getenv("CAR_ENDPOINT"))}
		}
		add("TENCENTCLOUD_SECRETID", "")
		add("TENCENTCLOUD_SECRETKEY", "")
		add("TENCENTCLOUD_SESSIONTOKEN", "")
	}
	for _, d := range harnessDefaults(s, getenv("QUEUES") != "" || getenv("QUEUES_FILE") != "") {
		add(d.Name, d.Value)
	}
	return out, nil
}

// functionGetenv is what the functions see: the variables the harness sets, over its own
// environment (in-process, the harness sets them in the process; binaries get environ(vars)).
func functionGetenv(vars []envVar, getenv func(string) string) func(string) string {
	return func(name string) string {
		for _, v := range vars {
			if v.Name == name {
				return v.Value
			}
		}
		return getenv(name)
	}
}

// usageError is a bad flag or a configuration the functions would refuse: main exits with
// status 2 for it, as for any usage error, and prints it as it is.
type usageError struct{ err error }

func (e usageError) Error() string { return e.err.Error() }
func (e usageError) Unwrap() error { return e.err }

// checkConfig runs the functions' own configuration check on exactly what they will get, with
// the rules that need the function timeouts checked against the flags, so that a setting the
// functions would refuse stops the harness at start-up (naming the variables) instead of
// every route answering 503.
func checkConfig(s settings, vars []envVar, getenv func(string) string) (config.Config, error) {
	fenv := functionGetenv(vars, getenv)
	cfg, err := config.FromEnv(fenv, fenv("CARQUEUE_LOCAL") == "1")
	if err != nil {
		return cfg, usageError{err}
	}
	err = config.CheckTimeouts(cfg, config.FunctionTimeouts{
		HTTP: s.functionTimeout, HTTPFrom: "flag -function-timeout",
		Reaper: s.reaperTimeout, ReaperFrom: "flag -reaper-timeout",
	})
	if err != nil {
		return cfg, usageError{err}
	}
	return cfg, nil
}

// lookup returns the value of name in vars, or "".
func lookup(vars []envVar, name string) string {
	for _, v := range vars {
		if v.Name == name {
			return v.Value
		}
	}
	return ""
}

// displayValue is what the banner may print of a variable: secrets only when they are the
// public local dev values.
func displayValue(v envVar) string {
	switch v.Name {
	case "TENCENTCLOUD_SECRETKEY":
		if v.Value == caremu.LocalSecretKey {
			return v.Value + " (local emulator key)"
		}
		return "(set)"
	case "TENCENTCLOUD_SECRETID":
		if v.Value == caremu.LocalSecretID {
			return v.Value + " (local emulator id)"
		}
		return v.Value[:min(len(v.Value), 6)] + "…"
	case "TICKET_SECRET":
		if v.Value == config.LocalTicketSecret {
			return "(public local dev secret)"
		}
		return "(set)"
	case "ADMIN_TOKEN":
		if v.Value == config.LocalAdminToken {
			return v.Value + " (local dev token)"
		}
		return "(set)"
	}
	if strings.Contains(v.Name, "PASSWORD") || strings.Contains(v.Name, "SECRET") || strings.Contains(v.Name, "TOKEN") {
		return "(set)"
	}
	return v.Value
}

// environ renders vars as NAME=value for a child process, after the harness's own environment.
func environ(vars []envVar) []string {
	env := os.Environ()
	for _, v := range vars {
		env = append(env, v.Name+"="+v.Value)
	}
	return env
}

// writeReadyFile writes the addresses as JSON when -ready-file asks for it, atomically so a
// watcher never reads half a file.
func (s settings) writeReadyFile(a Addrs) error {
	if s.readyFile == "" {
		return nil
	}
	b, err := json.Marshal(a)
	if err != nil {
		return fmt.Errorf("encode ready file: %w", err)
	}
	tmp := s.readyFile + ".tmp"
	if err := os.WriteFile(tmp, b, 0o600); err != nil {
		return fmt.Errorf("write ready file: %w", err)
	}
	if err := os.Rename(tmp, s.readyFile); err != nil {
		return fmt.Errorf("write ready file: %w", err)
	}
	return nil
}
