package session

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/carqueue/carqueue/shared/car"
	"github.com/carqueue/carqueue/shared/queue"
)

// The real queue is what app hands the service: it must satisfy the consumer's interfaces.
var (
	_ Operator = (*queue.Queue)(nil)
	_ Queue    = (*queue.Queue)(nil)
)

// opQueue is fakeQueue with the operator's side acting on fields: the controls it holds, the
// state Kick reports, the holders, and the status Poll and Heartbeat answer.
type opQueue struct {
	*fakeQueue

	omu          sync.Mutex
	controls     queue.Controls
	controlsErr  error
	controlReads int
	// inControls, when set, is told each time Controls is entered, and Controls then waits
	// for release: a test holds a read in flight.
	inControls chan struct{}
	release    chan struct{}

	kickPrev queue.State
	kickErr  error
	holders  []queue.Holder
	status   queue.Status // answered by Poll and Heartbeat
	ops      []string     // the control calls, in order
}

func newOpQueue() *opQueue {
	return &opQueue{fakeQueue: &fakeQueue{stats: func(context.Context) (queue.Stats, error) {
		return queue.Stats{AdmissionsPerMinute: 60, RecentAdmissions: MinETAAdmissions}, nil
	}}}
}

func (q *opQueue) op(s string) {
	q.omu.Lock()
	q.ops = append(q.ops, s)
	q.omu.Unlock()
}

func (q *opQueue) Controls(context.Context) (queue.Controls, error) {
	q.omu.Lock()
	q.controlReads++
	in, rel := q.inControls, q.release
	q.omu.Unlock()
	if in != nil {
		in <- struct{}{}
		<-rel
	}
	q.omu.Lock()
	defer q.omu.Unlock()
	return q.controls, q.controlsErr
}

func (q *opQueue) reads() int {
	q.omu.Lock()
	defer q.omu.Unlock()
	return q.controlReads
}

func (q *opQueue) SetPaused(_ context.Context, p bool) error {
	q.op("SetPaused(" + map[bool]string{true: "true", false: "false"}[p] + ")")
	q.omu.Lock()
	q.controls.Paused = p
	q.omu.Unlock()
	return nil
}

func (q *opQueue) SetNotice(_ context.Context, n string) error {
	q.op("SetNotice(" + n + ")")
	q.omu.Lock()
	q.controls.Notice = n
	q.omu.Unlock()
	return nil
}

func (q *opQueue) SetCapacity(_ context.Context, n int) error {
	q.op("SetCapacity")
	q.omu.Lock()
	q.controls.Capacity, q.controls.CapacitySet = n, true
	q.omu.Unlock()
	return nil
}

func (q *opQueue) ResetCapacity(context.Context) error {
	q.op("ResetCapacity")
	q.omu.Lock()
	q.controls.Capacity, q.controls.CapacitySet = 0, false
	q.omu.Unlock()
	return nil
}

func (q *opQueue) Kick(_ context.Context, user string) (queue.State, error) {
	q.op("Kick(" + user + ")")
	if q.kickErr != nil {
		return queue.StateNone, q.kickErr
	}
	if q.kickPrev.Holds() {
		// As the script does: a kicked holder is Releasing until its CAR session is gone.
		q.fakeQueue.mu.Lock()
		q.fakeQueue.state = queue.StateReleasing
		q.fakeQueue.mu.Unlock()
	}
	return q.kickPrev, nil
}

func (q *opQueue) Holders(_ context.Context, limit int) ([]queue.Holder, error) {
	return q.holders[:min(limit, len(q.holders))], nil
}

func (q *opQueue) Records(_ context.Context, after string, limit int) ([]queue.Record, string, error) {
	q.op("Records(" + after + ")")
	return []queue.Record{{ID: "5-0", UserID: "u"}}, "5-0", nil
}

func (q *opQueue) Poll(ctx context.Context, user string, c queue.Client, p queue.Proof) (queue.Status, error) {
	if p == queue.Trusted { // Release checks the user's state
		return q.fakeQueue.Poll(ctx, user, c, p)
	}
	return q.status, nil
}

func (q *opQueue) Heartbeat(context.Context, string, queue.Proof) (queue.Status, error) {
	return q.status, nil
}

// clock is an injectable clock tests move by hand.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) Add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

func newClock() *clock { return &clock{t: time.Date(2026, 12, 24, 12, 0, 0, 0, time.UTC)} }

func TestKickHolderDestroysItsSessionAsStopDoes(t *testing.T) {
	for _, tc := range []struct {
		name         string
		prev         queue.State
		destroy      []error
		wantCAR      []string
		wantStopped  Stopped
		wantReleased bool
	}{
		{"active holder", queue.StateActive, nil, []string{"Destroy"}, Stopped{Released: true}, true},
		{"ready holder", queue.StateReady, nil, []string{"Destroy"}, Stopped{Released: true}, true},
		{"CAR already without it", queue.StateActive, []error{carErr(car.KindNotFound, "ResourceNotFound.SessionNotFound")},
			[]string{"Destroy"}, Stopped{Released: true}, true},
		{"CAR down: the reaper retries", queue.StateActive, []error{carErr(car.KindTransient, "InternalError")},
			[]string{"Destroy"}, Stopped{Deferred: true}, false},
		{"queued user", queue.StateQueued, nil, nil, Stopped{}, false},
		{"unknown user", queue.StateNone, nil, nil, Stopped{}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			q := newOpQueue()
			q.kickPrev = tc.prev
			f := &fakeCAR{destroy: tc.destroy}
			s := newService(t, q, f, testOptions(nil))
			prev, res, err := s.Kick(context.Background(), "bob")
			if err != nil {
				t.Fatal(err)
			}
			if prev != tc.prev || res != tc.wantStopped {
				t.Fatalf("Kick: %q %+v, want %q %+v", prev, res, tc.prev, tc.wantStopped)
			}
			if strings.Join(f.calls, ",") != strings.Join(tc.wantCAR, ",") {
				t.Fatalf("CAR calls %v, want %v", f.calls, tc.wantCAR)
			}
			if tc.wantCAR != nil && f.inputs[0] != "bob" {
				t.Fatalf("destroyed %v, want bob", f.inputs[0])
			}
			released := strings.Contains(strings.Join(q.calls, ","), "Released")
			if released != tc.wantReleased {
				t.Fatalf("queue calls %v: slot freed %v, want %v", q.calls, released, tc.wantReleased)
			}
			if !tc.wantReleased && tc.wantCAR != nil && !strings.Contains(strings.Join(q.calls, ","), "RetryRelease") {
				t.Fatalf("a failed destroy was not scheduled for retry: %v", q.calls)
			}
		})
	}
}

func TestKickQueueErrorTouchesNoCAR(t *testing.T) {
	q := newOpQueue()
	q.kickErr = errors.New("redis down")
	f := &fakeCAR{}
	s := newService(t, q, f, testOptions(nil))
	if _, _, err := s.Kick(context.Background(), "bob"); err == nil || len(f.calls) != 0 {
		t.Fatalf("err %v, CAR calls %v", err, f.calls)
	}
}

func TestPauseResumeNoticeReachAnswersAtOnce(t *testing.T) {
	ctx := context.Background()
	clk := newClock()
	q := newOpQueue()
	q.status = queue.Status{State: queue.StateQueued, Position: 2, Length: 5, Lane: "vip"}
	s := newService(t, q, &fakeCAR{}, testOptions(clk.Now))

	v, err := s.Poll(ctx, "u", queue.Client{}, queue.Unproven)
	if err != nil || v.Paused || v.Notice != "" || v.Lane != "vip" || v.Position != 2 {
		t.Fatalf("before any control: %+v %v", v, err)
	}
	notice := "Maintenance until 14:00"
	if err := s.Pause(ctx, &notice); err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(q.ops, ","); got != "SetNotice(Maintenance until 14:00),SetPaused(true)" {
		t.Fatalf("Pause called %s", got)
	}
	// This instance made the change: its next answer shows it without waiting for the cache.
	v, _ = s.Poll(ctx, "u", queue.Client{}, queue.Unproven)
	if !v.Paused || v.Notice != notice || v.Position != 2 {
		t.Fatalf("after pause: %+v", v)
	}
	if err := s.Resume(ctx); err != nil {
		t.Fatal(err)
	}
	v, _ = s.Heartbeat(ctx, "u", queue.Unproven)
	if v.Paused || v.Notice != notice {
		t.Fatalf("after resume the notice stays, the pause goes: %+v", v)
	}
	if err := s.SetNotice(ctx, ""); err != nil {
		t.Fatal(err)
	}
	v, _ = s.Poll(ctx, "u", queue.Client{}, queue.Unproven)
	if v.Notice != "" {
		t.Fatalf("cleared notice still shown: %+v", v)
	}

	q.ops = nil
	if err := s.Pause(ctx, nil); err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(q.ops, ","); got != "SetPaused(true)" {
		t.Fatalf("Pause without a notice called %s", got)
	}
	if err := s.SetCapacity(ctx, 7); err != nil || !q.controls.CapacitySet || q.controls.Capacity != 7 {
		t.Fatalf("SetCapacity: %v %+v", err, q.controls)
	}
	if err := s.ResetCapacity(ctx); err != nil || q.controls.CapacitySet {
		t.Fatalf("ResetCapacity: %v %+v", err, q.controls)
	}
}

// TestControlsCachedForASecond: answers read the controls at most once a second per instance,
// so a poll stays one round trip most of the time; another instance's change shows within it.
func TestControlsCachedForASecond(t *testing.T) {
	ctx := context.Background()
	clk := newClock()
	q := newOpQueue()
	q.status = queue.Status{State: queue.StateQueued, Position: 2, Length: 2}
	s := newService(t, q, &fakeCAR{}, testOptions(clk.Now))

	for range 5 {
		if _, err := s.Poll(ctx, "u", queue.Client{}, queue.Unproven); err != nil {
			t.Fatal(err)
		}
	}
	if q.reads() != 1 {
		t.Fatalf("5 polls within a second read the controls %d times, want 1", q.reads())
	}
	// Another instance pauses: this one still answers from its cache until the second is up.
	q.omu.Lock()
	q.controls = queue.Controls{Paused: true, Notice: "elsewhere"}
	q.omu.Unlock()
	clk.Add(999 * time.Millisecond)
	if v, _ := s.Poll(ctx, "u", queue.Client{}, queue.Unproven); v.Paused {
		t.Fatalf("cache younger than 1 s was read again: %+v", v)
	}
	clk.Add(time.Millisecond)
	if v, _ := s.Poll(ctx, "u", queue.Client{}, queue.Unproven); !v.Paused || v.Notice != "elsewhere" {
		t.Fatalf("after 1 s the change is not seen: %+v", v)
	}
	if q.reads() != 2 {
		t.Fatalf("reads %d, want 2", q.reads())
	}

	// A failed read keeps the last value and lets the next caller try again.
	clk.Add(time.Second)
	q.omu.Lock()
	q.controlsErr = errors.New("redis down")
	q.omu.Unlock()
	if v, err := s.Poll(ctx, "u", queue.Client{}, queue.Unproven); err != nil || !v.Paused {
		t.Fatalf("a failed controls read: %+v %v (the answer must not fail, the last value stays)", v, err)
	}
}

// TestControlsRefreshedByOneCallerAtATime: while one answer reads the controls, the others
// answer with what the instance has, instead of piling up reads.
func TestControlsRefreshedByOneCallerAtATime(t *testing.T) {
	ctx := context.Background()
	clk := newClock()
	q := newOpQueue()
	q.status = queue.Status{State: queue.StateQueued, Position: 2, Length: 2}
	q.controls = queue.Controls{Notice: "hello"}
	s := newService(t, q, &fakeCAR{}, testOptions(clk.Now))

	q.inControls, q.release = make(chan struct{}), make(chan struct{})
	done := make(chan View, 1)
	go func() {
		v, _ := s.Poll(ctx, "first", queue.Client{}, queue.Unproven)
		done <- v
	}()
	<-q.inControls // the first caller is reading
	for range 10 {
		v, err := s.Poll(ctx, "other", queue.Client{}, queue.Unproven)
		if err != nil || v.Notice != "" {
			t.Fatalf("a caller during the read: %+v %v (want the instance's value: none yet)", v, err)
		}
	}
	close(q.release)
	if v := <-done; v.Notice != "hello" {
		t.Fatalf("the reading caller: %+v", v)
	}
	if q.reads() != 1 {
		t.Fatalf("reads %d while one was in flight, want 1", q.reads())
	}
}

func TestSessionsWaitedAndPlayed(t *testing.T) {
	clk := newClock()
	now := clk.Now()
	q := newOpQueue()
	q.holders = []queue.Holder{
		{UserID: "a", State: queue.StateActive, Lane: "vip", JoinedAt: now.Add(-10 * time.Minute),
			AdmittedAt: now.Add(-7 * time.Minute), StartedAt: now.Add(-6 * time.Minute)},
		{UserID: "b", State: queue.StateReady, Lane: "default", JoinedAt: now.Add(-time.Minute), AdmittedAt: now.Add(-time.Second)},
		{UserID: "c", State: queue.StateAdmitting, Lane: "default", JoinedAt: now.Add(-time.Minute)},
		// A clock skew between instances never shows as negative play.
		{UserID: "d", State: queue.StateActive, Lane: "default", JoinedAt: now.Add(-time.Minute),
			AdmittedAt: now.Add(-time.Second), StartedAt: now.Add(time.Second)},
	}
	s := newService(t, q, &fakeCAR{}, testOptions(clk.Now))
	ss, err := s.Sessions(context.Background(), 10)
	if err != nil {
		t.Fatal(err)
	}
	want := []SessionInfo{
		{"a", queue.StateActive, "vip", 3 * time.Minute, 6 * time.Minute},
		{"b", queue.StateReady, "default", 59 * time.Second, 0},
		{"c", queue.StateAdmitting, "default", 0, 0},
		{"d", queue.StateActive, "default", 59 * time.Second, 0},
	}
	if len(ss) != len(want) {
		t.Fatalf("got %d sessions, want %d", len(ss), len(want))
	}
	for i := range want {
		if ss[i] != want[i] {
			t.Errorf("session %d: %+v, want %+v", i, ss[i], want[i])
		}
	}
	if ss, _ := s.Sessions(context.Background(), 2); len(ss) != 2 {
		t.Fatalf("limit 2 gave %d", len(ss))
	}
	recs, next, err := s.Records(context.Background(), "4-0", 10)
	if err != nil || len(recs) != 1 || next != "5-0" || q.ops[len(q.ops)-1] != "Records(4-0)" {
		t.Fatalf("Records: %v %q %v %v", recs, next, err, q.ops)
	}
}

func TestHeartbeatRemainingAndWarning(t *testing.T) {
	ctx := context.Background()
	clk := newClock()
	now := clk.Now()
	o := testOptions(clk.Now)
	o.MaxSession, o.SessionWarning = 30*time.Minute, 5*time.Minute
	for _, tc := range []struct {
		name      string
		started   time.Time
		limited   bool
		remaining time.Duration
		warning   string // a fragment; "" = no warning
	}{
		{"before the first heartbeat", time.Time{}, false, 0, ""},
		{"early", now.Add(-10 * time.Minute), true, 20 * time.Minute, ""},
		{"just before the warning", now.Add(-24*time.Minute - 59*time.Second), true, 5*time.Minute + time.Second, ""},
		{"in the warning", now.Add(-26 * time.Minute), true, 4 * time.Minute, "4 min"},
		{"last seconds", now.Add(-29*time.Minute - 50*time.Second), true, 10 * time.Second, "less than a minute"},
		{"past the limit", now.Add(-40 * time.Minute), true, 0, "less than a minute"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			q := newOpQueue()
			q.status = queue.Status{State: queue.StateActive, StartedAt: tc.started}
			s := newService(t, q, &fakeCAR{}, o)
			v, err := s.Heartbeat(ctx, "u", queue.Unproven)
			if err != nil || v.Status != StatusActive {
				t.Fatalf("%+v %v", v, err)
			}
			if v.Limited != tc.limited || v.Remaining != tc.remaining {
				t.Fatalf("Limited %v Remaining %v, want %v %v", v.Limited, v.Remaining, tc.limited, tc.remaining)
			}
			if (tc.warning == "") != (v.Warning == "") || !strings.Contains(v.Warning, tc.warning) {
				t.Fatalf("Warning %q, want one containing %q", v.Warning, tc.warning)
			}
		})
	}
	// Without MaxSession nothing is limited.
	q := newOpQueue()
	q.status = queue.Status{State: queue.StateActive, StartedAt: now.Add(-10 * time.Hour)}
	s := newService(t, q, &fakeCAR{}, testOptions(clk.Now))
	if v, _ := s.Heartbeat(ctx, "u", queue.Unproven); v.Limited || v.Warning != "" || v.Remaining != 0 {
		t.Fatalf("no MaxSession: %+v", v)
	}
}

func TestOpeningHidesThePlaceAndTheSeed(t *testing.T) {
	ctx := context.Background()
	clk := newClock()
	o := testOptions(clk.Now)
	o.OpensAt, o.ShuffleSeed = clk.Now().Add(10*time.Minute), "0123456789abcdef0123456789abcdef"
	q := newOpQueue()
	q.status = queue.Status{State: queue.StateQueued, Position: 3, Length: 9, Lane: "default"}
	s := newService(t, q, &fakeCAR{}, o)

	v, err := s.Poll(ctx, "u", queue.Client{}, queue.Unproven)
	if err != nil || v.Status != StatusQueued || v.OpensIn != 10*time.Minute || v.Position != 0 || v.ETA != 0 {
		t.Fatalf("before opening: %+v %v (want OpensIn, no Position or ETA)", v, err)
	}
	if v.NextPoll <= 0 || v.NextPoll > o.PollMax {
		t.Fatalf("NextPoll %v outside (0, PollMax]", v.NextPoll)
	}
	if s.ShuffleSeed() != "" {
		t.Fatal("the seed is published before the opening")
	}
	clk.Add(10 * time.Minute)
	v, _ = s.Poll(ctx, "u", queue.Client{}, queue.Unproven)
	if v.OpensIn != 0 || v.Position != 3 { // the ETA after it is eta.go's (its tests)
		t.Fatalf("after opening: %+v", v)
	}
	if s.ShuffleSeed() != o.ShuffleSeed {
		t.Fatalf("after opening the seed is %q", s.ShuffleSeed())
	}
	// A queue without an opening has no seed to publish.
	if s := newService(t, q, &fakeCAR{}, testOptions(clk.Now)); s.ShuffleSeed() != "" {
		t.Fatal("seed without OpensAt")
	}
}
