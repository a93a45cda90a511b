package app

import (
	"context"
	"log/slog"
	"time"

	"github.com/carqueue/carqueue/shared/config"
	"github.com/carqueue/carqueue/shared/queue"
	"github.com/redis/go-redis/v9"
)

// ConnectServer is the server mode's Redis client: the functions' topologies (one node, a
// cluster, Sentinel) with the pool of REDIS_POOL_SIZE, since one process serves many requests
// at once where an SCF event instance serves one. functions/web and `go run ./local
// -functions=server` use it.
func ConnectServer(cfg config.Config) (redis.UniversalClient, error) {
	return queue.Connect(queue.ConnOptions{
		Addrs: cfg.RedisAddrs, MasterName: cfg.RedisMasterName, Username: cfg.RedisUsername,
		Password: cfg.RedisPassword, SentinelPassword: cfg.RedisSentinelPassword, DB: cfg.RedisDB, TLS: cfg.RedisTLS,
		PoolSize: cfg.RedisPoolSize, DialTimeout: 2 * time.Second, ReadTimeout: 2 * time.Second,
		WriteTimeout: 2 * time.Second, PoolTimeout: 2 * time.Second,
	})
}

// serverReaperRun bounds one in-process reaper run, as the reaper function's timeout bounds
// an invocation.
const serverReaperRun = 60 * time.Second

// ReapEvery is the server mode's timer: it starts a reaper run every tick, each in its own
// goroutine so a slow run does not delay the next (the reaper's lease lets only one of
// overlapping runs act), and waits for the runs in flight when ctx ends.
func (a *App) ReapEvery(ctx context.Context, tick time.Duration, log *slog.Logger) {
	t := time.NewTicker(tick)
	defer t.Stop()
	done := make(chan struct{}, 64)
	running := 0
	for {
		select {
		case <-ctx.Done():
			for ; running > 0; running-- {
				<-done
			}
			return
		case <-done:
			running--
		case <-t.C:
			running++
			go func() {
				rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), serverReaperRun)
				defer cancel()
				if _, err := a.RunReaper(rctx); err != nil {
					log.Warn("reaper run failed", "err", err.Error())
				}
				done <- struct{}{}
			}()
		}
	}
}
