package main

import (
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/carqueue/carqueue/local/caremu"
	"github.com/carqueue/carqueue/shared/config"
)

// printBanner tells a person what runs where and with which settings (cfg is what the
// functions will parse from them). Secrets are printed only when they are the public local dev
// values (see displayValue).
func printBanner(w io.Writer, s settings, a Addrs, r *redisBackend, vars []envVar, cfg config.Config) {
	base := "http://" + a.HTTP
	var b strings.Builder
	line := func(label, format string, args ...any) {
		fmt.Fprintf(&b, "  %-10s %s\n", label, fmt.Sprintf(format, args...))
	}
	fmt.Fprintf(&b, "\ncarqueue local harness\n\n")
	line("demo page", "%s/   (one user per tab, or %s/?user=alice)", base, base)
	token := "the ADMIN_TOKEN you set"
	if a.AdminToken != "" {
		token = "admin token: " + a.AdminToken
	}
	line("dashboard", "%s/dashboard   (%s)", base, token)
	line("API", "%s/start /poll /heartbeat /reconnect /stop /stats /admin/*", base)
	if len(cfg.Queues) > 1 {
		for i, q := range cfg.Queues {
			label := ""
			if i == 0 {
				label = "queues"
			}
			capacity := plural(q.Capacity, "slot")
			if q.Capacity == 0 {
				capacity = "CAR's Total"
			}
			def := ""
			if i == 0 {
				def = " (default)"
			}
			line(label, "%s%s: project %s, %s", q.ID, def, q.ProjectID, capacity)
		}
	}
	if a.Emulator != "" && len(cfg.Queues) > 1 {
		line("CAR", "emulator at http://%s hosting %d projects, clean-up %s; state at %s/emulator/state?ProjectId=…", a.Emulator,
			len(emulatedProjects(s, cfg)), s.cleanupDelay, base)
		line("TCGSDK", "%s/tcgsdk-local.js   (stand-in for the real SDK, for any page: its data channels reach UDP on 127.0.0.1)", base)
	} else if a.Emulator != "" {
		line("CAR", "emulator at http://%s, %s, clean-up %s; state at %s/emulator/state", a.Emulator, plural(s.capacity, "slot"), s.cleanupDelay, base)
		line("TCGSDK", "%s/tcgsdk-local.js   (stand-in for the real SDK, for any page: its data channels reach UDP on 127.0.0.1)", base)
	} else {
		line("CAR", "real CAR at %s (CAR_ENDPOINT)", lookup(vars, "CAR_ENDPOINT"))
	}
	switch r.Kind {
	case "REDIS_ADDR":
		line("Redis", "%s (REDIS_ADDR)", r.Addr)
	case "redis-server":
		line("Redis", "redis-server at %s (temporary, no persistence, stopped on exit)", r.Addr)
	default:
		line("Redis", "embedded miniredis at %s", r.Addr)
	}
	switch s.functions {
	case modeServer:
		line("functions", "the server mode (functions/web's handler and in-process reaper), a reaper run every %s", s.tick)
	case modeBinaries:
		line("functions", "built binaries over the SCF Go runtime protocol; reaper timer every %s", s.tick)
	default:
		line("functions", "in-process (shared/app handlers); reaper timer every %s", s.tick)
	}
	if s.functions != modeServer {
		line("deadlines", "%s per HTTP invocation (-function-timeout), %s per reaper run (-reaper-timeout)", s.functionTimeout, s.reaperTimeout)
	}

	if r.Kind == "embedded miniredis" {
		fmt.Fprintf(&b, "\n  WARNING: Redis is the embedded miniredis (no REDIS_ADDR, and no redis-server on PATH or\n"+
			"  -redis=embedded): meant for demos of up to a few thousand users. For more, install\n"+
			"  redis-server or set REDIS_ADDR.\n")
	}
	if lookup(vars, "TENCENTCLOUD_SECRETID") == caremu.LocalSecretID {
		fmt.Fprintf(&b, "\n  TENCENTCLOUD_SECRETID/SECRETKEY are unset: the functions and the emulator use the local\n"+
			"  credentials %s / %s.\n", caremu.LocalSecretID, caremu.LocalSecretKey)
	}

	for _, c := range conflicts(s, a, r, vars, cfg) {
		b.WriteString("\n" + wrap("  WARNING: "+c, "  ", 96))
	}

	fmt.Fprintf(&b, "\n  settings of the functions (set any of these variables to override):\n")
	tw := tabwriter.NewWriter(&b, 0, 0, 2, ' ', 0)
	for _, v := range vars {
		src := "harness default"
		if v.FromEnv {
			src = "from environment"
		}
		fmt.Fprintf(tw, "    %s\t%s\t%s\n", v.Name, displayValue(v), src)
	}
	for _, name := range cfg.Derived {
		fmt.Fprintf(tw, "    %s\t%s\t%s\n", name, derivedValue(cfg, name), "derived (not set; see README)")
	}
	tw.Flush()
	fmt.Fprintf(&b, "\n  Ctrl-C stops everything.\n\n")
	_, _ = io.WriteString(w, b.String())
}

// plural writes n and the noun, with an s when n is not 1.
func plural(n int, noun string) string {
	if n == 1 {
		return fmt.Sprintf("%d %s", n, noun)
	}
	return fmt.Sprintf("%d %ss", n, noun)
}

// derivedValue is the value shared/config derived for one of Config.Derived.
func derivedValue(cfg config.Config, name string) string {
	switch name {
	case "HEARTBEAT_INTERVAL":
		return cfg.HeartbeatInterval.String()
	case "POLL_MIN_INTERVAL":
		return cfg.PollMinInterval.String()
	case "POLL_MAX_INTERVAL":
		return cfg.PollMaxInterval.String()
	}
	return "?"
}

// conflicts lists settings that the functions accept but that do not fit this harness: the
// emulator's size and protocol, flags that have no effect, a timer too slow for the timeouts
// it enforces. Each names the variable or flag and says what happens.
func conflicts(s settings, a Addrs, r *redisBackend, vars []envVar, cfg config.Config) []string {
	var out []string
	emulated := a.Emulator != ""
	if emulated && len(cfg.Queues) <= 1 && cfg.Capacity > s.capacity {
		out = append(out, fmt.Sprintf("CAPACITY=%d is above -capacity %d: the queue will admit up to %d users at once, "+
			"but the emulated project has %s; the admissions beyond them fail ApplyConcurrent and go back to the front "+
			"of the line. Pass -capacity %d, or unset CAPACITY (it then follows -capacity).",
			cfg.Capacity, s.capacity, cfg.Capacity, plural(s.capacity, "slot"), cfg.Capacity))
	}
	if emulated && cfg.CARScheme == "https" {
		out = append(out, "CAR_SCHEME=https, but the emulator speaks plain HTTP: every CAR call will fail. Unset CAR_SCHEME.")
	}
	if !emulated {
		var ignored []string
		for _, f := range []string{"emulator-addr", "cleanup-delay", "emulator-faults"} {
			if s.given[f] {
				ignored = append(ignored, "-"+f)
			}
		}
		if !s.given["emulator-faults"] && s.emulatorFaults != "" {
			ignored = append(ignored, "$"+faultsEnv)
		}
		if len(ignored) > 0 {
			verb := "have"
			if len(ignored) == 1 {
				verb = "has"
			}
			out = append(out, fmt.Sprintf("CAR_ENDPOINT=%s is set, so no emulator runs: %s %s no effect.",
				lookup(vars, "CAR_ENDPOINT"), strings.Join(ignored, ", "), verb))
		}
	}
	if r != nil && r.Kind == "REDIS_ADDR" && s.given["redis"] {
		out = append(out, fmt.Sprintf("-redis=%s has no effect: REDIS_ADDR is set, so that Redis is used.", s.redisMode))
	}
	// The reaper enforces these timeouts only when it runs.
	for _, t := range []struct {
		name string
		d    time.Duration
	}{{"QUEUE_IDLE_TIMEOUT", cfg.QueueIdleTimeout}, {"READY_TIMEOUT", cfg.ReadyTimeout}, {"HEARTBEAT_TIMEOUT", cfg.HeartbeatTimeout}} {
		if t.d > 0 && s.tick > t.d {
			out = append(out, fmt.Sprintf("-tick %s is longer than %s (%s): the reaper runs once per tick, so users are "+
				"dropped and slots reclaimed up to %s late.", s.tick, t.name, t.d, s.tick))
			break
		}
	}
	return out
}

// wrap breaks text into lines of at most width columns (a longer word stays whole), the
// lines after the first indented by indent.
func wrap(text, indent string, width int) string {
	var b strings.Builder
	col := 0
	for i, word := range strings.Fields(text) {
		switch {
		case i == 0:
			if strings.HasPrefix(text, " ") {
				word = text[:len(text)-len(strings.TrimLeft(text, " "))] + word
			}
		case col+1+len([]rune(word)) > width:
			b.WriteString("\n" + indent)
			col = len(indent)
		default:
			b.WriteString(" ")
			col++
		}
		b.WriteString(word)
		col += len([]rune(word))
	}
	return b.String() + "\n"
}
