// Command local runs the whole carqueue system on one machine: the HTTP routes of the client
// contract, the reaper's timer, Redis (given, started or embedded), the CAR emulator, a demo
// page at / and an operator dashboard at /dashboard.
//
// Every route goes through the very handler an SCF function wires (shared/app), fed the event a
// function URL would deliver, so what works here works on SCF. With -functions=binaries the
// seven function binaries are built and driven over the SCF Go runtime protocol instead.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Getenv, os.Stdout, nil); err != nil {
		// One problem per line (configuration errors list them all), indented under the first.
		fmt.Fprintln(os.Stderr, "local:", strings.ReplaceAll(err.Error(), "\n", "\n  "))
		os.Exit(exitCode(err))
	}
}

// exitCode is 2 for bad flags and a configuration the functions would refuse (a usage error:
// fix the command or the environment), 1 for anything else.
func exitCode(err error) int {
	var u usageError
	if errors.As(err, &u) {
		return 2
	}
	return 1
}

// Addrs says where a running harness listens; run sends it on its ready channel once every
// part serves, so tests and tools need not parse the banner.
type Addrs struct {
	HTTP     string // host:port of the routes, the demo page and the dashboard
	Emulator string // host:port of the CAR emulator; empty when CAR_ENDPOINT points elsewhere
	Redis    string // host:port of the Redis in use
	// AdminToken is the /stats token in effect. It is only filled when it is the local dev
	// default, so a real token never leaves the process this way.
	AdminToken string
}

// run starts everything, reports readiness on ready (when non-nil), and serves until ctx ends;
// then it shuts everything down in reverse order. getenv is the environment of the harness;
// in-process functions read their settings from the process environment, which run sets.
func run(ctx context.Context, args []string, getenv func(string) string, stdout io.Writer, ready chan<- Addrs) error {
	set, err := parseSettings(args, stdout)
	if errors.Is(err, flag.ErrHelp) {
		return nil
	}
	if err != nil {
		return usageError{err}
	}
	if set.emulatorFaults == "" {
		// The same fault spec can come from the environment, so a test or a script can turn
		// faults on without changing the command line.
		set.emulatorFaults = getenv(faultsEnv)
	}
	h, err := startHarness(ctx, set, getenv, stdout)
	if err != nil {
		return err
	}
	defer h.close()
	if err := set.writeReadyFile(h.addrs); err != nil {
		return err
	}
	if ready != nil {
		ready <- h.addrs
	}
	return h.wait(ctx)
}
