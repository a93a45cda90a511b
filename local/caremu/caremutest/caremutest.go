// Package caremutest wires the CAR emulator and the real CAR client together for tests: the
// emulator behind httptest, and a car.Client pointed at it over HTTP, signed with the local
// credential pair, so every test exercises the real signing path.
package caremutest

import (
	"log/slog"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/carqueue/carqueue/local/caremu"
	"github.com/carqueue/carqueue/shared/car"
)

// Server starts an emulator with opts behind an httptest server closed when the test ends.
// A nil opts.Logger discards the emulator's logs.
func Server(t testing.TB, opts caremu.Options) (*caremu.Emulator, *httptest.Server) {
	t.Helper()
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	emu, err := caremu.New(opts)
	if err != nil {
		t.Fatalf("caremu.New: %v", err)
	}
	srv := httptest.NewServer(emu)
	t.Cleanup(srv.Close)
	return emu, srv
}

// LocalCredentials answers the credential variables with the emulator's local pair, as the
// local harness sets them.
func LocalCredentials(name string) string {
	switch name {
	case car.EnvSecretID:
		return caremu.LocalSecretID
	case car.EnvSecretKey:
		return caremu.LocalSecretKey
	}
	return ""
}

// Client is the real CAR client pointed at srv. Unset fields of cfg get test defaults: the
// local credentials, project "cap-test", no retries, no client-side pacing (the emulator's
// own limits, when set, still apply) and discarded logs.
func Client(t testing.TB, srv *httptest.Server, cfg car.Config) *car.Client {
	t.Helper()
	cfg.Endpoint = strings.TrimPrefix(srv.URL, "http://")
	cfg.Scheme = "http"
	if cfg.Getenv == nil {
		cfg.Getenv = LocalCredentials
	}
	if cfg.ProjectID == "" {
		cfg.ProjectID = "cap-test"
	}
	if cfg.MaxRetries == 0 {
		cfg.MaxRetries = -1
	}
	if cfg.Rates == nil {
		cfg.Rates = map[string]float64{}
		for _, a := range []string{car.ActionApplyConcurrent, car.ActionCreateSession, car.ActionDestroySession, car.ActionDescribeConcurrentCount} {
			cfg.Rates[a] = 1e6
		}
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	c, err := car.New(cfg)
	if err != nil {
		t.Fatalf("car.New: %v", err)
	}
	return c
}
