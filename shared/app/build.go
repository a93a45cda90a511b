package app

import (
	"context"
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
	"github.com/redis/go-redis/v9"
)

// App is everything one warm instance reuses between invocations.
type App struct {
	Config   config.Config
	Logger   *slog.Logger
	Redis    redis.UniversalClient
	Queue    *queue.Queue
	CAR      *car.Client
	Sessions *session.Service
	Reaper   *reaper.Reaper
	API      *httpapi.API
}

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
	logger := slog.New(slog.NewJSONHandler(os.Stdout, &slog.HandlerOptions{Level: cfg.LogLevel})).
		With("queue_id", cfg.QueueID)
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
	q, err := queue.New(rdb, queue.Options{
		QueueID: cfg.QueueID, Capacity: cfg.Capacity,
		QueueIdleTimeout: cfg.QueueIdleTimeout, HeartbeatTimeout: cfg.HeartbeatTimeout, ReadyTimeout: cfg.ReadyTimeout,
		ClaimLease: cfg.ClaimLease, GoneRetention: cfg.GoneRetention, RateWindow: cfg.RateWindow,
	})
	if err != nil {
		return nil, err // the constructor names itself
	}
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
	svc, err := session.New(q, cc, session.Options{
		LockTTL: cfg.CARLockTTL, CARBudget: cfg.CARBudget, RunMode: cfg.CARRunMode, StopWait: cfg.StopReleaseWait,
		ReleaseRetryMin: cfg.ReleaseRetryMin, ReleaseRetryMax: cfg.ReleaseRetryMax,
		HeartbeatInterval: cfg.HeartbeatInterval, HeartbeatTimeout: cfg.HeartbeatTimeout,
		PollMin: cfg.PollMinInterval, PollMax: cfg.PollMaxInterval, Logger: logger,
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
	tickets, err := ticket.New(cfg.TicketSecret, cfg.TicketSecretPrevious)
	if err != nil {
		return nil, fmt.Errorf("build tickets: %w", err)
	}
	api, err := httpapi.New(httpapi.Deps{
		Sessions: svc, Tickets: tickets, QueueID: cfg.QueueID,
		Grants: ticket.NewGrants(cfg.GrantSecret), RequireGrant: cfg.RequireGrant,
		AdminToken: cfg.AdminToken, CORSOrigin: cfg.CORSOrigin,
		ProjectID: cfg.CARProjectID, ApplicationID: cfg.CARApplicationID, ApplicationVersionID: cfg.CARApplicationVersionID,
		Logger: logger, Extra: carCounts(cc, cfg.CARProjectID),
	})
	if err != nil {
		return nil, err // the constructor names itself
	}
	return &App{Config: cfg, Logger: logger, Redis: rdb, Queue: q, CAR: cc, Sessions: svc, Reaper: rp, API: api}, nil
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
