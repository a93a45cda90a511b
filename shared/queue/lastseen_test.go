package queue

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"pgregory.net/rapid"

	"github.com/carqueue/carqueue/shared/testkit"
)

// reapAll follows More to the end, as a reaper run does, and returns the idle users dropped
// and the number of calls.
func reapAll(t *testing.T, q *Queue, batch int) (idle, calls int) {
	t.Helper()
	for calls = 1; ; calls++ {
		r, err := q.Reap(context.Background(), batch)
		noErr(t, err)
		idle += r.Dropped[ReasonIdle]
		if !r.More {
			return idle, calls
		}
		if calls > 10_000 {
			t.Fatal("reap never ends")
		}
	}
}

// A large queue's last-seen is swept from every sweepEvery, in steps of sweepCount: nobody seen
// within QueueIdleTimeout is dropped, and who stops is dropped by the lag lastseen.go names.
func TestIdleSweepOfALargeQueue(t *testing.T) {
	const n, batch = 1500, 50 // more than sweepWhole and than one HSCAN step
	forBackends(t, testOptions(1), func(t *testing.T, q *Queue, clk *testkit.Clock) {
		ctx := context.Background()
		every := q.sweepEvery()
		idleT := q.opts.QueueIdleTimeout
		if every != 20*time.Second {
			t.Fatalf("sweepEvery = %v for a 60 s idle timeout, want 20s", every)
		}
		jids := make([]Proof, n)
		for i := range n {
			st := must[Status](t)(q.Join(ctx, user(i), Client{}, Unproven))
			jids[i] = Ticketed(st.JoinID)
		}
		// A sweep starts now (the first reap) and finds nobody idle.
		if idle, _ := reapAll(t, q, batch); idle != 0 {
			t.Fatalf("dropped %d right after joining", idle)
		}
		// The even users poll 1 ms before the timeout; at the timeout + 1 ms the odd ones are
		// idle, but the sweep that started at 0 is through: none is dropped until sweepEvery
		// has passed since its start.
		clk.Advance(idleT - time.Millisecond)
		for i := 0; i < n; i += 2 {
			st := must[Status](t)(q.Poll(ctx, user(i), Client{}, jids[i]))
			if st.State != StateQueued || st.Position != int64(i+1) {
				t.Fatalf("poll %s: %+v, want Queued at %d", user(i), st, i+1)
			}
		}
		clk.Advance(2 * time.Millisecond)
		if idle, _ := reapAll(t, q, batch); idle != n/2 {
			// 60 s since the first sweep started: a new one is due at once
			t.Fatalf("dropped %d, want the %d odd users", idle, n/2)
		}
		if st := must[Stats](t)(q.Stats(ctx)); st.Queued != n/2 {
			t.Fatalf("queued %d, want %d", st.Queued, n/2)
		}
		// The even users stop now (seen at idleT - 1 ms). A sweep starts 5 s before their
		// timeout; just past it, the next is not due yet…
		clk.Advance(idleT - 5*time.Second)
		if idle, _ := reapAll(t, q, batch); idle != 0 {
			t.Fatalf("dropped %d within the timeout", idle)
		}
		clk.Advance(5*time.Second + time.Millisecond)
		if idle, _ := reapAll(t, q, batch); idle != 0 {
			t.Fatalf("dropped %d before the sweep was due", idle)
		}
		// … and by timeout + sweepEvery they are gone, in steps of at most sweepCount entries.
		clk.Advance(every - 5*time.Second)
		idle, calls := reapAll(t, q, batch)
		if idle != n/2 {
			t.Fatalf("dropped %d, want %d", idle, n/2)
		}
		if min := n / 2 / batch; calls < min {
			t.Fatalf("%d reap calls for %d idle users in batches of %d", calls, n/2, batch)
		}
		if st := must[Stats](t)(q.Stats(ctx)); st.Queued != 0 {
			t.Fatalf("queued %d, want 0", st.Queued)
		}
	})
}

// A user who polls within the timeout is never dropped, whatever the reaps around it.
func TestIdleSweepNeverDropsAPollingUser(t *testing.T) {
	forBackends(t, testOptions(1), func(t *testing.T, q *Queue, clk *testkit.Clock) {
		ctx := context.Background()
		q.sweepWhole = 0 // paced, as a large queue
		st := must[Status](t)(q.Join(ctx, "alice", Client{}, Unproven))
		p := Ticketed(st.JoinID)
		for range 40 {
			clk.Advance(q.opts.QueueIdleTimeout - time.Second)
			if idle, _ := reapAll(t, q, 3); idle != 0 {
				t.Fatal("alice dropped while polling")
			}
			must[Status](t)(q.Poll(ctx, "alice", Client{}, p))
		}
	})
}

// The pipelined poll answers what the script answers, and an earlier ticket of the same user
// counts as seen there (lastseen.go) though it is refused; with a new ClientSession (the
// script) it changes nothing.
func TestPipelinedPollAndEarlierTickets(t *testing.T) {
	forBackends(t, testOptions(1), func(t *testing.T, q *Queue, clk *testkit.Clock) {
		ctx := context.Background()
		if q.batch == nil {
			t.Skip("client cannot pipeline")
		}
		var ps []Proof
		for i := range 5 {
			st := must[Status](t)(q.Join(ctx, user(i), Client{}, Unproven))
			ps = append(ps, Ticketed(st.JoinID))
		}
		for i := range 5 {
			fast := must[Status](t)(q.Poll(ctx, user(i), Client{}, ps[i]))
			slow := must[Status](t)(q.statusCall(ctx, pollScript, user(i), Client{}, ps[i], q.cycle))
			if fast != slow || fast.Position != int64(i+1) || fast.Length != 5 {
				t.Fatalf("pipelined %+v, script %+v", fast, slow)
			}
		}
		// A grant re-issues u001's join id: the old ticket is refused on both paths.
		g := must[Status](t)(q.Join(ctx, user(1), Client{}, Granted))
		_, err := q.Poll(ctx, user(1), Client{}, ps[1])
		wantErrIs(t, err, ErrBadTicket)
		_, err = q.Poll(ctx, user(1), Client{Session: "new"}, ps[1])
		wantErrIs(t, err, ErrBadTicket)
		if st := must[Status](t)(q.Poll(ctx, user(1), Client{}, Ticketed(g.JoinID))); st.Position != 2 {
			t.Fatalf("re-issued ticket: %+v", st)
		}
		// Only u000 keeps polling, with its ticket; u002 with an earlier one (the pipeline),
		// u003 with an earlier one and a ClientSession (the script): u002 stays, the rest go.
		stale := Ticketed(fmt.Sprint(mustJID(t, ps[2]) + 1))
		for range 2 { // at 60 s, 1, 3 and 4 were last seen at 0
			clk.Advance(30 * time.Second)
			must[Status](t)(q.Poll(ctx, user(0), Client{}, ps[0]))
			_, err = q.Poll(ctx, user(2), Client{}, stale)
			wantErrIs(t, err, ErrBadTicket)
			_, err = q.Poll(ctx, user(3), Client{Session: "cs"}, stale)
			wantErrIs(t, err, ErrBadTicket)
			reapAll(t, q, 10)
		}
		for i, want := range []State{StateQueued, StateNone, StateQueued, StateNone, StateNone} {
			if st := must[State](t)(q.StateOf(ctx, user(i))); st != want {
				t.Errorf("%s: %s, want %s", user(i), st, want)
			}
		}
		// A holder's poll goes through the pipeline, finds nobody in line and takes the script,
		// which leaves no last-seen behind (mustInvariants).
		cl := must[[]Claim](t)(q.Claim(ctx, 1))
		if len(cl) != 1 || cl[0].UserID != user(0) {
			t.Fatalf("claim: %+v", cl)
		}
		if st := must[Status](t)(q.Poll(ctx, user(0), Client{}, ps[0])); st.State != StateAdmitting {
			t.Fatalf("holder's poll: %+v", st)
		}
	})
}

func mustJID(t *testing.T, p Proof) int64 {
	t.Helper()
	var n int64
	if _, err := fmt.Sscan(p.arg, &n); err != nil {
		t.Fatal(err)
	}
	return n
}

// A queue written by the version before the last-seen hash keeps its users: the reap drains
// the old sorted set, dropping only those unseen since the cutoff.
func TestLastSeenOfAnEarlierVersionIsDrained(t *testing.T) {
	forBackends(t, testOptions(1), func(t *testing.T, q *Queue, clk *testkit.Clock) {
		ctx := context.Background()
		rdb := q.rdb.(redis.UniversalClient)
		var ps []Proof
		for i := range 3 {
			st := must[Status](t)(q.Join(ctx, user(i), Client{}, Unproven))
			ps = append(ps, Ticketed(st.JoinID))
		}
		// As the earlier version left it: last-seen in the sorted set only.
		now := clk.Now().UnixMilli()
		noErr(t, rdb.HDel(ctx, q.keys[kLs], user(0), user(1), user(2)).Err())
		noErr(t, rdb.ZAdd(ctx, q.keys[kSeen], redis.Z{Score: float64(now), Member: user(0)},
			redis.Z{Score: float64(now), Member: user(1)}, redis.Z{Score: float64(now), Member: user(2)}).Err())
		clk.Advance(q.opts.QueueIdleTimeout / 2)
		must[Status](t)(q.Poll(ctx, user(1), Client{}, ps[1])) // seen by the new version
		clk.Advance(q.opts.QueueIdleTimeout/2 + time.Second)
		if idle, _ := reapAll(t, q, 10); idle != 2 {
			t.Fatalf("dropped %d, want u000 and u002", idle)
		}
		if st := must[State](t)(q.StateOf(ctx, user(1))); st != StateQueued {
			t.Fatalf("u001: %s", st)
		}
		if n := rdb.Exists(ctx, q.keys[kSeen]).Val(); n != 0 {
			t.Fatal("the old last-seen is still there")
		}
	})
}

// Concurrent polls batched into shared pipelines each get their own answer.
func TestBatchedPollsEachGetTheirOwnAnswer(t *testing.T) {
	forBackends(t, testOptions(1), func(t *testing.T, q *Queue, clk *testkit.Clock) {
		ctx := context.Background()
		const n = 200
		ps := make([]Proof, n)
		for i := range n {
			st := must[Status](t)(q.Join(ctx, user(i), Client{}, Unproven))
			ps[i] = Ticketed(st.JoinID)
		}
		errs := make(chan error, n*3)
		done := make(chan struct{})
		for g := range n {
			go func() {
				defer func() { done <- struct{}{} }()
				for r := range 3 {
					i := (g*7 + r*13) % n
					st, err := q.Poll(ctx, user(i), Client{}, ps[i])
					if err == nil && (st.Position != int64(i+1) || st.Length != n) {
						err = fmt.Errorf("%s: position %d of %d, want %d of %d", user(i), st.Position, st.Length, i+1, n)
					}
					if err != nil {
						errs <- err
					}
				}
			}()
		}
		for range n {
			<-done
		}
		close(errs)
		for err := range errs {
			t.Error(err)
		}
	})
}

// validUserID accepts exactly what userIDPattern, the documented rule, accepts.
func TestValidUserIDIsThePattern(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		s := rapid.StringOfN(rapid.SampledFrom([]rune("aZ09_.@:-/ é\x00|")), 0, 70, -1).Draw(t, "s")
		if got, want := validUserID(s), userIDPattern.MatchString(s); got != want {
			t.Fatalf("%q: %v, pattern says %v", s, got, want)
		}
	})
}
