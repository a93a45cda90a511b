package queue

// Every key of a queue is "cq:{<queueid>}:<name>", so all of them hash to one cluster slot.
// Queued users cost one member in line, one in seen and one field in cs; nothing else. The
// few holders (at most Capacity) keep their details as fields of the one hold hash, so every
// script knows all of its keys before it runs, as Redis Cluster requires.
//
//	line  zset   queued user -> join sequence (FIFO order; a requeued user keeps its number)
//	seen  zset   queued user -> last seen (ms), for the idle reap
//	cs    hash   user -> newest ClientSession (queued users and holders)
//	seq   string INCR counter giving join sequence numbers
//	hold  hash   holder details, fields "<f>:<user>": s state, t claim token, q join sequence,
//	             ss ServerSession, r state before a reattach, d its deadline, y reason for leaving
//	lease zset   Admitting user -> claim lease expiry (ms)
//	rdy   zset   Ready user -> ready deadline (ms)
//	act   zset   Active user -> heartbeat deadline (ms)
//	rel   zset   Releasing user -> time it started releasing (ms)
//	gone  zset   departed user -> when its reason is forgotten (ms)
//	gr    hash   departed user -> reason
//	cnt   hash   counters: admitted, left:<reason>
//	rate  zset   admission number -> admission time (ms), trimmed to RateWindow
type keyID int

const (
	kLine keyID = iota
	kSeen
	kCS
	kSeq
	kHold
	kLease
	kRdy
	kAct
	kRel
	kGone
	kGR
	kCnt
	kRate
	numKeys
)

var keyNames = [numKeys]string{"line", "seen", "cs", "seq", "hold", "lease", "rdy", "act", "rel", "gone", "gr", "cnt", "rate"}

func keyPrefix(queueID string) string { return "cq:{" + queueID + "}:" }

func queueKeys(queueID string) []string {
	out := make([]string, numKeys)
	for i, n := range keyNames {
		out[i] = keyPrefix(queueID) + n
	}
	return out
}

// lockKey is the per-user CAR lock; it shares the hash tag though no script touches it with
// other keys.
func lockKey(queueID, userID string) string { return keyPrefix(queueID) + "lock:" + userID }
