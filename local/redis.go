package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/carqueue/carqueue/shared/config"
	"github.com/carqueue/carqueue/shared/queue"
	"github.com/redis/go-redis/v9"
)

// redisBackend is the Redis the functions talk to, and how to let go of it.
type redisBackend struct {
	Addr  string
	Kind  string // "REDIS_ADDR", "redis-server", "embedded miniredis"
	close func()
}

// errNoRedisServer is returned when -redis=server is asked for and redis-server is not on PATH.
var errNoRedisServer = errors.New("redis-server not found on PATH")

// openRedis picks the Redis: REDIS_ADDR when set; else a redis-server from PATH on a free port
// in a temporary directory, with persistence off; else an embedded miniredis, which is fine for
// demos but re-sorts sets and builds a Lua VM per script, so it does not scale far.
func openRedis(ctx context.Context, mode string, getenv func(string) string) (*redisBackend, error) {
	if addr := getenv("REDIS_ADDR"); addr != "" {
		return &redisBackend{Addr: addr, Kind: "REDIS_ADDR", close: func() {}}, nil
	}
	if mode != "embedded" {
		path, err := exec.LookPath("redis-server")
		switch {
		case err == nil:
			return startRedisServer(ctx, path)
		case mode == "server":
			return nil, fmt.Errorf("flag -redis=server: %w", errNoRedisServer)
		}
	}
	m := miniredis.NewMiniRedis()
	if err := m.StartAddr("127.0.0.1:0"); err != nil {
		return nil, fmt.Errorf("start embedded miniredis: %w", err)
	}
	return &redisBackend{Addr: m.Addr(), Kind: "embedded miniredis", close: m.Close}, nil
}

// pingRedis checks that the Redis of REDIS_ADDR answers, through the client the functions
// build (queue.Connect: single node, cluster or Sentinel, as the configuration says), so a
// wrong address or topology stops the harness at start-up instead of failing every request.
func pingRedis(ctx context.Context, cfg config.Config) error {
	rdb, err := queue.Connect(redisConnOptions(cfg))
	if err != nil {
		return fmt.Errorf("REDIS_ADDR: %w", err)
	}
	defer rdb.Close()
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if err := rdb.Ping(ctx).Err(); err != nil {
		return fmt.Errorf("REDIS_ADDR=%s set but not answering: %w", cfg.RedisAddr, err)
	}
	return nil
}

// redisConnOptions are the functions' connection settings (shared/app builds the same).
func redisConnOptions(cfg config.Config) queue.ConnOptions {
	return queue.ConnOptions{
		Addrs: cfg.RedisAddrs, MasterName: cfg.RedisMasterName, Username: cfg.RedisUsername,
		Password: cfg.RedisPassword, SentinelPassword: cfg.RedisSentinelPassword, DB: cfg.RedisDB, TLS: cfg.RedisTLS,
	}
}

// startRedisServer runs redis-server on a free local port until close. A port taken between
// probing and binding (another process won the race) is retried on a new port.
func startRedisServer(ctx context.Context, path string) (*redisBackend, error) {
	dir, err := os.MkdirTemp("", "carqueue-redis-")
	if err != nil {
		return nil, fmt.Errorf("redis-server temp dir: %w", err)
	}
	var lastErr error
	for range 3 {
		port, err := freePort()
		if err != nil {
			lastErr = err
			continue
		}
		b, err := tryRedisServer(ctx, path, dir, port)
		if err == nil {
			inner := b.close
			b.close = func() { inner(); os.RemoveAll(dir) }
			return b, nil
		}
		lastErr = err
	}
	os.RemoveAll(dir)
	return nil, fmt.Errorf("start redis-server: %w", lastErr)
}

// tryRedisServer starts one redis-server on port and waits until it answers PING.
func tryRedisServer(ctx context.Context, path, dir string, port int) (*redisBackend, error) {
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	// Not exec.CommandContext: the server must outlive ctx until close stops it politely.
	cmd := exec.Command(path, "--port", strconv.Itoa(port), "--bind", "127.0.0.1", "--save", "",
		"--appendonly", "no", "--dir", dir, "--logfile", filepath.Join(dir, "redis.log"))
	stopWithParent(cmd)
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("exec %s: %w", path, err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	stop := func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(5 * time.Second):
			_ = cmd.Process.Kill()
			<-exited
		}
	}
	rdb := redis.NewClient(&redis.Options{Addr: addr, DialTimeout: 200 * time.Millisecond, MaxRetries: -1})
	defer rdb.Close()
	deadline := time.Now().Add(5 * time.Second)
	for {
		if err := rdb.Ping(ctx).Err(); err == nil {
			return &redisBackend{Addr: addr, Kind: "redis-server", close: stop}, nil
		}
		select {
		case err := <-exited:
			log, _ := os.ReadFile(filepath.Join(dir, "redis.log"))
			return nil, fmt.Errorf("redis-server on port %d exited (%v): %s", port, err, tail(string(log), 300))
		case <-ctx.Done():
			stop()
			return nil, ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			stop()
			return nil, fmt.Errorf("redis-server on port %d did not answer PING within 5s", port)
		}
	}
}

// freePort asks the kernel for a free TCP port on the loopback interface.
func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("find a free port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// tail returns at most the last n bytes of s.
func tail(s string, n int) string {
	if len(s) > n {
		return s[len(s)-n:]
	}
	return s
}
