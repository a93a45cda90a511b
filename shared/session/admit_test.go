package session

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/carqueue/carqueue/shared/car"
	"github.com/carqueue/carqueue/shared/queue"
)

func TestAdmitByCARAnswer(t *testing.T) {
	noIdle := carErr(car.KindNoIdle, "ResourceNotFound.NoIdle")
	lockExp := carErr(car.KindLockExpired, "FailedOperation.LockTimeout")
	auth := carErr(car.KindAuth, "AuthFailure.SignatureFailure")
	ourFault := carErr(car.KindOurFault, "InvalidParameterValue")
	tests := []struct {
		name       string
		apply      []error
		create     []error
		empty      bool
		reattach   bool
		want       Outcome
		wantHalt   bool
		wantCause  error // errors.Is; nil: any non-nil cause unless Admitted
		wantCAR    []string
		wantQueue  []string
		wantServer string
	}{
		{name: "success", want: Admitted, wantCAR: []string{"Apply", "Create"}, wantQueue: []string{"MarkReady"}, wantServer: "server-session-u1"},
		{name: "apply NoIdle", apply: []error{noIdle}, want: Requeued, wantHalt: true, wantCause: noIdle, wantCAR: []string{"Apply"}, wantQueue: []string{"Requeue"}},
		{name: "apply busy", apply: []error{carErr(car.KindBusy, "FailedOperation.SlowDown")}, want: Requeued, wantHalt: true, wantCAR: []string{"Apply"}, wantQueue: []string{"Requeue"}},
		{name: "apply transient", apply: []error{carErr(car.KindTransient, "InternalError")}, want: Requeued, wantHalt: true, wantCAR: []string{"Apply"}, wantQueue: []string{"Requeue"}},
		{name: "apply rate limited", apply: []error{carErr(car.KindRateLimited, "RequestLimitExceeded")}, want: Requeued, wantHalt: true, wantCAR: []string{"Apply"}, wantQueue: []string{"Requeue"}},
		{name: "apply unknown error", apply: []error{errors.New("connection reset")}, want: Requeued, wantHalt: true, wantCAR: []string{"Apply"}, wantQueue: []string{"Requeue"}},
		{name: "apply deadline", apply: []error{context.DeadlineExceeded}, want: Requeued, wantHalt: true, wantCause: context.DeadlineExceeded, wantCAR: []string{"Apply"}, wantQueue: []string{"Requeue"}},
		{name: "apply our fault", apply: []error{ourFault}, want: Refused, wantCause: ourFault, wantCAR: []string{"Apply"}, wantQueue: []string{"Refuse(false)"}},
		{name: "apply auth halts", apply: []error{auth}, want: Refused, wantHalt: true, wantCause: auth, wantCAR: []string{"Apply"}, wantQueue: []string{"Refuse(false)"}},
		{name: "reattach auth refuses as locked", reattach: true, apply: []error{auth}, want: Refused, wantHalt: true, wantCAR: []string{"Apply"}, wantQueue: []string{"Refuse(true)"}},
		{name: "reattach our fault refuses as locked", reattach: true, apply: []error{ourFault}, want: Refused, wantCAR: []string{"Apply"}, wantQueue: []string{"Refuse(true)"}},
		{name: "create our fault after apply", create: []error{ourFault}, want: Refused, wantCause: ourFault, wantCAR: []string{"Apply", "Create"}, wantQueue: []string{"Refuse(true)"}},
		{name: "create auth after apply", create: []error{auth}, want: Refused, wantHalt: true, wantCAR: []string{"Apply", "Create"}, wantQueue: []string{"Refuse(true)"}},
		{name: "create transient", create: []error{carErr(car.KindTransient, "ResourceUnavailable.Initialization")}, want: Requeued, wantHalt: true, wantCAR: []string{"Apply", "Create"}, wantQueue: []string{"Requeue"}},
		{name: "create empty session", empty: true, want: Requeued, wantHalt: true, wantCause: ErrEmptySession, wantCAR: []string{"Apply", "Create"}, wantQueue: []string{"Requeue"}},
		{name: "create lock expired then ok", create: []error{lockExp}, want: Admitted, wantCAR: []string{"Apply", "Create", "Apply", "Create"}, wantQueue: []string{"MarkReady"}, wantServer: "server-session-u1"},
		{name: "create lock expired twice", create: []error{lockExp, lockExp}, want: Requeued, wantHalt: true, wantCause: lockExp, wantCAR: []string{"Apply", "Create", "Apply", "Create"}, wantQueue: []string{"Requeue"}},
		{name: "lock expired, reapply NoIdle", apply: []error{nil, noIdle}, create: []error{lockExp}, want: Requeued, wantHalt: true, wantCause: noIdle, wantCAR: []string{"Apply", "Create", "Apply"}, wantQueue: []string{"Requeue"}},
		{name: "lock expired, reapply auth refuses as locked", apply: []error{nil, auth}, create: []error{lockExp}, want: Refused, wantHalt: true, wantCause: auth, wantCAR: []string{"Apply", "Create", "Apply"}, wantQueue: []string{"Refuse(true)"}},
		{name: "create NotFound is transient", create: []error{carErr(car.KindNotFound, "ResourceNotFound")}, want: Requeued, wantHalt: true, wantCAR: []string{"Apply", "Create"}, wantQueue: []string{"Requeue"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			q := &fakeQueue{}
			f := &fakeCAR{apply: tt.apply, create: tt.create, empty: tt.empty}
			s := newService(t, q, f, testOptions(nil))
			c := queue.Claim{UserID: "u1", Client: queue.Client{IP: "203.0.113.7", Session: "cs|with|bars"}, Token: "tok", Reattach: tt.reattach}
			got, err := s.Admit(context.Background(), c)
			if err != nil {
				t.Fatalf("Admit error %v (result %+v): the queue recorded the result, so none is expected", err, got)
			}
			if got.Outcome != tt.want {
				t.Fatalf("outcome = %v, want %v (cause %v)", got.Outcome, tt.want, got.Cause)
			}
			if got.Halt != tt.wantHalt {
				t.Errorf("Halt = %v, want %v (outcome %v, cause %v)", got.Halt, tt.wantHalt, got.Outcome, got.Cause)
			}
			if got.ServerSession != tt.wantServer {
				t.Errorf("server session = %q, want %q", got.ServerSession, tt.wantServer)
			}
			if (got.Cause == nil) != (tt.want == Admitted) {
				t.Errorf("Cause = %v for outcome %v", got.Cause, got.Outcome)
			}
			if tt.wantCause != nil && !errors.Is(got.Cause, tt.wantCause) {
				t.Errorf("Cause = %v, want it to wrap %v", got.Cause, tt.wantCause)
			}
			if !slices.Equal(f.calls, tt.wantCAR) {
				t.Errorf("CAR calls = %v, want %v", f.calls, tt.wantCAR)
			}
			if !slices.Equal(q.calls, tt.wantQueue) {
				t.Errorf("queue calls = %v, want %v", q.calls, tt.wantQueue)
			}
			if tt.want == Admitted && q.marked != tt.wantServer {
				t.Errorf("MarkReady got %q, want %q", q.marked, tt.wantServer)
			}
			if q.locks != 1 || q.unlocks != 1 {
				t.Errorf("user lock taken %d, released %d; want 1 and 1", q.locks, q.unlocks)
			}
			if !slices.Equal(q.lockTTLs, []time.Duration{30 * time.Second}) {
				t.Errorf("lock TTLs = %v, want [LockTTL]", q.lockTTLs)
			}
			for _, in := range f.inputs {
				switch in := in.(type) {
				case car.ApplyConcurrentInput:
					if in.UserID != "u1" || in.UserIP != "203.0.113.7" {
						t.Errorf("apply input = %+v", in)
					}
				case car.CreateSessionInput:
					if in.UserID != "u1" || in.UserIP != "203.0.113.7" || in.ClientSession != "cs|with|bars" || in.RunMode != "RunWithoutClient" {
						t.Errorf("create input = %+v", in)
					}
				}
			}
		})
	}
}

func TestAdmitQueueAnswers(t *testing.T) {
	redisDown := errors.New("redis down")
	tests := []struct {
		name      string
		q         *fakeQueue
		create    []error
		want      Outcome
		wantHalt  bool
		wantCause error // errors.Is
		wantErr   error // errors.Is; nil: Admit must not fail
		wantQueue []string
		wantCAR   int
	}{
		{name: "user locked by another call", q: &fakeQueue{lockBusy: true}, want: Requeued, wantHalt: true, wantCause: ErrUserBusy, wantQueue: []string{"Requeue"}},
		{name: "lock error", q: &fakeQueue{lockErr: redisDown}, want: Requeued, wantHalt: true, wantCause: redisDown, wantQueue: []string{"Requeue"}},
		{name: "mark ready lease lost", q: &fakeQueue{markErr: queue.ErrLeaseLost}, want: LeaseLost, wantCause: queue.ErrLeaseLost, wantQueue: []string{"MarkReady"}, wantCAR: 2},
		{name: "mark ready redis error", q: &fakeQueue{markErr: errors.New("i/o timeout")}, want: Requeued, wantHalt: true, wantQueue: []string{"MarkReady", "Requeue"}, wantCAR: 2},
		{name: "requeue lease lost", q: &fakeQueue{requeueErr: queue.ErrLeaseLost}, create: []error{carErr(car.KindTransient, "InternalError")}, want: LeaseLost, wantCause: queue.ErrLeaseLost, wantQueue: []string{"Requeue"}, wantCAR: 2},
		{name: "requeue fails", q: &fakeQueue{requeueErr: redisDown}, create: []error{carErr(car.KindNoIdle, "ResourceNotFound.NoIdle")}, want: Requeued, wantHalt: true, wantErr: redisDown, wantQueue: []string{"Requeue"}, wantCAR: 2},
		{name: "refuse lease lost", q: &fakeQueue{refuseErr: queue.ErrLeaseLost}, create: []error{carErr(car.KindAuth, "AuthFailure")}, want: LeaseLost, wantCause: queue.ErrLeaseLost, wantQueue: []string{"Refuse(true)"}, wantCAR: 2},
		{name: "refuse fails", q: &fakeQueue{refuseErr: redisDown}, create: []error{carErr(car.KindAuth, "AuthFailure")}, want: Refused, wantHalt: true, wantErr: redisDown, wantQueue: []string{"Refuse(true)"}, wantCAR: 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := &fakeCAR{create: tt.create}
			s := newService(t, tt.q, f, testOptions(nil))
			got, err := s.Admit(context.Background(), queue.Claim{UserID: "u1", Client: queue.Client{Session: "raw-session"}, Token: "t"})
			switch {
			case tt.wantErr == nil && err != nil:
				t.Fatalf("Admit error %v (result %+v), want none", err, got)
			case tt.wantErr != nil && !errors.Is(err, tt.wantErr):
				t.Fatalf("Admit error %v, want it to wrap %v", err, tt.wantErr)
			}
			if got.Outcome != tt.want {
				t.Fatalf("outcome = %v, want %v (cause %v)", got.Outcome, tt.want, got.Cause)
			}
			if got.Halt != tt.wantHalt {
				t.Errorf("Halt = %v, want %v", got.Halt, tt.wantHalt)
			}
			if got.Cause == nil || (tt.wantCause != nil && !errors.Is(got.Cause, tt.wantCause)) {
				t.Errorf("Cause = %v, want it set (wrapping %v)", got.Cause, tt.wantCause)
			}
			if !slices.Equal(tt.q.calls, tt.wantQueue) {
				t.Errorf("queue calls = %v, want %v", tt.q.calls, tt.wantQueue)
			}
			if len(f.calls) != tt.wantCAR {
				t.Errorf("CAR calls = %v, want %d", f.calls, tt.wantCAR)
			}
			if tt.q.locks != tt.q.unlocks {
				t.Errorf("lock taken %d, released %d", tt.q.locks, tt.q.unlocks)
			}
		})
	}
}

func TestAdmitWithoutStoredIPUsesDefault(t *testing.T) {
	f := &fakeCAR{}
	s := newService(t, &fakeQueue{}, f, testOptions(nil))
	res, err := s.Admit(context.Background(), queue.Claim{UserID: "u", Client: queue.Client{Session: "plain"}})
	if err != nil || res.Outcome != Admitted {
		t.Fatalf("admit: %+v %v", res, err)
	}
	if in := f.inputs[0].(car.ApplyConcurrentInput); in.UserIP != DefaultUserIP {
		t.Errorf("apply input = %+v, want UserIP %s", in, DefaultUserIP)
	}
	if in := f.inputs[1].(car.CreateSessionInput); in.UserIP != DefaultUserIP || in.ClientSession != "plain" {
		t.Errorf("create input = %+v", in)
	}
}

// A cancelled caller must still leave the queue told: the bookkeeping runs detached (the fake
// queue fails on a done context, as Redis would).
func TestAdmitCancelledContextStillRequeues(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	q := &fakeQueue{}
	s := newService(t, q, &fakeCAR{apply: []error{context.Canceled}}, testOptions(nil))
	res, err := s.Admit(ctx, queue.Claim{UserID: "u"})
	if err != nil || res.Outcome != Requeued || !res.Halt || !errors.Is(res.Cause, context.Canceled) {
		t.Fatalf("admit: %+v err %v, want Requeued with cause context.Canceled", res, err)
	}
	if !slices.Equal(q.calls, []string{"Requeue"}) {
		t.Fatalf("queue calls %v", q.calls)
	}
}

// A caller cancelled after CAR created the session: MarkReady must still be recorded.
func TestAdmitCancelledContextStillMarksReady(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	q := &fakeQueue{}
	f := &cancellingCAR{cancel: cancel}
	s := newService(t, q, f, testOptions(nil))
	res, err := s.Admit(ctx, queue.Claim{UserID: "u"})
	if err != nil || res.Outcome != Admitted || q.marked != "ss-u" {
		t.Fatalf("admit: %+v err %v marked %q", res, err, q.marked)
	}
}

// cancellingCAR cancels its caller's context while creating the session.
type cancellingCAR struct {
	fakeCAR
	cancel context.CancelFunc
}

func (c *cancellingCAR) CreateSession(ctx context.Context, in car.CreateSessionInput) (string, error) {
	c.cancel()
	return "ss-" + in.UserID, nil
}

func TestRelease(t *testing.T) {
	redisDown := errors.New("redis down")
	tests := []struct {
		name      string
		q         *fakeQueue
		destroy   []error
		wantFail  bool
		wantErr   error    // errors.Is, when set
		wantKind  car.Kind // car.KindOf, when set
		wantCAR   int
		wantQueue []string
	}{
		{name: "confirmed", q: &fakeQueue{state: queue.StateReleasing}, wantCAR: 1, wantQueue: []string{"Released"}},
		{name: "not found counts as confirmed", q: &fakeQueue{state: queue.StateReleasing}, destroy: []error{carErr(car.KindNotFound, "ResourceNotFound.SessionNotFound")}, wantCAR: 1, wantQueue: []string{"Released"}},
		{name: "transient keeps releasing", q: &fakeQueue{state: queue.StateReleasing}, destroy: []error{carErr(car.KindTransient, "InternalError")}, wantFail: true, wantKind: car.KindTransient, wantCAR: 1, wantQueue: []string{"RetryRelease"}},
		{name: "rate limited keeps releasing", q: &fakeQueue{state: queue.StateReleasing}, destroy: []error{carErr(car.KindRateLimited, "RequestLimitExceeded")}, wantFail: true, wantKind: car.KindRateLimited, wantCAR: 1, wantQueue: []string{"RetryRelease"}},
		{name: "auth keeps releasing", q: &fakeQueue{state: queue.StateReleasing}, destroy: []error{carErr(car.KindAuth, "AuthFailure")}, wantFail: true, wantKind: car.KindAuth, wantCAR: 1, wantQueue: []string{"RetryRelease"}},
		{name: "already released", q: &fakeQueue{state: queue.StateNone}},
		{name: "readmitted meanwhile is not destroyed", q: &fakeQueue{state: queue.StateActive}},
		{name: "user busy", q: &fakeQueue{lockBusy: true, state: queue.StateReleasing}, wantFail: true, wantErr: ErrUserBusy},
		{name: "lock error", q: &fakeQueue{lockErr: redisDown, state: queue.StateReleasing}, wantFail: true, wantErr: redisDown},
		{name: "retry not recorded still fails", q: &fakeQueue{state: queue.StateReleasing, retryErr: redisDown}, destroy: []error{carErr(car.KindTransient, "InternalError")}, wantFail: true, wantKind: car.KindTransient, wantCAR: 1, wantQueue: []string{"RetryRelease"}},
		{name: "released raced", q: &fakeQueue{state: queue.StateReleasing, releasedErr: queue.ErrNotHolding}, wantCAR: 1, wantQueue: []string{"Released"}},
		{name: "released redis error", q: &fakeQueue{state: queue.StateReleasing, releasedErr: redisDown}, wantFail: true, wantErr: redisDown, wantCAR: 1, wantQueue: []string{"Released"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := &fakeCAR{destroy: tt.destroy}
			s := newService(t, tt.q, f, testOptions(nil))
			err := s.Release(context.Background(), "u1")
			if (err != nil) != tt.wantFail {
				t.Fatalf("err = %v, want an error: %v", err, tt.wantFail)
			}
			if tt.wantErr != nil && !errors.Is(err, tt.wantErr) {
				t.Errorf("err = %v, want it to wrap %v", err, tt.wantErr)
			}
			if tt.wantKind != car.KindUnknown && car.KindOf(err) != tt.wantKind {
				t.Errorf("err kind = %v, want %v", car.KindOf(err), tt.wantKind)
			}
			if len(f.calls) != tt.wantCAR {
				t.Errorf("CAR calls = %v, want %d", f.calls, tt.wantCAR)
			}
			if !slices.Equal(tt.q.calls, tt.wantQueue) {
				t.Errorf("queue calls = %v, want %v", tt.q.calls, tt.wantQueue)
			}
			if tt.q.locks != tt.q.unlocks {
				t.Errorf("lock taken %d, released %d", tt.q.locks, tt.q.unlocks)
			}
			for _, r := range tt.q.retries {
				if r != [2]time.Duration{5 * time.Second, time.Minute} {
					t.Errorf("RetryRelease backoff %v, want ReleaseRetryMin and ReleaseRetryMax", r)
				}
			}
		})
	}
}

// A failed DestroySession is recorded even when the caller gave up meanwhile.
func TestReleaseRecordsTheFailureDetached(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	q := &fakeQueue{state: queue.StateReleasing}
	f := &cancellingDestroy{cancel: cancel}
	s := newService(t, q, f, testOptions(nil))
	if err := s.Release(ctx, "u1"); err == nil {
		t.Fatal("release succeeded with CAR failing")
	}
	if !slices.Equal(q.calls, []string{"RetryRelease"}) || len(q.retries) != 1 {
		t.Fatalf("queue calls %v, retries %v: want the failure recorded", q.calls, q.retries)
	}
}

// cancellingDestroy cancels its caller's context and fails DestroySession.
type cancellingDestroy struct {
	fakeCAR
	cancel context.CancelFunc
}

func (c *cancellingDestroy) DestroySession(ctx context.Context, userID string) error {
	c.cancel()
	return carErr(car.KindTransient, "InternalError")
}

func TestOutcomeString(t *testing.T) {
	for o, want := range map[Outcome]string{Admitted: "admitted", Requeued: "requeued", Refused: "refused", LeaseLost: "lease_lost", Outcome(99): "unknown"} {
		if o.String() != want {
			t.Errorf("%d.String() = %q, want %q", o, o.String(), want)
		}
	}
}

// CAR calls under the per-user lock must end before the lock can lapse: each is bounded by
// Options.CARBudget, which New keeps under LockTTL.
func TestCARCallsEndBeforeTheUserLockLapses(t *testing.T) {
	o := testOptions(nil)
	o.LockTTL, o.CARBudget = 12*time.Second, 10*time.Second
	f := &fakeCAR{create: []error{carErr(car.KindLockExpired, "FailedOperation.LockTimeout")}}
	q := &fakeQueue{state: queue.StateReleasing}
	s := newService(t, q, f, o)
	before := time.Now()
	if res, err := s.Admit(context.Background(), queue.Claim{UserID: "u"}); err != nil || res.Outcome != Admitted {
		t.Fatalf("admit: %+v %v", res, err)
	}
	if err := s.Release(context.Background(), "u"); err != nil {
		t.Fatal(err)
	}
	// Every deadline was set during the test, so it is at most CARBudget after now; and the
	// calls of one admission share one budget (the retry after LockTimeout gets no fresh one).
	limit := time.Now().Add(o.CARBudget)
	if !slices.Equal(f.calls, []string{"Apply", "Create", "Apply", "Create", "Destroy"}) {
		t.Fatalf("CAR calls %v", f.calls)
	}
	for i, d := range f.deadlines {
		if d.IsZero() || d.After(limit) || d.Before(before) {
			t.Errorf("%s deadline %v, want set and within CARBudget (%v … %v)", f.calls[i], d, before, limit)
		}
	}
	if first := f.deadlines[0]; !f.deadlines[3].Equal(first) {
		t.Errorf("the second CreateSession has deadline %v, want the admission's %v", f.deadlines[3], first)
	}
	if !slices.Equal(q.lockTTLs, []time.Duration{o.LockTTL, o.LockTTL}) {
		t.Errorf("lock TTLs %v, want LockTTL for both", q.lockTTLs)
	}
}

func TestNewChecksOptions(t *testing.T) {
	good := testOptions(nil)
	tests := []struct {
		name string
		edit func(*Options)
		want string
	}{
		{"no LockTTL", func(o *Options) { o.LockTTL = 0 }, "LockTTL"},
		{"no CARBudget", func(o *Options) { o.CARBudget = 0 }, "CARBudget"},
		{"CARBudget not under LockTTL", func(o *Options) { o.CARBudget = o.LockTTL }, "CARBudget"},
		{"no HeartbeatInterval", func(o *Options) { o.HeartbeatInterval = 0 }, "HeartbeatInterval"},
		{"no HeartbeatTimeout", func(o *Options) { o.HeartbeatTimeout = -time.Second }, "HeartbeatTimeout"},
		{"no PollMin", func(o *Options) { o.PollMin = 0 }, "PollMin"},
		{"no PollMax", func(o *Options) { o.PollMax = 0 }, "PollMax"},
		{"PollMax under PollMin", func(o *Options) { o.PollMax = o.PollMin / 2 }, "PollMax"},
		{"no StopWait", func(o *Options) { o.StopWait = 0 }, "StopWait"},
		{"no ReleaseRetryMin", func(o *Options) { o.ReleaseRetryMin = 0 }, "ReleaseRetryMin"},
		{"no ReleaseRetryMax", func(o *Options) { o.ReleaseRetryMax = 0 }, "ReleaseRetryMax"},
		{"ReleaseRetryMax under ReleaseRetryMin", func(o *Options) { o.ReleaseRetryMax = o.ReleaseRetryMin / 2 }, "ReleaseRetryMax"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o := good
			tt.edit(&o)
			if _, err := New(&fakeQueue{}, &fakeCAR{}, o); err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("New: %v, want an error naming %s", err, tt.want)
			}
		})
	}
	if _, err := New(nil, &fakeCAR{}, good); err == nil {
		t.Error("New accepted a nil queue")
	}
	if _, err := New(&fakeQueue{}, nil, good); err == nil {
		t.Error("New accepted a nil CAR client")
	}
	s, err := New(&fakeQueue{}, &fakeCAR{}, Options{LockTTL: 2, CARBudget: 1, HeartbeatInterval: 1, HeartbeatTimeout: 1, PollMin: 1, PollMax: 1,
		StopWait: 1, ReleaseRetryMin: 1, ReleaseRetryMax: 1})
	if err != nil || s.opts.Logger == nil || s.opts.Now == nil || s.opts.Jitter == nil {
		t.Fatalf("New with defaults: %v %+v", err, s)
	}
}
