package queue

import (
	"time"
)

// Last-seen, and what a poll costs Redis.
//
// A queued user's last poll is a field of one hash (ls: user -> ms). A poll overwrites its
// value in place, an O(1) write, where the sorted set it replaces had to unlink the user's
// entry and re-insert it at the tail on every poll: at 1,000,000 users that move was a third
// of a poll's Redis CPU, and the entry 40 B more (BENCHMARKS.md). What a sorted set gave for
// free, the idle users in deadline order, the reap now finds by sweeping the hash:
//
//   - a sweep starts every sweepEvery (and at every reap while the hash is small); each reap
//     call takes one step of it, an HSCAN of about sweepCount(batch) entries, dropping the
//     queued users among them unseen for QueueIdleTimeout, oldest first, at most batch (a step
//     that dropped batch rescans its chunk), and reports More until the sweep is through. A
//     step costs O(sweepCount) whatever the queue's size.
//   - So the idle semantics are those of the sorted set, with a bounded lag: a user who polls
//     within QueueIdleTimeout is never dropped (the cutoff is exact, to the millisecond); one
//     who stops at t is dropped by t + QueueIdleTimeout + sweepEvery + the time a sweep takes
//     (about N / sweepCount reap calls: a reaper run follows More to the end) + the reaper's
//     own tick. With few users (ls of at most 512 fields) every reap sweeps it whole, exactly
//     as the sorted set behaved.
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

// sweepEvery is how often a sweep of last-seen starts: a quarter of QueueIdleTimeout, within
// [1 s, 15 s], so the extra lag is small next to the timeout and a 1,000,000-user hash is
// swept at most every 15 s (about 0.5 s of Redis CPU each, BENCHMARKS.md).
func (q *Queue) sweepEvery() time.Duration {
	return min(max(q.opts.QueueIdleTimeout/4, time.Second), 15*time.Second)
}

// sweepCount is the HSCAN COUNT of one sweep step: ten entries per user the batch may drop,
// so a step stays well under a millisecond of Redis time while most entries are recent.
func sweepCount(batch int) int { return max(10*batch, 100) }
