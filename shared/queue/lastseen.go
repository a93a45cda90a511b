package queue

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

// Last-seen, and what a poll costs Redis.
//
// A queued user's last poll is a field of one hash (ls: user -> ms). A poll overwrites its
// value in place, an O(1) write, where the sorted set it replaces had to unlink the user's
// entry and re-insert it at the tail on every poll: at 1,000,000 users that move was a third
// of a poll's Redis CPU, and the entry 40 B more (BENCHMARKS.md). What a sorted set gave for
// free, the idle users in deadline order, the reap now finds by sweeping the hash:
//
//   - a sweep starts every sweepEvery (and at every reap while the hash has at most
//     sweepWhole fields); each reap call takes one step of it (sweepStep): an HSCAN of about
//     sweepCount entries, read by the reaper, not by a script, so Redis pays for the scan
//     only; the entries unseen since the cutoff, oldest first, at most batch, go to the reap
//     script as candidates, which drops each one still unseen and queued. A step that had a
//     whole batch of candidates is taken again (its chunk rescanned); the reap reports More
//     until the sweep is through. A step costs O(sweepCount) whatever the queue's size.
//   - So the idle semantics are those of the sorted set, with a bounded lag: a user who polls
//     within QueueIdleTimeout is never dropped (the cutoff is exact, to the millisecond, and
//     checked again by the script); one who stops at t is dropped by t + QueueIdleTimeout +
//     sweepEvery + the time a sweep takes (N / sweepCount reap calls; a reaper run follows
//     More for at most REAPER_MAX_BATCHES of them, so a 1M-user sweep spans about 5 runs)
//     + the reaper's own tick. With few users every reap sweeps the hash
//     whole, exactly as the sorted set behaved.
//
// The poll of a queued user in a queue without lanes, with a ticket and no new client, needs
// no atomicity beyond what each command has, so it is a pipeline of plain commands instead of
// a script (the script frame and Redis 7.0's per-redis.call machinery were another third):
// HSET ls, ZRANK and ZSCORE on line, HGET tkg, ZCARD line (poll.go). The ticket is checked in
// Go from the same replies. The last-seen write goes first, so a reap between the commands
// sees the user as seen; it runs before the ticket is checked, so a poll with an earlier
// ticket of the same user (genuine, HMAC-bound to the UserId, but of an earlier join) is
// answered ErrBadTicket and still counts as seen: it proves the user is there. Anyone the
// pipeline finds not queued (a holder, a departed user, a lane queue) takes the script, which
// also removes the last-seen the pipeline wrote.

// sweepEvery is how often a sweep of last-seen starts: a third of QueueIdleTimeout, within
// [1 s, 30 s], so the extra lag is small next to the timeout and a 1,000,000-user hash is
// swept at most every 30 s (about 1.2 s of Redis CPU each at 1M, BENCHMARKS.md: ~4% of a core).
func (q *Queue) sweepEvery() time.Duration {
	return min(max(q.opts.QueueIdleTimeout/3, time.Second), 30*time.Second)
}

// sweepCount is the HSCAN COUNT of one sweep step: Redis spends 1–2 µs an entry on a
// 1,000,000-entry hash, so a step of 500 stays well under a millisecond. After a step that
// found a whole batch of idle users (a crowd leaving, its chunk is scanned again), a step
// reads twice the batch instead, so each batch pays for about its own entries. Never less
// than twice the batch, so a step can find a whole batch among entries mostly recent.
func (q *Queue) sweepCount(batch int) int {
	if q.sweepBusy.Load() {
		return max(2*batch, 20)
	}
	return max(500, 2*batch)
}

// sweep is what one reap call does of the sweep: the reap script's ARGV for its state and
// the users it may drop.
type sweep struct {
	cursor     string // the HSCAN cursor to keep, "-" when the sweep is through, "" no step
	started    string // when the sweep started (ms), when this step started it
	candidates []any  // users unseen since the cutoff, the longest first, at most batch
}

// sweepStep reads the sweep's state, takes one step if a sweep is under way or due, and
// returns what the reap script records and checks. Two round trips when it steps, one when not.
func (q *Queue) sweepStep(ctx context.Context, now, cutoff int64, batch int) (sweep, error) {
	var (
		state *redis.SliceCmd
		size  *redis.IntCmd
	)
	if err := q.batch.do(ctx, q.keys[kCfg], func(p redis.Pipeliner) {
		state = p.HMGet(ctx, q.keys[kCfg], "lsc", "lss")
		size = p.HLen(ctx, q.keys[kLs])
	}); err != nil {
		return sweep{}, err
	}
	if err := cmp.Or(state.Err(), size.Err()); err != nil {
		return sweep{}, fmt.Errorf("sweep state: %w", err)
	}
	var st sweep
	cursor, under := state.Val()[0].(string)
	started, _ := state.Val()[1].(string)
	last, _ := strconv.ParseInt(started, 10, 64)
	switch {
	case under:
	case now-last >= ms(q.sweepEvery()) || size.Val() <= int64(q.sweepWhole):
		cursor, st.started = "0", strconv.FormatInt(now, 10)
	default:
		return st, nil
	}
	c, err := strconv.ParseUint(cursor, 10, 64)
	if err != nil {
		c = 0 // a cursor that is not ours: start the sweep over
	}
	var scan *redis.ScanCmd
	if err := q.batch.do(ctx, q.keys[kLs], func(p redis.Pipeliner) { scan = p.HScan(ctx, q.keys[kLs], c, "", int64(q.sweepCount(batch))) }); err != nil {
		return sweep{}, err
	}
	kv, next, err := scan.Result()
	if err != nil {
		return sweep{}, fmt.Errorf("sweep: %w", err)
	}
	type entry struct {
		user string
		seen int64
	}
	var due []entry
	for i := 0; i+1 < len(kv); i += 2 {
		if t, err := strconv.ParseInt(kv[i+1], 10, 64); err == nil && t <= cutoff {
			due = append(due, entry{kv[i], t})
		}
	}
	slices.SortFunc(due, func(a, b entry) int { return cmp.Or(cmp.Compare(a.seen, b.seen), strings.Compare(a.user, b.user)) })
	for _, e := range due[:min(batch, len(due))] {
		st.candidates = append(st.candidates, e.user)
	}
	q.sweepBusy.Store(len(due) >= batch)
	switch {
	case len(due) >= batch:
		st.cursor = strconv.FormatUint(c, 10) // a whole batch: this chunk again
	case next == 0:
		st.cursor = "-"
	default:
		st.cursor = strconv.FormatUint(next, 10)
	}
	return st, nil
}
