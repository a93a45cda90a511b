package queue

// Every key of a queue is "cq:{<queueid>}:<name>", built here and nowhere else, so all of them
// hash to one cluster slot and a script may touch any of them. Queued users cost one member in
// line, one in ls and one field in cs; nothing else. The few holders (at most Capacity) keep
// their details as fields of the one hold hash, so every script knows all of its keys before
// it runs, as Redis Cluster requires.
//
//	line   zset   queued user -> its join score (FIFO order; a requeued user keeps it): the
//	              join sequence and first ETA, or a scheduled opening's shuffle key (score.go)
//	ls     hash   queued user -> last seen (ms), for the idle reap: a poll overwrites a value
//	              in place (no sorted-set entry moves), and the reap sweeps it with HSCAN
//	              (lastseen.go); cfg's lsc and lss: the sweep's cursor, when it started
//	seen   zset   the last-seen of a queue written by an earlier version (user -> ms), only
//	              drained now, by the reap
//	cs     hash   user -> its Client, "<ip>|<ClientSession>" (queued users and holders; client.go)
//	seq    string INCR counter giving join sequence numbers
//	hold   hash   holder details, fields "<f>:<user>": s state, t claim token, q join score,
//	              ss ServerSession, r state before a reattach, d its deadline, y reason for
//	              leaving, a failed releases, l lane (when not the default), ad first admitted (ms)
//	lease  zset   Admitting user -> claim lease expiry (ms)
//	rdy    zset   Ready user -> ready deadline (ms)
//	act    zset   Active user -> heartbeat deadline (ms)
//	rel    zset   Releasing user -> time it started releasing (ms)
//	gone   zset   departed user -> when its reason is forgotten (ms)
//	gr     hash   departed user -> reason
//	cnt    hash   counters: admitted, left:<reason>
//	rate   zset   admission number -> admission time (ms), trimmed to RateWindow
//	tkg    hash   user -> join id re-issued by a grant (sparse: most users have none, and their
//	              join id is their join sequence, the score in line or hold's q:<user>)
//	reaper string the reaper's lease, "<expiry ms>:<token>" with a PX TTL (lease.go)
//	cfg    hash   the queue's live settings: cartotal and cartotal_at (CAR's own Total for a
//	              Capacity-0 queue, and when it was read), cartotal_claim (who refreshes next)
//	up     hash   the reaper's outage watch (outage.go): seen, when a reaper last held or
//	              renewed the lease (ms); hold, until when reaping is held after an outage (ms);
//	              outages, how many were detected
//	rec    stream the departures (records.go), one entry per user who left, trimmed to RecordsMax
//	jt     zset   join checkpoints: first join sequence of each second -> that second's time
//	              (ms, as member), so a join time is found from a sequence without a field per
//	              queued user (records.go)
//	st     zset   holder -> its first heartbeat (ms): play time and MaxSession
//	hist   hash   per-minute counters of the last 24 h, "<minute>:<a|l|q|h>" (History)
//	etaerr list   recent first admissions' ETA error, "<ms>:<permille>", newest first
//	line:<lane>
//	       zset   the queued users of a priority lane other than the default (lanes.go), as
//	              line; the default lane is line itself
//	lock:<user>
//	       string the per-user CAR lock, a random token with a PX TTL (lock.go); one key per
//	              user, so it is the one key not in the fixed list the scripts are given. With
//	              Options.LockSpace set it is "cq:lock:<space>:{<user>}" instead: one key per
//	              user across every queue of the space, in the user's own hash slot
//
// Outside every queue, per user of a LockSpace (deployment.go):
//
//	cq:home:<space>:{<user>}  string the queue the user is in, a hint with a TTL (Homes)
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
	kReaper
	kTkg
	kCfg
	kUp
	kRec
	kJt
	kSt
	kHist
	kEtaErr
	kLs
	numKeys
)

// keyNames are the queue-wide keys' names; a script names key "x" as K_X (see assemble).
var keyNames = [numKeys]string{"line", "seen", "cs", "seq", "hold", "lease", "rdy", "act", "rel", "gone", "gr", "cnt", "rate", "reaper", "tkg", "cfg", "up", "rec", "jt", "st", "hist", "etaerr", "ls"}

func keyPrefix(queueID string) string { return "cq:{" + queueID + "}:" }

// laneKey is the line of a lane other than the default.
func laneKey(queueID, lane string) string { return keyPrefix(queueID) + "line:" + lane }

func queueKeys(queueID string) []string {
	out := make([]string, numKeys)
	for i, n := range keyNames {
		out[i] = keyPrefix(queueID) + n
	}
	return out
}

// lockKey is the per-user CAR lock. Without a lock space it shares the queue's hash tag though
// no script touches it with other keys, so a queue's keys stay together and a prefix scan
// finds them all; with one, it is the same key for the user in every queue of the space (the
// queues of one deployment share one CAR account, where a UserId has one session).
func lockKey(space, queueID, userID string) string {
	if space == "" {
		return keyPrefix(queueID) + "lock:" + userID
	}
	return "cq:lock:" + space + ":{" + userID + "}"
}

// homeKey is the per-user hint of which queue of the space the user is in (Homes).
func homeKey(space, userID string) string { return "cq:home:" + space + ":{" + userID + "}" }
