package admission

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"slices"
	"testing"
	"time"

	"github.com/carqueue/carqueue/shared/car"
	"github.com/carqueue/carqueue/shared/queue"
)

func quietLogger() *slog.Logger { return slog.New(slog.NewJSONHandler(io.Discard, nil)) }

func TestAdmitByCARAnswer(t *testing.T) {
	noIdle := carErr(car.KindNoIdle, "ResourceNotFound.NoIdle")
	lockExp := carErr(car.KindLockExpired, "FailedOperation.LockTimeout")
	tests := []struct {
		name       string
		apply      []error
		create     []error
		reattach   bool
		want       Outcome
		wantCAR    []string
		wantQueue  []string
		wantErrIs  error
		wantServer string
	}{
		{name: "success", want: Admitted, wantCAR: []string{"Apply", "Create"}, wantQueue: []string{"MarkReady"}, wantServer: "server-session-u1"},
		{name: "apply NoIdle", apply: []error{noIdle}, want: Requeued, wantCAR: []string{"Apply"}, wantQueue: []string{"Requeue"}, wantErrIs: noIdle},
		{name: "apply busy", apply: []error{carErr(car.KindBusy, "FailedOperation.SlowDown")}, want: Requeued, wantCAR: []string{"Apply"}, wantQueue: []string{"Requeue"}},
		{name: "apply transient", apply: []error{carErr(car.KindTransient, "InternalError")}, want: Requeued, wantCAR: []string{"Apply"}, wantQueue: []string{"Requeue"}},
		{name: "apply rate limited", apply: []error{carErr(car.KindRateLimited, "RequestLimitExceeded")}, want: Requeued, wantCAR: []string{"Apply"}, wantQueue: []string{"Requeue"}},
		{name: "apply unknown error", apply: []error{errors.New("connection reset")}, want: Requeued, wantCAR: []string{"Apply"}, wantQueue: []string{"Requeue"}},
		{name: "apply deadline", apply: []error{context.DeadlineExceeded}, want: Requeued, wantCAR: []string{"Apply"}, wantQueue: []string{"Requeue"}, wantErrIs: context.DeadlineExceeded},
		{name: "apply our fault", apply: []error{carErr(car.KindOurFault, "InvalidParameter")}, want: Refused, wantCAR: []string{"Apply"}, wantQueue: []string{"Refuse(false)"}},
		{name: "apply auth", apply: []error{carErr(car.KindAuth, "AuthFailure.SignatureFailure")}, want: Refused, wantCAR: []string{"Apply"}, wantQueue: []string{"Refuse(false)"}},
		{name: "reattach auth refuses as locked", reattach: true, apply: []error{carErr(car.KindAuth, "AuthFailure")}, want: Refused, wantCAR: []string{"Apply"}, wantQueue: []string{"Refuse(true)"}},
		{name: "create our fault after apply", create: []error{carErr(car.KindOurFault, "InvalidParameterValue")}, want: Refused, wantCAR: []string{"Apply", "Create"}, wantQueue: []string{"Refuse(true)"}},
		{name: "create transient", create: []error{carErr(car.KindTransient, "ResourceUnavailable.Initialization")}, want: Requeued, wantCAR: []string{"Apply", "Create"}, wantQueue: []string{"Requeue"}},
		{name: "create lock expired then ok", create: []error{lockExp}, want: Admitted, wantCAR: []string{"Apply", "Create", "Apply", "Create"}, wantQueue: []string{"MarkReady"}, wantServer: "server-session-u1"},
		{name: "create lock expired twice", create: []error{lockExp, lockExp}, want: Requeued, wantCAR: []string{"Apply", "Create", "Apply", "Create"}, wantQueue: []string{"Requeue"}, wantErrIs: lockExp},
		{name: "lock expired, reapply NoIdle", apply: []error{nil, noIdle}, create: []error{lockExp}, want: Requeued, wantCAR: []string{"Apply", "Create", "Apply"}, wantQueue: []string{"Requeue"}, wantErrIs: noIdle},
		{name: "create NotFound is transient", create: []error{carErr(car.KindNotFound, "ResourceNotFound")}, want: Requeued, wantCAR: []string{"Apply", "Create"}, wantQueue: []string{"Requeue"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			q := &fakeQueue{}
			f := &fakeCAR{apply: tt.apply, create: tt.create}
			a := &Admitter{Queue: q, CAR: f, Logger: quietLogger(), RunMode: "RunWithoutClient"}
			c := queue.Claim{UserID: "u1", ClientSession: Pack("203.0.113.7", "cs|with|bars"), Token: "tok", Reattach: tt.reattach}
			got, ss, err := a.Admit(context.Background(), c)
			if got != tt.want {
				t.Fatalf("outcome = %v, want %v (err %v)", got, tt.want, err)
			}
			if ss != tt.wantServer {
				t.Errorf("server session = %q, want %q", ss, tt.wantServer)
			}
			if (err == nil) != (tt.want == Admitted) {
				t.Errorf("err = %v for outcome %v", err, got)
			}
			if tt.wantErrIs != nil && !errors.Is(err, tt.wantErrIs) {
				t.Errorf("err = %v, want it to wrap %v", err, tt.wantErrIs)
			}
			if !slices.Equal(f.calls, tt.wantCAR) {
				t.Errorf("CAR calls = %v, want %v", f.calls, tt.wantCAR)
			}
			if !slices.Equal(q.calls, tt.wantQueue) {
				t.Errorf("queue calls = %v, want %v", q.calls, tt.wantQueue)
			}
			if q.locks != 1 || q.unlocks != 1 {
				t.Errorf("user lock taken %d, released %d; want 1 and 1", q.locks, q.unlocks)
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
	tests := []struct {
		name      string
		q         *fakeQueue
		create    []error
		want      Outcome
		wantQueue []string
		wantCAR   int
	}{
		{name: "user locked by another call", q: &fakeQueue{lockBusy: true}, want: Requeued, wantQueue: []string{"Requeue"}},
		{name: "lock error", q: &fakeQueue{lockErr: errors.New("redis down")}, want: Requeued, wantQueue: []string{"Requeue"}},
		{name: "mark ready lease lost", q: &fakeQueue{markErr: queue.ErrLeaseLost}, want: LeaseLost, wantQueue: []string{"MarkReady"}, wantCAR: 2},
		{name: "mark ready redis error", q: &fakeQueue{markErr: errors.New("i/o timeout")}, want: Requeued, wantQueue: []string{"MarkReady", "Requeue"}, wantCAR: 2},
		{name: "requeue lease lost", q: &fakeQueue{requeueErr: queue.ErrLeaseLost}, create: []error{carErr(car.KindTransient, "InternalError")}, want: LeaseLost, wantQueue: []string{"Requeue"}, wantCAR: 2},
		{name: "requeue fails", q: &fakeQueue{requeueErr: errors.New("redis down")}, create: []error{carErr(car.KindNoIdle, "ResourceNotFound.NoIdle")}, want: Requeued, wantQueue: []string{"Requeue"}, wantCAR: 2},
		{name: "refuse lease lost", q: &fakeQueue{refuseErr: queue.ErrLeaseLost}, create: []error{carErr(car.KindAuth, "AuthFailure")}, want: LeaseLost, wantQueue: []string{"Refuse(true)"}, wantCAR: 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := &fakeCAR{create: tt.create}
			a := &Admitter{Queue: tt.q, CAR: f, Logger: quietLogger()}
			got, _, err := a.Admit(context.Background(), queue.Claim{UserID: "u1", ClientSession: "raw-session", Token: "t"})
			if got != tt.want {
				t.Fatalf("outcome = %v, want %v (err %v)", got, tt.want, err)
			}
			if err == nil {
				t.Errorf("want an error with outcome %v", got)
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
	a := &Admitter{Queue: &fakeQueue{}, CAR: f, Logger: quietLogger()}
	if o, _, err := a.Admit(context.Background(), queue.Claim{UserID: "u", ClientSession: "plain"}); o != Admitted {
		t.Fatalf("outcome %v err %v", o, err)
	}
	in := f.inputs[1].(car.CreateSessionInput)
	if in.UserIP != DefaultUserIP || in.ClientSession != "plain" {
		t.Fatalf("create input = %+v", in)
	}
}

// A cancelled caller must still leave the queue told: the bookkeeping runs detached.
func TestAdmitCancelledContextStillRequeues(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	q := &fakeQueue{}
	a := &Admitter{Queue: q, CAR: &fakeCAR{apply: []error{context.Canceled}}, Logger: quietLogger()}
	o, _, err := a.Admit(ctx, queue.Claim{UserID: "u"})
	if o != Requeued || !errors.Is(err, context.Canceled) || !slices.Equal(q.calls, []string{"Requeue"}) {
		t.Fatalf("outcome %v err %v calls %v", o, err, q.calls)
	}
}

func TestRelease(t *testing.T) {
	tests := []struct {
		name      string
		q         *fakeQueue
		destroy   []error
		wantErr   bool
		wantCAR   int
		wantQueue []string
	}{
		{name: "confirmed", q: &fakeQueue{state: queue.StateReleasing}, wantCAR: 1, wantQueue: []string{"Released"}},
		{name: "not found counts as confirmed", q: &fakeQueue{state: queue.StateReleasing}, destroy: []error{carErr(car.KindNotFound, "ResourceNotFound.SessionNotFound")}, wantCAR: 1, wantQueue: []string{"Released"}},
		{name: "transient keeps releasing", q: &fakeQueue{state: queue.StateReleasing}, destroy: []error{carErr(car.KindTransient, "InternalError")}, wantErr: true, wantCAR: 1},
		{name: "rate limited keeps releasing", q: &fakeQueue{state: queue.StateReleasing}, destroy: []error{carErr(car.KindRateLimited, "RequestLimitExceeded")}, wantErr: true, wantCAR: 1},
		{name: "auth keeps releasing", q: &fakeQueue{state: queue.StateReleasing}, destroy: []error{carErr(car.KindAuth, "AuthFailure")}, wantErr: true, wantCAR: 1},
		{name: "already released", q: &fakeQueue{state: queue.StateNone}},
		{name: "readmitted meanwhile is not destroyed", q: &fakeQueue{state: queue.StateActive}},
		{name: "user busy", q: &fakeQueue{lockBusy: true, state: queue.StateReleasing}, wantErr: true},
		{name: "released raced", q: &fakeQueue{state: queue.StateReleasing, releasedErr: queue.ErrNotHolding}, wantCAR: 1, wantQueue: []string{"Released"}},
		{name: "released redis error", q: &fakeQueue{state: queue.StateReleasing, releasedErr: errors.New("redis down")}, wantErr: true, wantCAR: 1, wantQueue: []string{"Released"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := &fakeCAR{destroy: tt.destroy}
			a := &Admitter{Queue: tt.q, CAR: f, Logger: quietLogger()}
			err := a.Release(context.Background(), "u1")
			if (err != nil) != tt.wantErr {
				t.Fatalf("err = %v, wantErr %v", err, tt.wantErr)
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
		})
	}
}

func TestOutcomeString(t *testing.T) {
	for o, want := range map[Outcome]string{Admitted: "admitted", Requeued: "requeued", Refused: "refused", LeaseLost: "lease_lost", Outcome(99): "unknown"} {
		if o.String() != want {
			t.Errorf("%d.String() = %q, want %q", o, o.String(), want)
		}
	}
}

// deadlineCAR records the deadline CAR calls were given.
type deadlineCAR struct {
	fakeCAR
	deadline time.Time
}

func (d *deadlineCAR) ApplyConcurrent(ctx context.Context, in car.ApplyConcurrentInput) error {
	d.deadline, _ = ctx.Deadline()
	return nil
}

func (d *deadlineCAR) DestroySession(ctx context.Context, u string) error {
	d.deadline, _ = ctx.Deadline()
	return nil
}

// CAR calls under the per-user lock must end before the lock can lapse.
func TestCARCallsEndBeforeTheUserLockLapses(t *testing.T) {
	d := &deadlineCAR{}
	a := &Admitter{Queue: &fakeQueue{state: queue.StateReleasing}, CAR: d, Logger: quietLogger(), LockTTL: 12 * time.Second}
	if o, _, err := a.Admit(context.Background(), queue.Claim{UserID: "u"}); o != Admitted {
		t.Fatalf("admit: %v %v", o, err)
	}
	// The deadline was set during the call, so it is at most 10s (5/6 of LockTTL) after now.
	if limit := time.Now().Add(10 * time.Second); d.deadline.IsZero() || d.deadline.After(limit) {
		t.Fatalf("ApplyConcurrent deadline %v, want set and not after %v", d.deadline, limit)
	}
	d.deadline = time.Time{}
	if err := a.Release(context.Background(), "u"); err != nil {
		t.Fatal(err)
	}
	if limit := time.Now().Add(10 * time.Second); d.deadline.IsZero() || d.deadline.After(limit) {
		t.Fatalf("DestroySession deadline %v, want set and not after %v", d.deadline, limit)
	}
}
