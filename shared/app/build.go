package app

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"time"

	"github.com/carqueue/carqueue/shared/car"
	"github.com/carqueue/carqueue/shared/config"
	"github.com/carqueue/carqueue/shared/httpapi"
	"github.com/carqueue/carqueue/shared/queue"
	"github.com/carqueue/carqueue/shared/reaper"
	"github.com/carqueue/carqueue/shared/session"
	"github.com/carqueue/carqueue/shared/ticket"
	"github.com/carqueue/carqueue/shared/webhook"
	"github.com/redis/go-redis/v9"
)

// App is everything one warm instance reuses between invocations.
type App struct {
	Config config.Config
	Logger *slog.Logger
	Redis  redis.UniversalClient
	CAR    *car.Client
	// Queues are the deployment's queues in configuration order, the first the default.
	Queues []*Queue
	Fleet  *reaper.Fleet
	API    *httpapi.API
}

// Queue is one queue of the App: its configuration, its line in Redis, its use cases and its
// timer run.
type Queue struct {
	Config   config.Queue
	Queue    *queue.Queue
	Sessions *session.Service
	Reaper   *reaper.Reaper
}

// Queue returns the queue with this id, or nil.
func (a *App) Queue(id string) *Queue {
	for _, q := range a.Queues {
		if q.Config.ID == id {
			return q
		}
	}
	return nil
}

// lockSpace is the lock space of a deployment of several queues: their per-user CAR locks
// and home hints are shared (queue.Options.LockSpace), so a UserId never has two CAR calls
// in flight whichever queues it tries.
const lockSpace = "deployment"

// homeTTL is how long the hint of which queue a user is in outlives its last /start: longer
// than anyone waits or plays without reloading, short enough not to keep every UserId ever
// seen.
const homeTTL = 24 * time.Hour

// Redis client limits: an SCF instance serves one request at a time, so a small pool is
// plenty, and every timeout stays far under the invocation deadline (the context's deadline
// bounds each command too).
const (
	redisPoolSize     = 4
	redisDialTimeout  = 2 * time.Second
	redisReadTimeout  = 2 * time.Second
	redisWriteTimeout = 2 * time.Second
	statsCARTimeout   = 2 * time.Second
)

// Build reads the configuration through getenv and builds the App. It does no network I/O
// (go-redis connects on first use), so it fails only on configuration.
func Build(getenv func(string) string, local bool) (*App, error) {
	cfg, err := config.FromEnv(getenv, local)
	if err != nil {
		return nil, err
	}
	return BuildFrom(cfg, getenv, nil)
}

// BuildFrom builds the App from a parsed configuration. getenv supplies the CAR credentials
// per call (os.Getenv on SCF); rdb, when non-nil, is used instead of a client built from the
// configuration (the local harness may bring its own).
func BuildFrom(cfg config.Config, getenv func(string) string, rdb redis.UniversalClient) (*App, error) {
	if getenv == nil {
		getenv = os.Getenv
	}
	logger := slog.New(slog.NewJSONHandler(os.Stdout, &slog.HandlerOptions{Level: cfg.LogLevel}))
	if rdb == nil {
		var err error
		rdb, err = queue.Connect(queue.ConnOptions{
			Addrs: cfg.RedisAddrs, MasterName: cfg.RedisMasterName, Username: cfg.RedisUsername,
			Password: cfg.RedisPassword, SentinelPassword: cfg.RedisSentinelPassword, DB: cfg.RedisDB, TLS: cfg.RedisTLS,
			PoolSize: redisPoolSize, DialTimeout: redisDialTimeout, ReadTimeout: redisReadTimeout,
			WriteTimeout: redisWriteTimeout, PoolTimeout: redisReadTimeout,
		})
		if err != nil {
			return nil, err
		}
	}
	a, err := assemble(cfg, getenv, rdb, logger)
	if err != nil {
		_ = rdb.Close()
		return nil, err
	}
	return a, nil
}

func assemble(cfg config.Config, getenv func(string) string, rdb redis.UniversalClient, logger *slog.Logger) (*App, error) {
	retries := cfg.CARMaxRetries
	if retries == 0 {
		retries = -1 // car.Config: 0 means its default, negative means none
	}
	cc, err := car.New(car.Config{
		Endpoint: cfg.CAREndpoint, Scheme: cfg.CARScheme, Region: cfg.CARRegion,
		ProjectID: cfg.CARProjectID, ApplicationID: cfg.CARApplicationID, ApplicationVersionID: cfg.CARApplicationVersionID,
		Rates: cfg.CARRates, CallTimeout: cfg.CARCallTimeout, MaxRetries: retries,
		Getenv: getenv, Logger: logger,
	})
	if err != nil {
		return nil, err // the constructor names itself
	}
	a := &App{Config: cfg, Logger: logger, Redis: rdb, CAR: cc}
	space, dep := "", (*session.Deployment)(nil)
	if len(cfg.Queues) > 1 {
		homes, err := queue.NewHomes(rdb, lockSpace, homeTTL)
		if err != nil {
			return nil, err // the constructor names itself
		}
		space, dep = lockSpace, session.NewDeployment(homes)
	}
	var hook *webhook.Hook
	if cfg.WebhookURL != "" {
		if hook, err = webhook.New(cfg.WebhookURL, cfg.WebhookSecret, nil, logger); err != nil {
			return nil, err // the constructor names itself
		}
	}
	var (
		members []reaper.Member
		lines   []*queue.Queue
		routes  []httpapi.Queue
	)
	for _, qc := range cfg.Queues {
		q, err := buildQueue(cfg, qc, rdb, cc, space, dep, logger.With("queue_id", qc.ID))
		if err != nil {
			return nil, fmt.Errorf("queue %s: %w", qc.ID, err)
		}
		a.Queues = append(a.Queues, q)
		lines = append(lines, q.Queue)
		m := reaper.Member{ID: qc.ID, Reaper: q.Reaper}
		if qc.Capacity == 0 {
			m.SyncCARTotal = q.Sessions.SyncCARTotal
		}
		if hook != nil {
			id, box := qc.ID, q.Queue
			m.Deliver = func(ctx context.Context) (int, error) { return hook.Deliver(ctx, id, box) }
		}
		members = append(members, m)
		var lanes []string
		for _, l := range qc.Lanes {
			lanes = append(lanes, l.Name)
		}
		routes = append(routes, httpapi.Queue{ID: qc.ID, ProjectID: qc.ProjectID, ApplicationID: qc.ApplicationID,
			ApplicationVersionID: qc.ApplicationVersionID, Sessions: q.Sessions, Extra: carCounts(cc, qc.ProjectID), Lanes: lanes})
	}
	probe := func(ctx context.Context) ([]queue.Work, error) {
		return queue.Due(ctx, rdb, lines, cfg.CARTotalRefresh)
	}
	if a.Fleet, err = reaper.NewFleet(members, probe, reaper.FleetOptions{Parallel: cfg.ReaperQueues, Logger: logger}); err != nil {
		return nil, err // the constructor names itself
	}
	tickets, err := ticket.New(cfg.TicketSecret, cfg.TicketSecretPrevious)
	if err != nil {
		return nil, fmt.Errorf("build tickets: %w", err)
	}
	a.API, err = httpapi.New(httpapi.Deps{
		Queues: routes, Tickets: tickets,
		Grants: ticket.NewGrants(cfg.GrantSecret), RequireGrant: cfg.RequireGrant,
		AdminToken: cfg.AdminToken, CORSOrigin: cfg.CORSOrigin, Logger: logger,
	})
	if err != nil {
		return nil, err // the constructor names itself
	}
	return a, nil
}

// buildQueue builds one queue's line, use cases and timer run from the deployment's settings
// and the queue's own.
func buildQueue(cfg config.Config, qc config.Queue, rdb redis.UniversalClient, cc *car.Client, space string,
	dep *session.Deployment, logger *slog.Logger) (*Queue, error) {
	var lanes []queue.Lane
	for _, l := range qc.Lanes {
		lanes = append(lanes, queue.Lane{Name: l.Name, Weight: l.Weight})
	}
	seed := ""
	if !qc.OpensAt.IsZero() {
		seed = ShuffleSeed(cfg.TicketSecret, qc.ID, qc.OpensAt)
	}
	q, err := queue.New(rdb, queue.Options{
		QueueID: qc.ID, Capacity: qc.Capacity, LockSpace: space,
		QueueIdleTimeout: qc.QueueIdleTimeout, HeartbeatTimeout: qc.HeartbeatTimeout, ReadyTimeout: qc.ReadyTimeout,
		ClaimLease: cfg.ClaimLease, GoneRetention: cfg.GoneRetention, RateWindow: cfg.RateWindow,
		OutageGrace: cfg.ReaperOutageGrace, Lanes: lanes, OpensAt: qc.OpensAt, ShuffleSeed: seed,
		MaxSession: qc.MaxSession, RecordsMax: cfg.RecordsMax, Deliver: cfg.WebhookURL != "",
	})
	if err != nil {
		return nil, err // the constructor names itself
	}
	svc, err := session.New(q, cc, session.Options{
		QueueID: qc.ID, ProjectID: qc.ProjectID, ApplicationID: qc.ApplicationID, ApplicationVersionID: qc.ApplicationVersionID,
		CARTotalRefresh: cfg.CARTotalRefresh, Deployment: dep,
		LockTTL: cfg.CARLockTTL, CARBudget: cfg.CARBudget, RunMode: qc.RunMode, StopWait: cfg.StopReleaseWait,
		ReleaseRetryMin: cfg.ReleaseRetryMin, ReleaseRetryMax: cfg.ReleaseRetryMax,
		HeartbeatInterval: qc.HeartbeatInterval, HeartbeatTimeout: qc.HeartbeatTimeout,
		PollMin: qc.PollMinInterval, PollMax: qc.PollMaxInterval, Logger: logger,
		OpensAt: qc.OpensAt, ShuffleSeed: seed, MaxSession: qc.MaxSession, SessionWarning: qc.SessionWarning,
	})
	if err != nil {
		return nil, err // the constructor names itself
	}
	rp, err := reaper.New(q, svc, reaper.Options{
		Batch: cfg.ReaperBatch, Lease: cfg.ReaperLease, RunTime: cfg.ReaperRunTime, Pause: cfg.ReaperPause,
		MaxAdmit: cfg.ReaperMaxAdmit, Parallel: cfg.ReaperParallel, MaxReapBatches: cfg.ReaperMaxBatches, Logger: logger,
	})
	if err != nil {
		return nil, err // the constructor names itself
	}
	return &Queue{Config: qc, Queue: q, Sessions: svc, Reaper: rp}, nil
}

// ShuffleSeed is the seed of a queue's scheduled opening: every instance derives the same one,
// nobody without TICKET_SECRET can before the opening (when /stats publishes it), and it
// changes with the opening time, so a rescheduled launch draws anew.
func ShuffleSeed(ticketSecret, queueID string, opensAt time.Time) string {
	m := hmac.New(sha256.New, []byte(ticketSecret))
	m.Write([]byte("shuffle|" + queueID + "|" + opensAt.UTC().Format(time.RFC3339)))
	return hex.EncodeToString(m.Sum(nil)[:16])
}

// carCounts adds CAR's own view to /stats: DescribeConcurrentCount's Total and Running
// (Running includes pre-launched and cleaning slots), or CARError when CAR did not answer.
func carCounts(cc *car.Client, projectID string) func(context.Context) map[string]any {
	return func(ctx context.Context) map[string]any {
		ctx, cancel := context.WithTimeout(ctx, statsCARTimeout)
		defer cancel()
		n, err := cc.DescribeConcurrentCount(ctx, projectID)
		if err != nil {
			kind := car.KindOf(err).String()
			var ce *car.Error
			if errors.As(err, &ce) && ce.Code != "" {
				kind = ce.Code
			}
			return map[string]any{"CARError": kind}
		}
		return map[string]any{"CARTotal": n.Total, "CARRunning": n.Running}
	}
}

// Close releases the Redis client.
func (a *App) Close() error { return a.Redis.Close() }
