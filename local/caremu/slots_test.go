package caremu

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"testing"
	"time"
)

func TestApplyLocksUntilNoIdle(t *testing.T) {
	e, _ := newTestEmulator(t, Options{Slots: 2})
	wantCode(t, "a", apply(t, e, "a"), "")
	wantCode(t, "a again re-attaches", apply(t, e, "a"), "")
	wantCode(t, "b", apply(t, e, "b"), "")
	wantCode(t, "c", apply(t, e, "c"), codeNoIdle)
	st := e.State()
	if st.Idle != 0 || !reflect.DeepEqual(st.Locked, []string{"a", "b"}) || len(st.Sessions) != 0 {
		t.Fatalf("state %+v", st)
	}
}

func TestCreateSessionNeedsLock(t *testing.T) {
	e, _ := newTestEmulator(t, Options{Slots: 1})
	_, code := create(t, e, "a")
	wantCode(t, "no lock", code, codeLockTimeout)

	wantCode(t, "apply", apply(t, e, "a"), "")
	s1, code := create(t, e, "a")
	wantCode(t, "create", code, "")
	s2, code := create(t, e, "a")
	wantCode(t, "create again", code, "")
	if s1 == "" || s1 == s2 {
		t.Fatalf("ServerSessions %q, %q: want a new non-empty one per call", s1, s2)
	}
	wantCode(t, "apply re-attaches to the session", apply(t, e, "a"), "")
	if st := e.State(); !reflect.DeepEqual(st.Sessions, []string{"a"}) || len(st.Locked) != 0 {
		t.Fatalf("state %+v", st)
	}
}

func TestLockTTLExpiry(t *testing.T) {
	e, clock := newTestEmulator(t, Options{Slots: 1, LockTTL: 30 * time.Second})
	wantCode(t, "apply a", apply(t, e, "a"), "")
	clock.Advance(29 * time.Second)
	wantCode(t, "b while a's lock lives", apply(t, e, "b"), codeNoIdle)
	clock.Advance(time.Second)
	if st := e.State(); st.Idle != 1 || len(st.Locked) != 0 {
		t.Fatalf("after TTL: state %+v", st)
	}
	_, code := create(t, e, "a")
	wantCode(t, "create after lapse", code, codeLockTimeout)
	wantCode(t, "b takes the slot", apply(t, e, "b"), "")
}

func TestDestroyCleansBeforeIdle(t *testing.T) {
	e, clock := newTestEmulator(t, Options{Slots: 1, CleanupDelay: 2 * time.Second})
	wantCode(t, "apply", apply(t, e, "a"), "")
	_, code := create(t, e, "a")
	wantCode(t, "create", code, "")
	wantCode(t, "destroy", destroy(t, e, "a"), "")
	wantCode(t, "destroy again", destroy(t, e, "a"), codeSessionNotFound)

	st := e.State()
	if st.Idle != 0 || st.Cleaning != 1 || st.Running != 1 {
		t.Fatalf("right after destroy: %+v", st)
	}
	a := call(t, e, actionDescribe, map[string]string{"ProjectId": "p"})
	if *a.Response.Total != 1 || *a.Response.Running != 1 {
		t.Fatalf("DescribeConcurrentCount Total=%d Running=%d, want 1, 1", *a.Response.Total, *a.Response.Running)
	}
	wantCode(t, "apply while cleaning", apply(t, e, "b"), codeNoIdle)
	clock.Advance(2*time.Second - time.Millisecond)
	wantCode(t, "apply just before clean-up ends", apply(t, e, "b"), codeNoIdle)
	clock.Advance(time.Millisecond)
	wantCode(t, "apply after clean-up", apply(t, e, "b"), "")
}

func TestReconnectWindowReclaim(t *testing.T) {
	e, clock := newTestEmulator(t, Options{Slots: 2, ReconnectWindow: 90 * time.Second, CleanupDelay: 2 * time.Second})
	for _, u := range []string{"a", "b"} {
		wantCode(t, "apply "+u, apply(t, e, u), "")
	}
	_, code := create(t, e, "a")
	wantCode(t, "create a", code, "")
	wantCode(t, "create b", call(t, e, actionCreate, map[string]string{"UserId": "b", "UserIp": "1.1.1.1", "RunMode": "RunWithoutClient"}).code(), "")

	e.Disconnect("a")
	e.Disconnect("b") // RunWithoutClient: never reclaimed by CAR
	clock.Advance(89 * time.Second)
	_, code = create(t, e, "a") // reconnect inside the window keeps the slot
	wantCode(t, "reconnect", code, "")
	clock.Advance(time.Hour)
	if st := e.State(); !reflect.DeepEqual(st.Sessions, []string{"a", "b"}) {
		t.Fatalf("connected sessions must stay: %+v", st)
	}

	e.Disconnect("a")
	clock.Advance(90 * time.Second)
	st := e.State()
	if !reflect.DeepEqual(st.Sessions, []string{"b"}) || st.Cleaning != 1 || st.Idle != 0 {
		t.Fatalf("after the window: %+v", st)
	}
	_, code = create(t, e, "a")
	wantCode(t, "create after reclaim", code, codeLockTimeout)
	clock.Advance(2 * time.Second)
	if st := e.State(); st.Idle != 1 || st.Cleaning != 0 {
		t.Fatalf("after clean-up: %+v", st)
	}
}

func TestEmulatorRateLimit(t *testing.T) {
	e, clock := newTestEmulator(t, Options{Rates: map[string]float64{actionDescribe: 2}})
	p := map[string]string{"ProjectId": "p"}
	wantCode(t, "1st", call(t, e, actionDescribe, p).code(), "")
	wantCode(t, "2nd", call(t, e, actionDescribe, p).code(), "")
	wantCode(t, "3rd in the same second", call(t, e, actionDescribe, p).code(), "RequestLimitExceeded")
	wantCode(t, "other actions unaffected", destroy(t, e, "nobody"), codeSessionNotFound)
	clock.Advance(time.Second)
	wantCode(t, "after a second", call(t, e, actionDescribe, p).code(), "")
}

func TestSlowDownWhileInFlight(t *testing.T) {
	e, _ := newTestEmulator(t, Options{Slots: 2})
	e.SetLatency(actionApply, time.Hour, 0)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	first := make(chan struct{})
	go func() {
		defer close(first)
		body := `{"UserId":"a","UserIp":"1.1.1.1","ProjectId":"p"}`
		r := signedRequest{action: actionApply, ts: time.Now(), body: []byte(body)}.build(t).WithContext(ctx)
		e.ServeHTTP(httptest.NewRecorder(), r)
	}()
	waitFor(t, func() bool { return reflect.DeepEqual(e.State().InFlight, []string{"a"}) })
	e.SetLatency(actionApply, 0, 0)
	wantCode(t, "second call for a", apply(t, e, "a"), codeSlowDown)
	wantCode(t, "another user is not blocked", apply(t, e, "b"), "")
	cancel() // the client of the first call goes away: the emulator stops waiting
	<-first
	if st := e.State(); len(st.InFlight) != 0 {
		t.Fatalf("in flight after the first call ended: %+v", st)
	}
	wantCode(t, "a once the first call is over", apply(t, e, "a"), "")
}

// waitFor polls cond (state visible through the API) with a generous bound.
func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not reached")
		}
		time.Sleep(time.Millisecond)
	}
}

func TestStateHandlerJSON(t *testing.T) {
	e, _ := newTestEmulator(t, Options{Slots: 3})
	apply(t, e, "a")
	apply(t, e, "b")
	create(t, e, "b")
	rec := httptest.NewRecorder()
	e.StateHandler().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/emulator/state", nil))
	var m map[string]any
	if err := json.Unmarshal(rec.Body.Bytes(), &m); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"Total", "Idle", "Locked", "Sessions", "Cleaning", "Running"} {
		if _, ok := m[k]; !ok {
			t.Fatalf("state JSON %s lacks %s", rec.Body, k)
		}
	}
	if !strings.Contains(rec.Body.String(), `"Locked":["a"]`) || !strings.Contains(rec.Body.String(), `"Sessions":["b"]`) || m["Idle"].(float64) != 1 {
		t.Fatalf("state JSON %s", rec.Body)
	}
}
