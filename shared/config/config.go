// Package config reads every environment variable of the client contract (and the project's
// extras) once, validates it and names the variable in every error, so a misconfigured
// function says what is wrong instead of failing later in a CAR or Redis call.
//
// The variables, their defaults and meanings live in one table, Vars; README.md documents it.
package config

import (
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/carqueue/carqueue/shared/queue"
)

// Config is the validated configuration of one function instance. Cloud credentials
// (TENCENTCLOUD_*) are deliberately absent: SCF sets them per invocation, so the CAR client
// reads them per call.
type Config struct {
	Local bool // built for the local harness (dev defaults allowed)

	RedisAddr     string
	RedisPassword string
	RedisDB       int
	QueueID       string

	CARProjectID            string
	CARApplicationID        string
	CARApplicationVersionID string
	CAREndpoint             string
	CARScheme               string // "https" or "http"
	CARRegion               string
	CARRunMode              string
	CARCallTimeout          time.Duration // 0: the CAR client's per-action defaults
	CARMaxRetries           int
	CARRates                map[string]float64 // nil: the CAR client's defaults
	CARLockTTL              time.Duration

	Capacity          int
	QueueIdleTimeout  time.Duration
	HeartbeatTimeout  time.Duration
	ReadyTimeout      time.Duration
	HeartbeatInterval time.Duration // what clients are told; HeartbeatTimeout/4 unless set
	PollMinInterval   time.Duration
	PollMaxInterval   time.Duration
	ClaimLease        time.Duration
	GoneRetention     time.Duration
	RateWindow        time.Duration

	ReaperBatch    int
	ReaperLease    time.Duration
	ReaperMaxAdmit int
	ReaperParallel int

	TicketSecret         string
	TicketSecretPrevious string
	AdminToken           string
	CORSOrigin           string
	LogLevel             slog.Level
}

// FromEnv reads the configuration through getenv (os.Getenv in production, a map in tests).
// local relaxes the required variables to the documented dev defaults of Vars. All problems
// are reported at once, each naming its variable and the expected form.
func FromEnv(getenv func(string) string, local bool) (Config, error) {
	r := &reader{getenv: getenv, local: local}
	c := Config{Local: local}

	c.RedisAddr = r.hostPort("REDIS_ADDR")
	c.RedisPassword = r.str("REDIS_PASSWORD")
	c.RedisDB = r.intRange("REDIS_DB", 0, 1<<20)
	c.QueueID = r.id("QUEUE_ID", 64, "1–64 of [A-Za-z0-9_.:-]")

	c.CARProjectID = r.id("CAR_PROJECT_ID", 128, "1–128 of [A-Za-z0-9_.:-]")
	c.CARApplicationID = r.id("CAR_APPLICATION_ID", 128, "1–128 of [A-Za-z0-9_.:-]")
	c.CARApplicationVersionID = r.id("CAR_APPLICATION_VERSION_ID", 128, "1–128 of [A-Za-z0-9_.:-]")
	c.CAREndpoint = r.hostPort("CAR_ENDPOINT")
	c.CARScheme = r.oneOf("CAR_SCHEME", "https", "http")
	c.CARRegion = r.str("CAR_REGION")
	c.CARRunMode = r.str("CAR_RUN_MODE")
	c.CARCallTimeout = r.optDuration("CAR_CALL_TIMEOUT", 100*time.Millisecond)
	c.CARMaxRetries = r.intRange("CAR_MAX_RETRIES", 0, 10)
	c.CARRates = r.rates("CAR_RATE_LIMIT")
	c.CARLockTTL = r.duration("CAR_LOCK_TTL", time.Second)

	c.Capacity = r.intRange("CAPACITY", 1, 1_000_000)
	c.QueueIdleTimeout = r.duration("QUEUE_IDLE_TIMEOUT", time.Second)
	c.HeartbeatTimeout = r.duration("HEARTBEAT_TIMEOUT", time.Second)
	c.ReadyTimeout = r.duration("READY_TIMEOUT", time.Second)
	c.HeartbeatInterval = r.optDuration("HEARTBEAT_INTERVAL", 100*time.Millisecond)
	c.PollMinInterval = r.duration("POLL_MIN_INTERVAL", 100*time.Millisecond)
	c.PollMaxInterval = r.duration("POLL_MAX_INTERVAL", 100*time.Millisecond)
	c.ClaimLease = r.duration("CLAIM_LEASE", time.Second)
	c.GoneRetention = r.duration("GONE_RETENTION", time.Second)
	c.RateWindow = r.duration("RATE_WINDOW", time.Second)

	c.ReaperBatch = r.intRange("REAPER_BATCH", 1, queue.MaxBatch)
	c.ReaperLease = r.duration("REAPER_LEASE", time.Second)
	c.ReaperMaxAdmit = r.intRange("REAPER_MAX_ADMIT", 0, 1_000_000)
	c.ReaperParallel = r.intRange("REAPER_PARALLEL", 1, 256)

	c.TicketSecret = r.secret("TICKET_SECRET")
	c.TicketSecretPrevious = r.secret("TICKET_SECRET_PREVIOUS")
	c.AdminToken = r.str("ADMIN_TOKEN")
	c.CORSOrigin = r.str("CORS_ORIGIN")
	c.LogLevel = r.logLevel("LOG_LEVEL")

	r.crossCheck(&c)
	if len(r.errs) > 0 {
		return Config{}, fmt.Errorf("configuration: %w", errors.Join(r.errs...))
	}
	return c, nil
}

// crossCheck validates relations between variables that each parsed fine on its own.
func (r *reader) crossCheck(c *Config) {
	if c.HeartbeatTimeout > 0 && c.HeartbeatInterval == 0 {
		c.HeartbeatInterval = c.HeartbeatTimeout / 4
	}
	if c.HeartbeatTimeout > 0 && c.HeartbeatInterval > c.HeartbeatTimeout/2 {
		r.fail("HEARTBEAT_INTERVAL", "at most HEARTBEAT_TIMEOUT/2 (%s), so one lost heartbeat does not end a session", c.HeartbeatTimeout/2)
	}
	if c.PollMinInterval > 0 && c.PollMaxInterval > 0 && c.PollMinInterval > c.PollMaxInterval {
		r.fail("POLL_MIN_INTERVAL", "at most POLL_MAX_INTERVAL (%s)", c.PollMaxInterval)
	}
	// The longest jittered poll interval is 1.2 × max; two of them must fit in the idle timeout.
	if c.PollMaxInterval > 0 && c.QueueIdleTimeout > 0 && c.PollMaxInterval*24/10 > c.QueueIdleTimeout {
		r.fail("POLL_MAX_INTERVAL", "at most QUEUE_IDLE_TIMEOUT/2.4 (%s), so one lost poll does not drop a user", c.QueueIdleTimeout*10/24)
	}
	if c.TicketSecretPrevious != "" && c.TicketSecretPrevious == c.TicketSecret {
		r.fail("TICKET_SECRET_PREVIOUS", "different from TICKET_SECRET (or empty)")
	}
}
