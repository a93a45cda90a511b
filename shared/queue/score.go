package queue

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/binary"
	"strconv"
	"time"
)

// A queued user's score in its line orders the line and is its join id (what its ticket
// names), so it must be unique per join of a user and stay exact as a Lua number (a double:
// integers up to 2^53). It also carries what a record needs without a field per queued user:
//
//	joined on an open queue     2^52 + seq·2^16 + eta   eta: the first ETA told, in s (0: none,
//	                                                    at most 65,535)
//	joined before OpensAt       key·2^27 + seq mod 2^27 key: 25 bits of HMAC-SHA256(ShuffleSeed,
//	                                                    UserId): the shuffle of the early cohort
//
// so the early cohort comes first, in the random order of its keys (ties, about one user in 30
// at a million, in join order), then everyone else in join order. seq is the INCR of the seq
// key; the time of a join is found from it in the jt checkpoints (joined_at). Scores written
// before this layout (the plain sequence) read as an early cohort with seq = score, which is
// what they were.
const (
	scoreOpen    = 1 << 52
	etaMax       = 1<<16 - 1
	cohortKeyMax = 1 << 25
)

// DefaultRecordsMax is RecordsMax when Options leaves it 0.
const DefaultRecordsMax = 100_000

// cohortKey is the shuffle key of a user joining before the opening: the same for every join
// of the user (rejoining does not draw again), unknown without the seed, and checkable by
// anyone once the seed is published.
func cohortKey(seed, userID string) int64 {
	m := hmac.New(sha256.New, []byte(seed))
	m.Write([]byte(userID))
	return int64(binary.BigEndian.Uint64(m.Sum(nil)[:8]) % cohortKeyMax)
}

// CohortKey is cohortKey for tools that check a published shuffle.
func CohortKey(seed, userID string) int64 { return cohortKey(seed, userID) }

// beforeOpening reports whether the queue's scheduled opening is still ahead.
func (q *Queue) beforeOpening() bool {
	return !q.opts.OpensAt.IsZero() && q.opts.Now().Before(q.opts.OpensAt)
}

// etaSeconds is the ETA a join stores for perPlace per position (0: none).
func etaArg(perPlace time.Duration) int64 { return perPlace.Milliseconds() }

// seqOf is the join sequence a join score holds (decode_score in the scripts).
func seqOf(score string) int64 {
	f, err := strconv.ParseFloat(score, 64)
	if err != nil {
		return 0
	}
	n := int64(f)
	if n >= scoreOpen {
		return (n - scoreOpen) >> 16
	}
	return n % (1 << 27)
}
