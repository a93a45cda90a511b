package queue

import (
	"context"
	"errors"
	"time"
)

// The operator's side of a queue (API.md second edition, "Operator routes", "Priority lanes",
// "Scheduled opening", "Session limits and records"). Every control is a field of the
// queue's cfg hash, read by the scripts that act on it (claim reads paused and capacity), so
// every instance sees a change at once.

// More reasons a user leaves.
const (
	ReasonKicked    Reason = "kicked"     // an operator's /admin/kick
	ReasonTimeLimit Reason = "time_limit" // the session reached MaxSession
)

// DefaultLane is the lane of a user who came without a grant naming another.
const DefaultLane = "default"

// Lane is one priority lane of a queue: of every sum-of-weights admissions, up to Weight come
// from this lane while it has users.
type Lane struct {
	Name   string // 1-32 chars of [a-z0-9_-]; DefaultLane must be one of a queue's lanes
	Weight int    // 1-100
}

// ErrNotImplemented marks an operator feature whose queue side has not landed yet.
var ErrNotImplemented = errors.New("queue: not implemented yet")

// Controls are the operator's live settings of a queue.
type Controls struct {
	Paused bool
	Notice string // "" when none
	// Capacity is the live capacity override (/admin/capacity); CapacitySet false: none, the
	// configured Capacity applies.
	Capacity    int
	CapacitySet bool
}

// Holder is one user holding a slot, for /admin/sessions.
type Holder struct {
	UserID     string
	State      State
	Lane       string
	JoinedAt   time.Time // zero when unknown
	AdmittedAt time.Time // zero while Admitting for the first time
	StartedAt  time.Time // first heartbeat; zero before it
}

// Record is one departure (API.md "Session records"). Zero times are "never happened".
type Record struct {
	ID                                       string // the stream id: the cursor of /admin/records
	UserID, Lane                             string
	JoinedAt, AdmittedAt, StartedAt, EndedAt time.Time
	Reason                                   Reason
	// FirstETA is the wait the user was first told (0: none was given).
	FirstETA time.Duration
}

// Minute is one minute of a queue's history (History).
type Minute struct {
	At       time.Time // the minute's start
	Admitted int64     // first admissions in the minute
	Left     int64     // departures (any reason)
	Queued   int64     // line length as last sampled in the minute (-1: not sampled)
	Holding  int64     // slots held as last sampled (-1: not sampled)
}

// Controls reads the operator's live settings (one round trip).
func (q *Queue) Controls(ctx context.Context) (Controls, error) { return Controls{}, ErrNotImplemented }

// SetPaused stops (true) or resumes (false) admission. Queued users keep their places.
func (q *Queue) SetPaused(ctx context.Context, paused bool) error { return ErrNotImplemented }

// SetNotice sets the notice shown to every user of the queue; "" clears it.
func (q *Queue) SetNotice(ctx context.Context, notice string) error { return ErrNotImplemented }

// SetCapacity overrides the capacity live (n >= 0); lowering it ends no session.
func (q *Queue) SetCapacity(ctx context.Context, n int) error { return ErrNotImplemented }

// ResetCapacity drops the override: the configured Capacity applies again.
func (q *Queue) ResetCapacity(ctx context.Context) error { return ErrNotImplemented }

// Kick removes a user: a queued one leaves (gone, kicked); a holder starts releasing (reason
// kicked) and the caller must DestroySession it, as after Stop. It returns the state before.
func (q *Queue) Kick(ctx context.Context, userID string) (State, error) {
	return StateNone, ErrNotImplemented
}

// Holders lists up to limit users holding a slot.
func (q *Queue) Holders(ctx context.Context, limit int) ([]Holder, error) {
	return nil, ErrNotImplemented
}

// Records pages the departures, oldest first: up to limit after the cursor after ("" from the
// oldest kept); next is the cursor for the following page ("" when there is none yet, then
// the caller keeps its own cursor).
func (q *Queue) Records(ctx context.Context, after string, limit int) (recs []Record, next string, err error) {
	return nil, "", ErrNotImplemented
}

// Undelivered lists up to limit records after the webhook's cursor, oldest first.
func (q *Queue) Undelivered(ctx context.Context, limit int) ([]Record, error) {
	return nil, ErrNotImplemented
}

// Delivered moves the webhook's cursor to id (a record Undelivered returned): everything up to
// it was delivered.
func (q *Queue) Delivered(ctx context.Context, id string) error { return ErrNotImplemented }

// History returns the per-minute counters from since to now, oldest first (at most 24 h).
func (q *Queue) History(ctx context.Context, since time.Time) ([]Minute, error) {
	return nil, ErrNotImplemented
}
