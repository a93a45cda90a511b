// Package loadgen drives a running carqueue system over its HTTP contract only (API.md): many
// simulated users queue, play, heartbeat, reconnect, vanish and stop, while a sampler watches
// /stats and the emulator's /emulator/state. Run returns a Report that lists every broken
// promise of the contract it could observe (capacity, FIFO, nobody lost, nothing leaked), plus
// HTTP status counts and latency percentiles per route.
//
// It knows nothing of the implementation: it works against `go run ./local` (which adds
// /emulator/state) or any deployment (the emulator checks are then skipped).
package loadgen

import (
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"
)

// MinPollInterval is the fastest a simulated user polls, whatever Config.PollScale says: a
// load test should speed the clients up, not turn them into a busy loop.
const MinPollInterval = 50 * time.Millisecond

// Config says what to run against and what the crowd does. Zero values take the defaults in
// brackets.
type Config struct {
	BaseURL string // e.g. http://127.0.0.1:8080; required
	// MoreURLs are more instances of the same deployment: every request attempt goes to one
	// of BaseURL and these at random, so a retry after a dead instance reaches another.
	MoreURLs []string
	// EmulatorURL is where GET /emulator/state is when the emulator is not behind BaseURL
	// (its own server); "" for BaseURL.
	EmulatorURL string
	AdminToken  string // Bearer token of /stats; empty: the capacity and drain checks are skipped

	Users int // simulated users [50]
	// Fractions of the users, each in [0,1], summing to at most 1; the rest play and /stop.
	Vanish     float64 // after Ready, stop sending anything (half at once, half after some play): the reaper must reclaim
	Reconnect  float64 // once mid-play, drop for one heartbeat interval and /reconnect with a new ClientSession
	QuitQueued float64 // /stop while still Queued (if admitted at once they play instead)

	Play      time.Duration // mean play time; each user draws uniformly from [Play/2, 3·Play/2] [2s]
	PollScale float64       // NextPollMs is multiplied by this (never below MinPollInterval) [1]
	Stagger   time.Duration // pause between one user's first /start answer and the next user's /start [5ms]

	// HeartbeatTimeout is the server's HEARTBEAT_TIMEOUT, used only to judge whether a
	// /reconnect that fell back into the line was inside the window. 0: 4 × NextHeartbeatMs
	// (the server's default HEARTBEAT_INTERVAL is HEARTBEAT_TIMEOUT/4).
	HeartbeatTimeout time.Duration
	// ReadyTimeout is the server's READY_TIMEOUT, used only in the report: how far the release
	// of a user who vanished right after Ready ran past it. 0: unknown, not reported.
	ReadyTimeout time.Duration

	// GoneRetention is the server's GONE_RETENTION: after it a departed user's /poll answers
	// Expired without a Reason, which the final check then accepts [10m].
	GoneRetention time.Duration

	Timeout        time.Duration // the users' whole run, from the first /start to the last /stop [5m]
	DrainTimeout   time.Duration // after the users: how long to wait for the reaper and the emulator's clean-up [2m]
	SampleInterval time.Duration // /stats and /emulator/state sampling period [100ms]
	MaxRetryDelay  time.Duration // cap of one retry wait after 429/5xx/transport errors (Retry-After is honoured up to it) [1s]

	Seed       uint64                           // seeds roles, play times and jitter; 0: random
	UserPrefix string                           // UserIds are <prefix>-<n>; empty: "lg<random hex>"
	HTTPClient *http.Client                     // nil: one sized for Users connections
	Logf       func(format string, args ...any) // progress lines; nil: silent
}

// withDefaults fills the zero values and validates the rest.
func (c Config) withDefaults() (Config, error) {
	var errs []error
	c.BaseURL = strings.TrimRight(strings.TrimSpace(c.BaseURL), "/")
	if !strings.HasPrefix(c.BaseURL, "http://") && !strings.HasPrefix(c.BaseURL, "https://") {
		errs = append(errs, fmt.Errorf("BaseURL %q: want http://host:port", c.BaseURL))
	}
	def := func(d *time.Duration, v time.Duration) {
		if *d == 0 {
			*d = v
		}
	}
	if c.Users == 0 {
		c.Users = 50
	}
	def(&c.Play, 2*time.Second)
	def(&c.Stagger, 5*time.Millisecond)
	def(&c.Timeout, 5*time.Minute)
	def(&c.GoneRetention, 10*time.Minute)
	def(&c.DrainTimeout, 2*time.Minute)
	def(&c.SampleInterval, 100*time.Millisecond)
	def(&c.MaxRetryDelay, time.Second)
	if c.PollScale == 0 {
		c.PollScale = 1
	}
	if c.Users < 1 {
		errs = append(errs, fmt.Errorf("Users %d: want at least 1", c.Users))
	}
	for name, f := range map[string]float64{"Vanish": c.Vanish, "Reconnect": c.Reconnect, "QuitQueued": c.QuitQueued} {
		if f < 0 || f > 1 {
			errs = append(errs, fmt.Errorf("%s %g: want a fraction in [0,1]", name, f))
		}
	}
	if s := c.Vanish + c.Reconnect + c.QuitQueued; s > 1 {
		errs = append(errs, fmt.Errorf("Vanish+Reconnect+QuitQueued = %g: want at most 1", s))
	}
	if c.PollScale < 0 {
		errs = append(errs, fmt.Errorf("PollScale %g: want > 0", c.PollScale))
	}
	for name, d := range map[string]time.Duration{"Play": c.Play, "Stagger": c.Stagger, "Timeout": c.Timeout,
		"DrainTimeout": c.DrainTimeout, "SampleInterval": c.SampleInterval, "MaxRetryDelay": c.MaxRetryDelay, "HeartbeatTimeout": c.HeartbeatTimeout, "ReadyTimeout": c.ReadyTimeout, "GoneRetention": c.GoneRetention} {
		if d < 0 {
			errs = append(errs, fmt.Errorf("%s %s: want a non-negative duration", name, d))
		}
	}
	if c.Logf == nil {
		c.Logf = func(string, ...any) {}
	}
	if c.HTTPClient == nil {
		t := http.DefaultTransport.(*http.Transport).Clone()
		t.MaxIdleConns = c.Users + 16
		t.MaxIdleConnsPerHost = c.Users + 16
		c.HTTPClient = &http.Client{Transport: t, Timeout: 30 * time.Second}
	}
	return c, errors.Join(errs...)
}
