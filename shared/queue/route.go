package queue

import (
	"context"
	"errors"
	"sync"

	"github.com/redis/go-redis/v9"
)

// A unit is one caller's commands, all in the hash slot of key: what one pipeline may carry
// beside others' and what is sent again, alone, when Redis Cluster redirects it.
type unit struct {
	key string
	add func(redis.Pipeliner)
}

// primaryRouter is what a Redis Cluster client offers besides its own pipeline: the client of
// the primary that serves a key (*redis.ClusterClient).
type primaryRouter interface {
	MasterForKey(ctx context.Context, key string) (*redis.Client, error)
}

// sendUnits sends units pipelined, and returns the first error of a command (redis.Nil is no
// error); each unit's caller reads its own commands' results. On a single node, a Sentinel
// primary or a Ring, that is one pipeline. On a Redis Cluster the cluster client's pipeline is
// not used for several units: when the first command it sends a node fails in a way it
// retries (TRYAGAIN, while a migrating slot's keys are split between nodes) it sends that
// node's whole list again, and also, to the other node, each command of the list that was
// redirected (ASK, MOVED); go-redis v9.23.0 then runs one command on two nodes at once (a
// data race on its result) and again on every retry, and runs the list's commands that had
// succeeded again, other callers' among them. So units go in one plain pipeline per primary,
// the one that serves their key as the client last saw the slots, and a unit whose command
// was redirected, told to try again or lost to the network is sent again alone, through the
// cluster client, which follows the redirection and learns the new slots: a unit is one
// caller's, so only commands that caller would have had retried are run again.
func sendUnits(ctx context.Context, rdb Pipeliner, units []unit) error {
	r, ok := rdb.(primaryRouter)
	if !ok {
		_, err := sendPipeline(ctx, rdb.Pipeline(), units, nil)
		return err
	}
	var (
		byNode = map[*redis.Client][]unit{} // one entry, unless units span hash slots
		again  []unit
	)
	for _, u := range units {
		var n *redis.Client
		if u.key != "" {
			n, _ = r.MasterForKey(ctx, u.key)
		}
		if n == nil { // no key, or the client knows no slots yet: the cluster client finds them
			again = append(again, u)
			continue
		}
		byNode[n] = append(byNode[n], u)
	}
	var (
		mu    sync.Mutex
		first error
	)
	keep := func(err error) {
		mu.Lock()
		defer mu.Unlock()
		if first == nil {
			first = err
		}
	}
	each(len(byNode), func(send func(func())) {
		for n, us := range byNode {
			send(func() {
				redirected, err := sendPipeline(ctx, n.Pipeline(), us, clusterRetry)
				mu.Lock()
				again = append(again, redirected...)
				mu.Unlock()
				if err != nil {
					keep(err)
				}
			})
		}
	})
	each(len(again), func(send func(func())) {
		for _, u := range again {
			send(func() {
				if _, err := sendPipeline(ctx, rdb.Pipeline(), []unit{u}, nil); err != nil {
					keep(err)
				}
			})
		}
	})
	return first
}

// sendPipeline sends units in pipeline p. It returns the units with a command that failed as
// retry (when not nil) says is to be sent again, and the first error of the other units'
// commands.
func sendPipeline(ctx context.Context, p redis.Pipeliner, units []unit, retry func(error) bool) (again []unit, err error) {
	ends := make([]int, len(units))
	for i, u := range units {
		u.add(p)
		ends[i] = p.Len()
	}
	if p.Len() == 0 {
		return nil, nil
	}
	cmds, _ := p.Exec(ctx) // each command holds its own error
	start := 0
	for i, u := range units {
		var uerr error
		redo := false
		for _, c := range cmds[start:ends[i]] {
			if e := c.Err(); e != nil && e != redis.Nil {
				redo = redo || retry != nil && retry(e)
				if uerr == nil {
					uerr = e
				}
			}
		}
		switch {
		case redo:
			again = append(again, u)
		case err == nil:
			err = uerr
		}
		start = ends[i]
	}
	return again, err
}

// clusterRetry says whether a command that failed with err on the node its slot was thought
// to be on should be sent again through the cluster client: redirected (MOVED, ASK), told to
// try again (TRYAGAIN, CLUSTERDOWN, a replica's LOADING or READONLY, MASTERDOWN), or lost to
// the network (the node may be gone, its slots taken over). A context's end is the caller's.
func clusterRetry(err error) bool {
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return false
	}
	var re redis.Error
	if !errors.As(err, &re) {
		return true
	}
	for _, p := range [...]string{"MOVED ", "ASK ", "TRYAGAIN", "CLUSTERDOWN", "LOADING", "READONLY", "MASTERDOWN"} {
		if redis.HasErrorPrefix(err, p) {
			return true
		}
	}
	return false
}

// each runs what body hands to send, in the calling goroutine when n is 1 (the common case:
// one primary, nothing to wait for) and concurrently otherwise, and returns when all are done.
func each(n int, body func(send func(func()))) {
	if n <= 1 {
		body(func(f func()) { f() })
		return
	}
	var wg sync.WaitGroup
	body(func(f func()) { wg.Go(f) })
	wg.Wait()
}
