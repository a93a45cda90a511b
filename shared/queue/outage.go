package queue

import "time"

// The outage watch: time the system could not work must not count against users.
//
// Users are dropped by deadlines (idle, heartbeat, ready) that only a working system lets them
// meet: while Redis is down, read-only or loading, or the functions are throttled, every poll
// and heartbeat fails with a 503, and the user's deadline runs out through no fault of theirs.
// So the reaper keeps a mark of when it last worked (K_UP's seen: set when a run takes the
// lease and at every renewal, every REAPER_LEASE/3 while it works), and a run that finds the
// last mark older than OutageGrace concludes the system was down. It then holds reaping (the
// reaper does not call Reap) until every user had one full timeout to show up again: now + the
// longest of QueueIdleTimeout, HeartbeatTimeout and ReadyTimeout. Users who kept trying reset
// their own deadlines in that time; a user who really left is dropped when the hold ends.
//
// Why a hold and not extending every deadline by the outage's length: extending would rewrite
// every queued user's score (a million-member script, or many batches racing new polls), and
// the scripts that keep those deadlines belong to the hot path. A hold is two hash fields,
// read in the lease script every run already calls, and it errs on the kind side: a user who
// left during the outage is dropped at most one timeout late.
//
// The mark lives in Redis, so every instance and every timer run sees the same hold, and a
// Redis restart on its AOF keeps it; a restart that lost the data lost the line too. Releases
// and admissions go on during a hold; claims of runs that died stay Admitting until it ends
// (their return to the front is part of Reap), which only delays those few users.
//
// A queue that had nobody for longer than the grace gets no reaper runs (the fleet runs only
// queues with users), so its first run afterwards holds reaping once, too: harmless, since
// nobody can have been charged, and the users who came since are dropped at most one timeout
// later than usual.

// outageHold is how long reaping is held after an outage: one full timeout of every kind.
func (q *Queue) outageHold() time.Duration {
	return max(q.opts.QueueIdleTimeout, q.opts.HeartbeatTimeout, q.opts.ReadyTimeout)
}

// ReapHeldUntil is until when reaping is held after an outage, as this lease's run found it
// when it took the lease (the zero time when it is not held).
func (l *Lease) ReapHeldUntil() time.Time {
	if l.holdUntil <= 0 {
		return time.Time{}
	}
	return time.UnixMilli(l.holdUntil)
}
