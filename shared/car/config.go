package car

import (
	"fmt"
	"log/slog"
	"os"
	"strings"
	"time"
)

// CAR API identity and the action names this client calls.
const (
	Service    = "car"
	APIVersion = "2022-01-10"
	// DefaultEndpoint is CAR's public endpoint (CAR needs no region).
	DefaultEndpoint = "car.tencentcloudapi.com"

	ActionApplyConcurrent         = "ApplyConcurrent"
	ActionCreateSession           = "CreateSession"
	ActionDestroySession          = "DestroySession"
	ActionDescribeConcurrentCount = "DescribeConcurrentCount"
)

// Credential environment variables, read on every call: SCF sets fresh
// temporary credentials per invocation, so caching them would go stale.
const (
	EnvSecretID     = "TENCENTCLOUD_SECRETID"
	EnvSecretKey    = "TENCENTCLOUD_SECRETKEY"
	EnvSessionToken = "TENCENTCLOUD_SESSIONTOKEN"
)

// Config configures a Client. The zero value talks to the real CAR endpoint
// over HTTPS with CAR's documented rate limits.
type Config struct {
	Endpoint string // CAR_ENDPOINT host[:port]; "" → car.tencentcloudapi.com
	Scheme   string // CAR_SCHEME "https" (default) or "http"
	Region   string // optional; CAR does not need one

	// Defaults for ApplyConcurrent / DescribeConcurrentCount when the input leaves them empty.
	ProjectID, ApplicationID, ApplicationVersionID string

	// Rates is the per-action client-side call budget in calls/s. Missing
	// actions get CAR's documented limits: 100/s each, DescribeConcurrentCount 20/s.
	Rates map[string]float64
	// CallTimeout bounds each attempt; 0 → per-action default (ApplyConcurrent
	// 21s since CAR's own timeout is 20s, CreateSession 6s, others 5s). It is
	// always capped under the ctx deadline.
	CallTimeout time.Duration
	// MaxRetries is how many times a KindTransient / KindRateLimited failure is
	// retried with jittered exponential backoff. 0 → 2; negative → no retries.
	MaxRetries int
	// Getenv is the credential source, read on every call; nil → os.Getenv.
	Getenv func(string) string
	// Logger receives one line per call; nil → slog.Default().
	Logger *slog.Logger
}

// defaultRates are CAR's documented per-action API limits.
var defaultRates = map[string]float64{
	ActionApplyConcurrent:         100,
	ActionCreateSession:           100,
	ActionDestroySession:          100,
	ActionDescribeConcurrentCount: 20,
}

const defaultMaxRetries = 2

func (c Config) withDefaults() (Config, error) {
	if c.Endpoint == "" {
		c.Endpoint = DefaultEndpoint
	}
	if strings.Contains(c.Endpoint, "://") {
		return c, fmt.Errorf("car endpoint %q: want host[:port] without a scheme (set Scheme)", c.Endpoint)
	}
	switch strings.ToLower(c.Scheme) {
	case "", "https":
		c.Scheme = "HTTPS"
	case "http":
		c.Scheme = "HTTP"
	default:
		return c, fmt.Errorf("car scheme %q: want http or https", c.Scheme)
	}
	rates := make(map[string]float64, len(defaultRates))
	for a, r := range defaultRates {
		rates[a] = r
	}
	for a, r := range c.Rates {
		if r <= 0 {
			return c, fmt.Errorf("car rate for %s is %v: want > 0", a, r)
		}
		rates[a] = r
	}
	c.Rates = rates
	if c.CallTimeout < 0 {
		return c, fmt.Errorf("car call timeout %v: want >= 0", c.CallTimeout)
	}
	switch {
	case c.MaxRetries == 0:
		c.MaxRetries = defaultMaxRetries
	case c.MaxRetries < 0:
		c.MaxRetries = 0
	}
	if c.Getenv == nil {
		c.Getenv = os.Getenv
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	return c, nil
}

// attemptTimeout is the per-attempt budget for an action before the ctx cap.
func (c Config) attemptTimeout(action string) time.Duration {
	if c.CallTimeout > 0 {
		return c.CallTimeout
	}
	switch action {
	case ActionApplyConcurrent:
		return 21 * time.Second
	case ActionCreateSession:
		return 6 * time.Second
	default:
		return 5 * time.Second
	}
}
