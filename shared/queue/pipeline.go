package queue

import (
	"context"
	"strconv"
	"sync"

	"github.com/redis/go-redis/v9"
)

// batcher sends the commands of concurrent calls to Redis together, one pipeline for all the
// calls waiting, so a server answering thousands of polls a second pays one network round
// trip, one read and one write per batch instead of per poll: Redis spends more CPU on a
// round trip than on a poll's commands (BENCHMARKS.md: a PING costs it ~10 µs alone, 0.6 µs
// in a pipeline of 32). Nothing waits to fill a batch: a call that finds fewer than maxFlights
// pipelines in flight sends at once, with whatever else is waiting; the others queue and go
// with the next. So a lone call (an SCF instance serves one request at a time) costs what a
// direct pipeline does, and batches grow only when Redis is the bottleneck.
type batcher struct {
	rdb Pipeliner

	mu       sync.Mutex
	waiting  []*batchCall
	inFlight int
}

// maxFlights bounds the pipelines a batcher has in flight: enough to keep Redis busy while
// one batch's replies travel back, few enough that calls queue and batch under load.
const maxFlights = 2

// batchCall is one call's commands: add queues them on the pipeline, done is closed once
// their replies (or the error) are in.
type batchCall struct {
	ctx  context.Context
	unit unit
	done chan struct{}
	// dropped: ctx ended before the batch was sent, so the commands were not (an admission
	// the caller gave up on must not happen behind its back)
	dropped bool
}

// do queues the commands add puts on a pipeline, all in the hash slot of key, and returns
// when their replies are in, or ctx ends first (the commands may still be sent; their replies
// are then ignored). The caller reads each command's result and error from the commands add
// created (on a cluster, add may run twice: the second time is the one that counts).
func (b *batcher) do(ctx context.Context, key string, add func(redis.Pipeliner)) error {
	c := &batchCall{ctx: ctx, unit: unit{key: key, add: add}, done: make(chan struct{})}
	b.mu.Lock()
	b.waiting = append(b.waiting, c)
	if b.inFlight < maxFlights {
		b.inFlight++
		calls := b.waiting
		b.waiting = nil
		b.mu.Unlock()
		b.flush(calls) // this call is among them: its replies are in when flush returns
		if next := b.next(); next != nil {
			go b.drain(next)
		}
	} else {
		b.mu.Unlock()
		select {
		case <-c.done:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	if c.dropped {
		return ctx.Err()
	}
	return nil
}

// next takes the calls that queued meanwhile, keeping the flight, or ends the flight.
func (b *batcher) next() []*batchCall {
	b.mu.Lock()
	defer b.mu.Unlock()
	calls := b.waiting
	b.waiting = nil
	if len(calls) == 0 {
		b.inFlight--
	}
	return calls
}

// drain sends batches until nobody is waiting.
func (b *batcher) drain(calls []*batchCall) {
	for ; calls != nil; calls = b.next() {
		b.flush(calls)
	}
}

// flush sends one pipeline of calls (one per primary on a cluster: route.go). Each call reads
// its own commands' errors; the first of them all is nobody's.
func (b *batcher) flush(calls []*batchCall) {
	units := make([]unit, 0, len(calls))
	for _, c := range calls {
		if c.dropped = c.ctx.Err() != nil; !c.dropped {
			units = append(units, c.unit)
		}
	}
	// Not any one call's context: one caller leaving must not fail the others' commands. The
	// client's read and write timeouts bound the round trip.
	if len(units) > 0 {
		_ = sendUnits(context.WithoutCancel(calls[0].ctx), b.rdb, units)
	}
	for _, c := range calls {
		close(c.done)
	}
}

// pollPipelined is Poll's pipeline for a queued user of a queue without lanes who shows a
// ticket and no new client (lastseen.go): last-seen, rank, join score, re-issued join id and
// line length, in one batch, no script. ok is false when the user is not queued in line (or
// left between the commands): the caller then asks the script, which knows every state.
func (q *Queue) pollPipelined(ctx context.Context, userID string, proof float64) (st Status, ok bool, err error) {
	var (
		seen        *redis.IntCmd
		rank, card  *redis.IntCmd
		score       *redis.FloatCmd
		reissuedJID *redis.StringCmd
	)
	line := q.keys[kLine]
	now := q.nowMS()
	if err := q.batch.do(ctx, line, func(p redis.Pipeliner) {
		seen = p.HSet(ctx, q.keys[kLs], userID, now)
		rank = p.ZRank(ctx, line, userID)
		score = p.ZScore(ctx, line, userID)
		reissuedJID = p.HGet(ctx, q.keys[kTkg], userID)
		card = p.ZCard(ctx, line)
	}); err != nil {
		return Status{}, false, err
	}
	for _, c := range []redis.Cmder{seen, rank, score, reissuedJID, card} {
		if err := c.Err(); err != nil && err != redis.Nil {
			return Status{}, false, err
		}
	}
	if rank.Err() == redis.Nil || score.Err() == redis.Nil {
		return Status{}, false, nil
	}
	jid := score.Val()
	if reissuedJID.Err() == nil {
		if jid, err = strconv.ParseFloat(reissuedJID.Val(), 64); err != nil {
			return Status{}, false, nil // not ours to judge: the script will
		}
	}
	if jid != proof {
		return Status{}, false, ErrBadTicket
	}
	return Status{State: StateQueued, Position: rank.Val() + 1, Length: card.Val(), Lane: DefaultLane}, true, nil
}
