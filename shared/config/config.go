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
)

// MaxBatch bounds REAPER_BATCH and REAPER_MAX_BATCHES. It is shared/queue's MaxBatch (one Reap
// batch per kind, one Releasing listing); config does not import the queue so that the
// deployment checks and the harness can read the configuration without Redis code.
const MaxBatch = 10000

// Config is the validated configuration of one function instance. Cloud credentials
// (TENCENTCLOUD_*) are deliberately absent: SCF sets them per invocation, so the CAR client
// reads them per call.
type Config struct {
	Local bool // built for the local harness (dev defaults allowed)

	// RedisAddr is REDIS_ADDR as written (the local harness passes it on); RedisAddrs is its
	// list, each host:port (6379, or 26379 for sentinels, where no port was given). Several
	// addresses without RedisMasterName mean a Redis Cluster; with it, the sentinels.
	RedisAddr             string
	RedisAddrs            []string
	RedisMasterName       string // Sentinel's name of the primary; "" without Sentinel
	RedisUsername         string // ACL user; "" for the default user
	RedisPassword         string
	RedisSentinelPassword string // the sentinels' own password; "" when they have none
	RedisDB               int
	RedisTLS              bool
	QueueID               string

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
	// CARBudget is derived, not read: CAR_LOCK_TTL×5/6, the time the CAR calls of one
	// admission (or release) may take under the per-user lock, so that the lock never lapses
	// while a call is in flight and a sixth of it is left to record the result.
	CARBudget time.Duration

	// Queues are the deployment's queues, at least one: from QUEUES, else the single-queue
	// variables. The fields below that a queue may set (QueueID, the CAR ids, Capacity,
	// CARRunMode, the timeouts and intervals) are the first queue's, the default one.
	Queues []Queue

	Capacity          int           // 0: CAR's own Total (see Queue.Capacity)
	CARTotalRefresh   time.Duration // how often CAR's Total of a Capacity-0 queue is re-read
	QueueIdleTimeout  time.Duration
	HeartbeatTimeout  time.Duration
	ReadyTimeout      time.Duration
	HeartbeatInterval time.Duration // what clients are told; min(HeartbeatTimeout/4, ReadyTimeout/2) unless set
	PollMinInterval   time.Duration // min(1s, PollMaxInterval) unless set
	PollMaxInterval   time.Duration // min(30s, QueueIdleTimeout/2.4) unless set
	ClaimLease        time.Duration
	GoneRetention     time.Duration
	RateWindow        time.Duration

	// The first queue's lanes, opening and session limit (see Queue).
	Lanes          []Lane
	OpensAt        time.Time
	MaxSession     time.Duration
	SessionWarning time.Duration

	RecordsMax    int
	WebhookURL    string
	WebhookSecret string

	ReaperBatch      int
	ReaperMaxBatches int

	// Server mode (functions/web) only.
	Port          int
	ReaperTick    time.Duration
	GCPercent     int // GOGC as debug.SetGCPercent takes it: -1 for off
	RedisPoolSize int

	StopReleaseWait                  time.Duration
	ReleaseRetryMin, ReleaseRetryMax time.Duration
	ReaperLease                      time.Duration
	ReaperOutageGrace                time.Duration
	ReaperRunTime                    time.Duration
	ReaperPause                      time.Duration
	ReaperMaxAdmit                   int
	ReaperParallel                   int
	ReaperQueues                     int // queues one reaper invocation works at once

	TicketSecret         string
	TicketSecretPrevious string
	GrantSecret          string
	RequireGrant         bool
	AdminToken           string
	CORSOrigin           string
	LogLevel             slog.Level

	// Derived names the variables that were not set and so were computed from others
	// (HEARTBEAT_INTERVAL, POLL_MIN_INTERVAL, POLL_MAX_INTERVAL), in Vars order, so the
	// harness's banner can say which values nobody chose.
	Derived []string
}

// FromEnv reads the configuration through getenv (os.Getenv in production, a map in tests).
// local relaxes the required variables to the documented dev defaults of Vars. Values not set
// that other values constrain are derived to fit (see Vars), so setting only the contract's
// variables always works; then every relation of Rules (except the function timeouts, see
// CheckTimeouts) is checked. All problems are reported at once, each naming its variable, the
// other variable of a broken relation, and the expected form.
func FromEnv(getenv func(string) string, local bool) (Config, error) {
	r := &reader{getenv: getenv, local: local}
	text, source := r.queuesSource()
	if text != "" {
		// The items name their projects and capacities; the variables are then not needed.
		r.optional = map[string]bool{"CAR_PROJECT_ID": true, "CAPACITY": true}
	}
	c := Config{Local: local}
	r.read(&c)
	r.derive(&c)
	r.apply(facts{c: &c, set: r.isSet}, false)
	if len(r.errs) == 0 {
		r.queues(&c, text, source)
	}
	if len(r.errs) > 0 {
		return Config{}, fmt.Errorf("configuration: %w", errors.Join(r.errs...))
	}
	// The first queue is the default one: requests that name none, and /stats without QueueId.
	q := c.Queues[0]
	c.QueueID, c.CARProjectID, c.CARApplicationID, c.CARApplicationVersionID = q.ID, q.ProjectID, q.ApplicationID, q.ApplicationVersionID
	c.Capacity, c.CARRunMode = q.Capacity, q.RunMode
	c.QueueIdleTimeout, c.HeartbeatTimeout, c.ReadyTimeout = q.QueueIdleTimeout, q.HeartbeatTimeout, q.ReadyTimeout
	c.HeartbeatInterval, c.PollMinInterval, c.PollMaxInterval = q.HeartbeatInterval, q.PollMinInterval, q.PollMaxInterval
	c.Lanes, c.OpensAt, c.MaxSession, c.SessionWarning = q.Lanes, q.OpensAt, q.MaxSession, q.SessionWarning
	return c, nil
}

// read parses every variable into c, recording one error per bad one.
func (r *reader) read(c *Config) {
	c.RedisMasterName = r.id("REDIS_MASTER_NAME", 128, "1–128 of [A-Za-z0-9_.:-]")
	redisPort := "6379"
	if c.RedisMasterName != "" {
		redisPort = "26379"
	}
	c.RedisAddr, c.RedisAddrs = r.hostPorts("REDIS_ADDR", redisPort)
	c.RedisUsername = r.str("REDIS_USERNAME")
	c.RedisPassword = r.str("REDIS_PASSWORD")
	c.RedisSentinelPassword = r.str("REDIS_SENTINEL_PASSWORD")
	c.RedisDB = r.intRange("REDIS_DB", 0, 1<<20)
	c.RedisTLS = r.oneOf("REDIS_TLS", "0", "1") == "1"
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
	c.Capacity = r.intRange("CAPACITY", 0, 1_000_000)
	c.CARTotalRefresh = r.duration("CAR_TOTAL_REFRESH", time.Second)
	c.QueueIdleTimeout = r.duration("QUEUE_IDLE_TIMEOUT", time.Second)
	c.HeartbeatTimeout = r.duration("HEARTBEAT_TIMEOUT", time.Second)
	c.ReadyTimeout = r.duration("READY_TIMEOUT", time.Second)
	c.HeartbeatInterval = r.optDuration("HEARTBEAT_INTERVAL", 100*time.Millisecond)
	c.PollMinInterval = r.duration("POLL_MIN_INTERVAL", 100*time.Millisecond)
	c.PollMaxInterval = r.duration("POLL_MAX_INTERVAL", 100*time.Millisecond)
	c.ClaimLease = r.duration("CLAIM_LEASE", time.Second)
	c.GoneRetention = r.duration("GONE_RETENTION", time.Second)
	c.RateWindow = r.duration("RATE_WINDOW", time.Second)
	c.StopReleaseWait = r.duration("STOP_RELEASE_WAIT", 100*time.Millisecond)
	c.ReleaseRetryMin = r.duration("RELEASE_RETRY_MIN", 100*time.Millisecond)
	c.ReleaseRetryMax = r.duration("RELEASE_RETRY_MAX", time.Second)
	c.ReaperBatch = r.intRange("REAPER_BATCH", 1, MaxBatch)
	c.ReaperMaxBatches = r.intRange("REAPER_MAX_BATCHES", 1, MaxBatch)
	c.ReaperLease = r.duration("REAPER_LEASE", 3*time.Second)
	c.ReaperOutageGrace = r.duration("REAPER_OUTAGE_GRACE", time.Second)
	c.ReaperRunTime = r.duration("REAPER_RUN_TIME", time.Second)
	c.ReaperPause = r.duration("REAPER_PAUSE", 10*time.Millisecond)
	c.ReaperMaxAdmit = r.intRange("REAPER_MAX_ADMIT", 0, 1_000_000)
	c.ReaperParallel = r.intRange("REAPER_PARALLEL", 1, 256)
	c.ReaperQueues = r.intRange("REAPER_QUEUES", 1, 1024)
	c.Lanes = r.lanes("LANES")
	c.OpensAt = r.timestamp("OPENS_AT")
	c.MaxSession = r.zeroOrDuration("MAX_SESSION", time.Second)
	c.SessionWarning = r.duration("SESSION_WARNING", time.Second)
	c.RecordsMax = r.intRange("RECORDS_MAX", 1000, 10_000_000)
	c.WebhookURL = r.url("WEBHOOK_URL")
	c.WebhookSecret = r.secret("WEBHOOK_SECRET")
	c.Port = r.intRange("PORT", 1, 65535)
	c.ReaperTick = r.duration("REAPER_TICK", 10*time.Millisecond)
	c.RedisPoolSize = r.intRange("REDIS_POOL_SIZE", 1, 10_000)
	c.GCPercent = r.gcPercent("GOGC")
	c.TicketSecret = r.secret("TICKET_SECRET")
	c.TicketSecretPrevious = r.secret("TICKET_SECRET_PREVIOUS")
	c.GrantSecret = r.secret("GRANT_SECRET")
	c.RequireGrant = r.oneOf("REQUIRE_GRANT", "0", "1") == "1"
	c.AdminToken = r.str("ADMIN_TOKEN")
	c.CORSOrigin = r.str("CORS_ORIGIN")
	c.LogLevel = r.logLevel("LOG_LEVEL")
}

// RedisCluster reports whether the configuration names a Redis Cluster: several addresses and
// no Sentinel master name.
func (c Config) RedisCluster() bool { return len(c.RedisAddrs) > 1 && c.RedisMasterName == "" }

// derive fills in what was left unset so that it fits the values it depends on, and the CAR
// budget. A value that failed to parse is 0 and derives nothing (its error is already there).
func (r *reader) derive(c *Config) {
	c.CARBudget = (c.CARLockTTL * 5 / 6).Truncate(time.Millisecond)
	derived := map[string]bool{}
	if !r.isSet("HEARTBEAT_INTERVAL") && c.HeartbeatTimeout > 0 {
		c.HeartbeatInterval = c.HeartbeatTimeout / 4
		if c.ReadyTimeout > 0 {
			c.HeartbeatInterval = min(c.HeartbeatInterval, c.ReadyTimeout/2)
		}
		c.HeartbeatInterval = c.HeartbeatInterval.Truncate(time.Millisecond)
		derived["HEARTBEAT_INTERVAL"] = true
	}
	// The defaults of Vars are the caps of the derived poll intervals.
	if !r.isSet("POLL_MAX_INTERVAL") && c.PollMaxInterval > 0 && c.QueueIdleTimeout > 0 {
		c.PollMaxInterval = min(c.PollMaxInterval, div24(c.QueueIdleTimeout))
		derived["POLL_MAX_INTERVAL"] = true
	}
	if !r.isSet("POLL_MIN_INTERVAL") && c.PollMinInterval > 0 && c.PollMaxInterval > 0 {
		c.PollMinInterval = min(c.PollMinInterval, c.PollMaxInterval)
		derived["POLL_MIN_INTERVAL"] = true
	}
	for _, v := range Vars {
		if derived[v.Name] {
			c.Derived = append(c.Derived, v.Name)
		}
	}
}
