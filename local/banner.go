package main

import (
	"fmt"
	"io"
	"strings"
	"text/tabwriter"

	"github.com/carqueue/carqueue/local/caremu"
)

// printBanner tells a person what runs where and with which settings. Secrets are printed only
// when they are the public local dev values (see displayValue).
func printBanner(w io.Writer, s settings, a Addrs, r *redisBackend, vars []envVar) {
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
	line("API", "%s/start /poll /heartbeat /reconnect /stop /stats", base)
	if a.Emulator != "" {
		line("CAR", "emulator at http://%s, %s, clean-up %s; state at %s/emulator/state", a.Emulator, plural(s.capacity, "slot"), s.cleanupDelay, base)
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
	mode := "in-process (shared/app handlers)"
	if s.functions == modeBinaries {
		mode = "built binaries over the SCF Go runtime protocol"
	}
	line("functions", "%s; reaper timer every %s", mode, s.tick)

	if r.Kind == "embedded miniredis" {
		fmt.Fprintf(&b, "\n  WARNING: Redis is the embedded miniredis (no REDIS_ADDR, and no redis-server on PATH or\n"+
			"  -redis=embedded): meant for demos of up to a few thousand users. For more, install\n"+
			"  redis-server or set REDIS_ADDR.\n")
	}
	if lookup(vars, "TENCENTCLOUD_SECRETID") == caremu.LocalSecretID {
		fmt.Fprintf(&b, "\n  TENCENTCLOUD_SECRETID/SECRETKEY are unset: the functions and the emulator use the local\n"+
			"  credentials %s / %s.\n", caremu.LocalSecretID, caremu.LocalSecretKey)
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
