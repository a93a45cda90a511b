package car_test

import (
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/carqueue/carqueue/local/caremu"
	"github.com/carqueue/carqueue/shared/car"
	"github.com/carqueue/carqueue/shared/testkit"
)

// env is a real SDK-backed client talking HTTP to an emulator.
type env struct {
	emu    *caremu.Emulator
	srv    *httptest.Server
	client *car.Client
	clock  *testkit.Clock
	hits   *counter // requests the emulator received, per action
	logs   *testkit.SyncBuffer

	credMu sync.Mutex
	creds  map[string]string // what the client's Getenv returns
}

// setCred changes a credential variable between calls, as SCF does per invocation.
func (e *env) setCred(k, v string) {
	e.credMu.Lock()
	defer e.credMu.Unlock()
	e.creds[k] = v
}

type counter struct {
	mu sync.Mutex
	n  map[string]int
}

func (c *counter) add(action string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.n[action]++
}

func (c *counter) get(action string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.n[action]
}

// credentials as the harness sets them; tests mutate the map to break them.
func localCreds() map[string]string {
	return map[string]string{
		car.EnvSecretID:     caremu.LocalSecretID,
		car.EnvSecretKey:    caremu.LocalSecretKey,
		car.EnvSessionToken: "token-123",
	}
}

type setup struct {
	emu   caremu.Options
	cfg   car.Config
	creds map[string]string
}

func newEnv(t testing.TB, s setup) *env {
	t.Helper()
	clock := testkit.NewClock()
	if s.emu.Now == nil {
		s.emu.Now = clock.Now
	}
	s.emu.Logger = slog.New(slog.DiscardHandler)
	emu, err := caremu.New(s.emu)
	if err != nil {
		t.Fatal(err)
	}
	hits := &counter{n: map[string]int{}}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.add(r.Header.Get("X-TC-Action"))
		emu.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)

	creds := s.creds
	if creds == nil {
		creds = localCreds()
	}
	e := &env{creds: creds, logs: &testkit.SyncBuffer{}}
	cfg := s.cfg
	cfg.Endpoint = strings.TrimPrefix(srv.URL, "http://")
	cfg.Scheme = "http"
	if cfg.ProjectID == "" {
		cfg.ProjectID = "project-1"
	}
	cfg.Getenv = func(k string) string {
		e.credMu.Lock()
		defer e.credMu.Unlock()
		return e.creds[k]
	}
	cfg.Logger = slog.New(slog.NewJSONHandler(e.logs, nil))
	client, err := car.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	car.SetBackoff(client, func(int) time.Duration { return time.Millisecond })
	e.emu, e.srv, e.client, e.clock, e.hits = emu, srv, client, clock, hits
	return e
}

func applyIn(user string) car.ApplyConcurrentInput {
	return car.ApplyConcurrentInput{UserID: user, UserIP: "10.0.0.1"}
}

func createIn(user string) car.CreateSessionInput {
	return car.CreateSessionInput{UserID: user, UserIP: "10.0.0.1", ClientSession: "client-session-secret-" + user}
}
