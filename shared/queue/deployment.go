package queue

import (
	"context"
	"fmt"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"
)

// What the queues of one deployment share: a hint of which queue each user is in (Homes), a
// read-only look at a user's state (StateOf), CAR's Total for Capacity-0 queues, and one
// pipelined probe that tells the reaper which queues have anything to do (Due).

// stateScript reads a user's state without touching it. ARGV: user. Reply: state (” unknown).
var stateScript = newScript("state", `
local st = redis.call('HGET', K_HOLD, 's:' .. ARGV[1])
if st then return st end
if find_lane(ARGV[1]) then return 'Queued' end
return ''
`)

// StateOf reports where the user stands in this queue (StateNone: not in it), changing
// nothing: another queue asks before it lets the user in.
func (q *Queue) StateOf(ctx context.Context, userID string) (State, error) {
	if err := checkUser(userID); err != nil {
		return StateNone, fmt.Errorf("state of user: %w", err)
	}
	v, err := q.run(ctx, stateScript, userID)
	if err != nil {
		return StateNone, fmt.Errorf("state of user %s: %w", userID, err)
	}
	return State(replyString(v)), nil
}

// carTotalDueScript says whether this caller should read CAR's Total now: none stored, or
// older than every, and nobody else claimed the refresh within the last every/2.
// ARGV: now, everyMs. Reply: 1 or 0.
var carTotalDueScript = newScript("car_total_due", `
local now, every = tonumber(ARGV[1]), tonumber(ARGV[2])
local at = tonumber(redis.call('HGET', K_CFG, 'cartotal_at') or '0')
if now - at < every then return 0 end
if tonumber(redis.call('HGET', K_CFG, 'cartotal_claim') or '0') > now then return 0 end
redis.call('HSET', K_CFG, 'cartotal_claim', now + math.floor(every / 2))
return 1
`)

// setCARTotalScript stores CAR's Total. ARGV: total, now.
var setCARTotalScript = newScript("set_car_total", `
redis.call('HSET', K_CFG, 'cartotal', ARGV[1], 'cartotal_at', ARGV[2])
redis.call('HDEL', K_CFG, 'cartotal_claim')
return 1
`)

// CARTotalDue reports whether the caller should read CAR's Total for this Capacity-0 queue
// now (none stored or older than every); true claims the refresh for every/2, so of many
// instances one asks CAR. Always false for a queue with a configured capacity.
func (q *Queue) CARTotalDue(ctx context.Context, every time.Duration) (bool, error) {
	if q.opts.Capacity != 0 {
		return false, nil
	}
	v, err := q.run(ctx, carTotalDueScript, q.nowMS(), ms(every))
	if err != nil {
		return false, fmt.Errorf("car total due: %w", err)
	}
	return replyInt(v) == 1, nil
}

// SetCARTotal stores CAR's Total for this Capacity-0 queue: the capacity claims use from now.
func (q *Queue) SetCARTotal(ctx context.Context, total int) error {
	if total < 0 {
		return fmt.Errorf("set car total: %d must be >= 0: %w", total, ErrInvalid)
	}
	if _, err := q.run(ctx, setCARTotalScript, total, q.nowMS()); err != nil {
		return fmt.Errorf("set car total %d: %w", total, err)
	}
	return nil
}

// Work is what Due found a queue needs.
type Work struct {
	Users    bool // someone is queued or holds a slot, or a departure is to be forgotten
	CARTotal bool // a Capacity-0 queue whose CAR Total is missing or older than the refresh
	// Records: records the webhook has not delivered (only for a queue whose
	// Options.Deliver is set).
	Records bool
}

// Pipeliner is what Due and the batched calls need of a client besides scripts: a pipeline
// (on a cluster, one per primary: route.go, so a probe of many queues costs one round trip
// per primary).
type Pipeliner interface {
	Scripter
	Pipeline() redis.Pipeliner
}

// Due probes every queue in one pipeline and reports, in order, what each needs, so a reaper
// pass over many queues of which most are empty costs a round trip per Redis primary and, per
// queue, two plain commands (no Lua: an idle queue is the common case, and a script call costs
// several times a command): EXISTS over the line and the holder sets (Redis drops an empty
// set, so 0 means nobody is queued or holds a slot), and the earliest departure to forget; a
// Capacity-0 queue adds when CAR's Total was read, and one whose records are delivered
// (Options.Deliver) how many were written and delivered. carEvery is how old that may get.
func Due(ctx context.Context, rdb Pipeliner, qs []*Queue, carEvery time.Duration) ([]Work, error) {
	if len(qs) == 0 {
		return nil, nil
	}
	type probe struct {
		users     *redis.IntCmd
		gone      *redis.ZSliceCmd
		at        *redis.StringCmd
		written   *redis.StringCmd
		delivered *redis.StringCmd
	}
	probes := make([]probe, len(qs))
	units := make([]unit, len(qs))
	for i, q := range qs {
		k, pr := q.keys, &probes[i]
		units[i] = unit{key: k[kLine], add: func(p redis.Pipeliner) {
			pr.users = p.Exists(ctx, append([]string{k[kLine], k[kLease], k[kRdy], k[kAct], k[kRel], k[kLs], k[kSeen]}, q.laneKeys...)...)
			pr.gone = p.ZRangeWithScores(ctx, k[kGone], 0, 0)
			if q.opts.Capacity == 0 {
				pr.at = p.HGet(ctx, k[kCfg], "cartotal_at")
			}
			if q.opts.Deliver {
				pr.written = p.HGet(ctx, k[kCnt], "records")
				pr.delivered = p.HGet(ctx, k[kCfg], "whn")
			}
		}}
	}
	if err := sendUnits(ctx, rdb, units); err != nil {
		return nil, fmt.Errorf("probe %d queues: %w", len(qs), err)
	}
	out := make([]Work, len(qs))
	for i, q := range qs {
		now := q.nowMS()
		pr := probes[i]
		out[i].Users = pr.users.Val() > 0
		if g := pr.gone.Val(); len(g) > 0 && int64(g[0].Score) <= now {
			out[i].Users = true // a departure to forget: the reap does it
		}
		if pr.at != nil {
			at, _ := strconv.ParseInt(pr.at.Val(), 10, 64)
			out[i].CARTotal = now-at >= ms(carEvery)
		}
		if pr.written != nil {
			w, _ := strconv.ParseInt(pr.written.Val(), 10, 64)
			d, _ := strconv.ParseInt(pr.delivered.Val(), 10, 64)
			out[i].Records = w > d
		}
	}
	return out, nil
}

// Homes keeps, per user of a lock space, a hint of which queue the user is in, so a user in
// one queue is not let into another (in one CAR account a UserId has one session: CAR's
// DestroySession names no project). It is a hint, checked against the queue it names
// (StateOf): the queues' scripts cannot update it (on a cluster it lives in the user's hash
// slot, not the queue's), so it outlives a departure and is then taken over. Its TTL bounds
// what is kept of users who never come back.
type Homes struct {
	rdb   Scripter
	space string
	ttl   time.Duration
}

// NewHomes returns the homes of a lock space; ttl is how long a hint outlives the last Enter.
func NewHomes(rdb Scripter, space string, ttl time.Duration) (*Homes, error) {
	switch {
	case rdb == nil:
		return nil, fmt.Errorf("new homes: redis client is nil: %w", ErrInvalid)
	case !queueIDPattern.MatchString(space):
		return nil, fmt.Errorf("new homes: space %q must be 1-64 chars of [A-Za-z0-9_.:-]: %w", space, ErrInvalid)
	case ttl < time.Second:
		return nil, fmt.Errorf("new homes: ttl %v must be >= 1s: %w", ttl, ErrInvalid)
	}
	return &Homes{rdb: rdb, space: space, ttl: ttl}, nil
}

// enterScript records queue ARGV[1] as the user's home unless another is recorded, or moves
// it from ARGV[3] (when given) to ARGV[1]. KEYS: home key. ARGV: queue, ttlMs, from.
// Reply: ” when recorded, else the queue recorded.
var enterScript = newKeyedScript("home_enter", `local cur = redis.call('GET', KEYS[1])
if cur and cur ~= ARGV[1] and cur ~= ARGV[3] then return cur end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
return ''
`)

// Enter records queueID as the user's home and returns "", or returns the other queue the
// hint names (then nothing changed). from, when not "", is a queue the caller found the user
// has left: a hint naming it is replaced.
func (h *Homes) Enter(ctx context.Context, userID, queueID, from string) (string, error) {
	if err := checkUser(userID); err != nil {
		return "", fmt.Errorf("enter home: %w", err)
	}
	v, err := enterScript.s.Run(ctx, h.rdb, []string{homeKey(h.space, userID)}, queueID, ms(h.ttl), from).Result()
	if err != nil && err != redis.Nil {
		return "", fmt.Errorf("enter home of user %s in queue %s: %w", userID, queueID, err)
	}
	return replyString(v), nil
}
