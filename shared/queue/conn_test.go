package queue

import (
	"errors"
	"testing"

	"github.com/redis/go-redis/v9"
)

// Connect picks the client from the addresses and the master name, as API.md fixes it, and
// refuses what cannot work (no address, a database other than 0 on a cluster).
func TestConnectTopologies(t *testing.T) {
	single, err := Connect(ConnOptions{Addrs: []string{"127.0.0.1:1"}, DB: 3})
	if err != nil {
		t.Fatal(err)
	}
	defer single.Close()
	if c, ok := single.(*redis.Client); !ok || c.Options().DB != 3 || c.Options().Protocol != 2 ||
		c.Options().PoolSize != DefaultPoolSize || !c.Options().ContextTimeoutEnabled {
		t.Fatalf("one address: %T %+v", single, single)
	}
	cluster, err := Connect(ConnOptions{Addrs: []string{"127.0.0.1:1", "127.0.0.1:2"}, Username: "u", TLS: true})
	if err != nil {
		t.Fatal(err)
	}
	defer cluster.Close()
	if c, ok := cluster.(*redis.ClusterClient); !ok || c.Options().Protocol != 2 || c.Options().Username != "u" ||
		c.Options().TLSConfig == nil || !c.Options().ContextTimeoutEnabled {
		t.Fatalf("several addresses: %T", cluster)
	}
	failover, err := Connect(ConnOptions{Addrs: []string{"127.0.0.1:1", "127.0.0.1:2"}, MasterName: "mymaster", DB: 2})
	if err != nil {
		t.Fatal(err)
	}
	defer failover.Close()
	// A failover client is a *redis.Client whose dialer asks the sentinels for the primary.
	if c, ok := failover.(*redis.Client); !ok || c.Options().DB != 2 || c.Options().Protocol != 2 {
		t.Fatalf("master name: %T", failover)
	}
	if _, err := Connect(ConnOptions{}); !errors.Is(err, ErrNoRedisAddr) {
		t.Fatalf("no address: %v", err)
	}
	if _, err := Connect(ConnOptions{Addrs: []string{"a:1", "b:1"}, DB: 1}); !errors.Is(err, ErrInvalid) {
		t.Fatalf("cluster with DB 1: %v", err)
	}
}
