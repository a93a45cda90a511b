package queue

import (
	"crypto/tls"
	"errors"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"
)

// ConnOptions says which Redis to reach and how. The topology follows the addresses, as API.md
// fixes it: one address is a single node (or a managed cluster's proxy, which routes by
// itself); several are the nodes of a Redis Cluster; with MasterName they are Sentinel's.
type ConnOptions struct {
	Addrs            []string // host:port each
	MasterName       string   // Sentinel's name of the primary; "" without Sentinel
	Username         string   // ACL user; "" for the default user
	Password         string
	SentinelPassword string // the sentinels' own password, when they have one
	DB               int    // 0 on a cluster, which has no other
	TLS              bool   // verify the server against the system roots

	// Zero values take the defaults below.
	PoolSize                  int
	DialTimeout, ReadTimeout  time.Duration
	WriteTimeout, PoolTimeout time.Duration
}

// Defaults of ConnOptions: an SCF instance serves one request at a time, so a small pool is
// plenty, and every timeout stays far under an invocation's deadline (the context's deadline
// bounds each command too, ContextTimeoutEnabled).
const (
	DefaultPoolSize     = 4
	DefaultDialTimeout  = 2 * time.Second
	DefaultReadTimeout  = 2 * time.Second
	DefaultWriteTimeout = 2 * time.Second
)

// ErrNoRedisAddr is Connect's answer to options without an address.
var ErrNoRedisAddr = errors.New("no Redis address")

// Connect builds the one kind of client every package uses: a single-node client, a cluster
// client (redis.NewClusterClient, which follows MOVED and ASK redirections and rediscovers the
// slots after a failover) or a Sentinel failover client (redis.NewFailoverClient, which asks
// the sentinels for the current primary). It does no network I/O: go-redis connects on first
// use. Every client speaks RESP2, because TencentDB for Redis (and its cluster proxy) does not
// speak RESP3.
func Connect(o ConnOptions) (redis.UniversalClient, error) {
	if len(o.Addrs) == 0 {
		return nil, fmt.Errorf("redis client: %w", ErrNoRedisAddr)
	}
	if o.PoolSize <= 0 {
		o.PoolSize = DefaultPoolSize
	}
	if o.DialTimeout <= 0 {
		o.DialTimeout = DefaultDialTimeout
	}
	if o.ReadTimeout <= 0 {
		o.ReadTimeout = DefaultReadTimeout
	}
	if o.WriteTimeout <= 0 {
		o.WriteTimeout = DefaultWriteTimeout
	}
	if o.PoolTimeout <= 0 {
		o.PoolTimeout = o.ReadTimeout
	}
	var tlsConf *tls.Config
	if o.TLS {
		// No ServerName: crypto/tls takes each node's host name from the address it dials,
		// which is what a cluster with several nodes needs.
		tlsConf = &tls.Config{MinVersion: tls.VersionTLS12}
	}
	switch {
	case o.MasterName != "":
		return redis.NewFailoverClient(&redis.FailoverOptions{
			MasterName: o.MasterName, SentinelAddrs: o.Addrs, SentinelPassword: o.SentinelPassword,
			Username: o.Username, Password: o.Password, DB: o.DB, TLSConfig: tlsConf,
			Protocol: 2, PoolSize: o.PoolSize, DialTimeout: o.DialTimeout, ReadTimeout: o.ReadTimeout,
			WriteTimeout: o.WriteTimeout, PoolTimeout: o.PoolTimeout, ContextTimeoutEnabled: true,
		}), nil
	case len(o.Addrs) > 1:
		if o.DB != 0 {
			return nil, fmt.Errorf("redis client: DB %d on a Redis Cluster of %d nodes, which has only DB 0: %w", o.DB, len(o.Addrs), ErrInvalid)
		}
		return redis.NewClusterClient(&redis.ClusterOptions{
			Addrs: o.Addrs, Username: o.Username, Password: o.Password, TLSConfig: tlsConf,
			Protocol: 2, PoolSize: o.PoolSize, DialTimeout: o.DialTimeout, ReadTimeout: o.ReadTimeout,
			WriteTimeout: o.WriteTimeout, PoolTimeout: o.PoolTimeout, ContextTimeoutEnabled: true,
		}), nil
	default:
		return redis.NewClient(&redis.Options{
			Addr: o.Addrs[0], Username: o.Username, Password: o.Password, DB: o.DB, TLSConfig: tlsConf,
			Protocol: 2, PoolSize: o.PoolSize, DialTimeout: o.DialTimeout, ReadTimeout: o.ReadTimeout,
			WriteTimeout: o.WriteTimeout, PoolTimeout: o.PoolTimeout, ContextTimeoutEnabled: true,
		}), nil
	}
}
