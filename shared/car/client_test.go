package car_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/carqueue/carqueue/local/caremu"
	"github.com/carqueue/carqueue/shared/car"
)

// The SDK's generic v3 client, signing end to end, gets CAR's answers from
// the emulator for the whole admission cycle.
func TestEndToEndThroughSDK(t *testing.T) {
	e := newEnv(t, setup{emu: caremu.Options{Slots: 2, CleanupDelay: 2 * time.Second}})
	ctx := context.Background()

	if err := e.client.ApplyConcurrent(ctx, applyIn("alice")); err != nil {
		t.Fatal(err)
	}
	ss, err := e.client.CreateSession(ctx, createIn("alice"))
	if err != nil || ss == "" {
		t.Fatalf("CreateSession = %q, %v", ss, err)
	}
	count, err := e.client.DescribeConcurrentCount(ctx, "")
	if err != nil || count != (car.ConcurrentCount{Total: 2, Running: 1}) {
		t.Fatalf("DescribeConcurrentCount = %+v, %v", count, err)
	}
	if err := e.client.DestroySession(ctx, "alice"); err != nil {
		t.Fatal(err)
	}
	err = e.client.DestroySession(ctx, "alice")
	if car.KindOf(err) != car.KindNotFound {
		t.Fatalf("second DestroySession: %v (kind %v), want not_found", err, car.KindOf(err))
	}
	if st := e.emu.State(); st.Cleaning != 1 || len(st.Sessions) != 0 {
		t.Fatalf("state %+v", st)
	}

	// RunWithoutClient needs no ClientSession.
	if err := e.client.ApplyConcurrent(ctx, applyIn("bob")); err != nil {
		t.Fatal(err)
	}
	if _, err := e.client.CreateSession(ctx, car.CreateSessionInput{UserID: "bob", UserIP: "10.0.0.2", RunMode: "RunWithoutClient"}); err != nil {
		t.Fatal(err)
	}

	logs := e.logs.String()
	for _, secret := range []string{caremu.LocalSecretKey, "client-session-secret", "token-123", ss} {
		if strings.Contains(logs, secret) {
			t.Fatalf("logs leak %q:\n%s", secret, logs)
		}
	}
	if !strings.Contains(logs, `"RequestId":"`) || !strings.Contains(logs, `"UserId":"alice"`) || !strings.Contains(logs, `"attempts":1`) {
		t.Fatalf("logs lack the call details:\n%s", logs)
	}
}

func TestErrorKinds(t *testing.T) {
	tests := []struct {
		action string
		code   string
		want   car.Kind
	}{
		{car.ActionApplyConcurrent, "ResourceNotFound.NoIdle", car.KindNoIdle},
		{car.ActionCreateSession, "FailedOperation.LockTimeout", car.KindLockExpired},
		{car.ActionCreateSession, "ResourceNotFound.SessionNotFound", car.KindLockExpired},
		{car.ActionApplyConcurrent, "FailedOperation.SlowDown", car.KindBusy},
		{car.ActionApplyConcurrent, "ResourceUnavailable.Initialization", car.KindTransient},
		{car.ActionCreateSession, "UnsupportedOperation.Stopping", car.KindTransient},
		{car.ActionCreateSession, "FailedOperation.ProcessTimeout", car.KindTransient},
		{car.ActionApplyConcurrent, "InternalError", car.KindTransient},
		{car.ActionApplyConcurrent, "InternalError.DbError", car.KindTransient},
		{car.ActionDestroySession, "ResourceUnavailable.AccessFailed", car.KindTransient},
		{car.ActionApplyConcurrent, "RequestLimitExceeded", car.KindRateLimited},
		{car.ActionApplyConcurrent, "RequestLimitExceeded.UinLimitExceeded", car.KindRateLimited},
		{car.ActionApplyConcurrent, "InvalidParameter", car.KindOurFault},
		{car.ActionApplyConcurrent, "InvalidParameterValue", car.KindOurFault},
		{car.ActionApplyConcurrent, "MissingParameter", car.KindOurFault},
		{car.ActionApplyConcurrent, "InvalidAction", car.KindOurFault},
		{car.ActionApplyConcurrent, "UnknownParameter", car.KindOurFault},
		{car.ActionApplyConcurrent, "AuthFailure.SignatureFailure", car.KindAuth},
		{car.ActionApplyConcurrent, "AuthFailure.UnauthorizedOperation", car.KindAuth},
		{car.ActionDestroySession, "ResourceNotFound.SessionNotFound", car.KindNotFound},
		{car.ActionDescribeConcurrentCount, "SomethingElse.New", car.KindUnknown},
	}
	for _, tt := range tests {
		t.Run(tt.action+"/"+tt.code, func(t *testing.T) {
			e := newEnv(t, setup{cfg: car.Config{MaxRetries: -1}})
			e.emu.Script(tt.action, tt.code)
			ctx := context.Background()
			var err error
			switch tt.action {
			case car.ActionApplyConcurrent:
				err = e.client.ApplyConcurrent(ctx, applyIn("u"))
			case car.ActionCreateSession:
				_, err = e.client.CreateSession(ctx, createIn("u"))
			case car.ActionDestroySession:
				err = e.client.DestroySession(ctx, "u")
			case car.ActionDescribeConcurrentCount:
				_, err = e.client.DescribeConcurrentCount(ctx, "p")
			}
			if got := car.KindOf(err); got != tt.want {
				t.Fatalf("KindOf(%v) = %v, want %v", err, got, tt.want)
			}
			var ce *car.Error
			if !errors.As(err, &ce) || ce.Code != tt.code || ce.Action != tt.action || ce.RequestID == "" {
				t.Fatalf("error %#v: want Code %s, Action %s and a RequestId", ce, tt.code, tt.action)
			}
		})
	}
}

func TestKindOfPlainErrors(t *testing.T) {
	if car.KindOf(nil) != car.KindUnknown {
		t.Error("nil")
	}
	if car.KindOf(fmt.Errorf("x: %w", context.DeadlineExceeded)) != car.KindTransient {
		t.Error("deadline")
	}
	if car.KindOf(errors.New("boom")) != car.KindUnknown {
		t.Error("plain")
	}
	if car.KindNotFound.String() != "not_found" || car.Kind(99).String() != "kind(99)" {
		t.Error("String")
	}
}

func TestRetriesTransientOnly(t *testing.T) {
	ctx := context.Background()
	t.Run("transient then success", func(t *testing.T) {
		e := newEnv(t, setup{cfg: car.Config{MaxRetries: 3}})
		e.emu.Script(car.ActionApplyConcurrent, "InternalError", "ResourceUnavailable.Initialization")
		if err := e.client.ApplyConcurrent(ctx, applyIn("u")); err != nil {
			t.Fatal(err)
		}
		if n := e.hits.get(car.ActionApplyConcurrent); n != 3 {
			t.Fatalf("%d requests, want 3", n)
		}
		if len(e.emu.State().Locked) != 1 {
			t.Fatal("the retried call did not lock")
		}
	})
	t.Run("rate limited then success", func(t *testing.T) {
		e := newEnv(t, setup{})
		e.emu.Script(car.ActionDestroySession, "RequestLimitExceeded")
		err := e.client.DestroySession(ctx, "u")
		if car.KindOf(err) != car.KindNotFound || e.hits.get(car.ActionDestroySession) != 2 {
			t.Fatalf("err %v after %d requests, want not_found after 2", err, e.hits.get(car.ActionDestroySession))
		}
	})
	t.Run("gives up after MaxRetries", func(t *testing.T) {
		e := newEnv(t, setup{cfg: car.Config{MaxRetries: 2}})
		e.emu.Script(car.ActionApplyConcurrent, "InternalError", "InternalError", "InternalError", "InternalError")
		err := e.client.ApplyConcurrent(ctx, applyIn("u"))
		if car.KindOf(err) != car.KindTransient || e.hits.get(car.ActionApplyConcurrent) != 3 {
			t.Fatalf("err %v after %d requests, want transient after 3", err, e.hits.get(car.ActionApplyConcurrent))
		}
		if !strings.Contains(e.logs.String(), `"attempts":3`) {
			t.Fatalf("log lacks attempts: %s", e.logs.String())
		}
	})
	for _, code := range []string{"ResourceNotFound.NoIdle", "FailedOperation.SlowDown", "FailedOperation.LockTimeout", "InvalidParameter", "AuthFailure.SignatureFailure"} {
		t.Run("no retry on "+code, func(t *testing.T) {
			e := newEnv(t, setup{cfg: car.Config{MaxRetries: 3}})
			e.emu.Script(car.ActionApplyConcurrent, code)
			if err := e.client.ApplyConcurrent(ctx, applyIn("u")); err == nil {
				t.Fatal("want an error")
			}
			if n := e.hits.get(car.ActionApplyConcurrent); n != 1 {
				t.Fatalf("%d requests, want 1", n)
			}
		})
	}
}

func TestCredentials(t *testing.T) {
	ctx := context.Background()
	t.Run("missing variables are named", func(t *testing.T) {
		creds := localCreds()
		delete(creds, car.EnvSecretKey)
		creds[car.EnvSecretID] = "AKIDVISIBLE"
		e := newEnv(t, setup{creds: creds})
		err := e.client.ApplyConcurrent(ctx, applyIn("u"))
		if car.KindOf(err) != car.KindAuth || !strings.Contains(err.Error(), car.EnvSecretKey) ||
			strings.Contains(err.Error(), car.EnvSecretID) || strings.Contains(err.Error(), "AKIDVISIBLE") {
			t.Fatalf("err %v: want kind auth naming only %s and no value", err, car.EnvSecretKey)
		}
		if e.hits.get(car.ActionApplyConcurrent) != 0 {
			t.Fatal("a request went out without credentials")
		}
	})
	t.Run("both missing", func(t *testing.T) {
		e := newEnv(t, setup{creds: map[string]string{}})
		_, err := e.client.DescribeConcurrentCount(ctx, "")
		if !strings.Contains(err.Error(), car.EnvSecretID) || !strings.Contains(err.Error(), car.EnvSecretKey) {
			t.Fatalf("err %v", err)
		}
	})
	t.Run("wrong secret is rejected by the emulator", func(t *testing.T) {
		creds := localCreds()
		creds[car.EnvSecretKey] = "wrong-key"
		e := newEnv(t, setup{creds: creds})
		err := e.client.ApplyConcurrent(ctx, applyIn("u"))
		var ce *car.Error
		if !errors.As(err, &ce) || ce.Code != "AuthFailure.SignatureFailure" || ce.Kind != car.KindAuth {
			t.Fatalf("err %v", err)
		}
		if strings.Contains(e.logs.String(), "wrong-key") {
			t.Fatal("secret in logs")
		}
	})
	t.Run("read on every call", func(t *testing.T) {
		e := newEnv(t, setup{})
		if _, err := e.client.DescribeConcurrentCount(ctx, ""); err != nil {
			t.Fatal(err)
		}
		e.setCred(car.EnvSecretID, "AKIDROTATED")
		_, err := e.client.DescribeConcurrentCount(ctx, "")
		var ce *car.Error
		if !errors.As(err, &ce) || ce.Code != "AuthFailure.SecretIdNotFound" {
			t.Fatalf("after rotation to an unknown id: %v", err)
		}
		e.setCred(car.EnvSecretID, caremu.LocalSecretID)
		if _, err := e.client.DescribeConcurrentCount(ctx, ""); err != nil {
			t.Fatalf("after rotating back: %v", err)
		}
	})
	t.Run("local validation", func(t *testing.T) {
		e := newEnv(t, setup{})
		err := e.client.ApplyConcurrent(ctx, car.ApplyConcurrentInput{UserID: "u"})
		if car.KindOf(err) != car.KindOurFault || e.hits.get(car.ActionApplyConcurrent) != 0 {
			t.Fatalf("err %v", err)
		}
		_, err = e.client.CreateSession(ctx, car.CreateSessionInput{UserID: "u", UserIP: "1.1.1.1"})
		if car.KindOf(err) != car.KindOurFault || !strings.Contains(err.Error(), "ClientSession") {
			t.Fatalf("err %v", err)
		}
	})
}

func TestClientRateLimit(t *testing.T) {
	e := newEnv(t, setup{cfg: car.Config{Rates: map[string]float64{car.ActionDescribeConcurrentCount: 1}}})
	if _, err := e.client.DescribeConcurrentCount(context.Background(), ""); err != nil {
		t.Fatal(err)
	}
	// The bucket (1/s, burst 1) is empty: a call that must finish within
	// 100ms cannot get a token and fails before reaching CAR.
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	_, err := e.client.DescribeConcurrentCount(ctx, "")
	var ce *car.Error
	if !errors.As(err, &ce) || ce.Kind != car.KindRateLimited || ce.Code != "ClientError.RateLimitWait" {
		t.Fatalf("err %v", err)
	}
	if n := e.hits.get(car.ActionDescribeConcurrentCount); n != 1 {
		t.Fatalf("emulator saw %d requests, want 1", n)
	}
	// Other actions have their own buckets.
	if err := e.client.DestroySession(ctx, "u"); car.KindOf(err) != car.KindNotFound {
		t.Fatalf("destroy: %v", err)
	}
}

func TestEmulatorRateLimitSeenByClient(t *testing.T) {
	e := newEnv(t, setup{
		emu: caremu.Options{Rates: map[string]float64{car.ActionDescribeConcurrentCount: 1}},
		cfg: car.Config{MaxRetries: -1},
	})
	ctx := context.Background()
	if _, err := e.client.DescribeConcurrentCount(ctx, ""); err != nil {
		t.Fatal(err)
	}
	_, err := e.client.DescribeConcurrentCount(ctx, "")
	var ce *car.Error
	if !errors.As(err, &ce) || ce.Code != "RequestLimitExceeded" || ce.Kind != car.KindRateLimited {
		t.Fatalf("err %v", err)
	}
	e.clock.Advance(time.Second) // the emulator's bucket refills on its clock
	if _, err := e.client.DescribeConcurrentCount(ctx, ""); err != nil {
		t.Fatal(err)
	}
}

func TestDeadlineBoundsTheCall(t *testing.T) {
	e := newEnv(t, setup{})
	e.emu.SetLatency(car.ActionApplyConcurrent, time.Hour, 0)
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	err := e.client.ApplyConcurrent(ctx, applyIn("u"))
	if car.KindOf(err) != car.KindTransient || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("err %v (kind %v), want transient wrapping the deadline", err, car.KindOf(err))
	}
}

// 1000 users race for 100 slots through the client over HTTP: exactly 100
// get a slot, each a different user, everyone else hears NoIdle.
func TestConcurrentApplyLocksExactlyTheSlots(t *testing.T) {
	high := map[string]float64{car.ActionApplyConcurrent: 1e6}
	e := newEnv(t, setup{emu: caremu.Options{Slots: 100}, cfg: car.Config{Rates: high, MaxRetries: -1}})
	const users = 1000
	var (
		wg      sync.WaitGroup
		mu      sync.Mutex
		won     = map[string]bool{}
		noIdle  int
		unknown []error
	)
	for i := range users {
		wg.Add(1)
		go func() {
			defer wg.Done()
			user := fmt.Sprintf("user-%04d", i)
			err := e.client.ApplyConcurrent(context.Background(), applyIn(user))
			mu.Lock()
			defer mu.Unlock()
			switch car.KindOf(err) {
			case car.KindUnknown:
				if err != nil {
					unknown = append(unknown, err)
					return
				}
				if won[user] {
					unknown = append(unknown, fmt.Errorf("%s won twice", user))
				}
				won[user] = true
			case car.KindNoIdle:
				noIdle++
			default:
				unknown = append(unknown, err)
			}
		}()
	}
	wg.Wait()
	if len(unknown) > 0 {
		t.Fatalf("%d unexpected errors, first: %v", len(unknown), unknown[0])
	}
	if len(won) != 100 || noIdle != 900 {
		t.Fatalf("%d locked, %d NoIdle; want 100 and 900", len(won), noIdle)
	}
	st := e.emu.State()
	if st.Idle != 0 || len(st.Locked) != 100 {
		t.Fatalf("state: idle %d, %d locked", st.Idle, len(st.Locked))
	}
	for _, u := range st.Locked {
		if !won[u] {
			t.Fatalf("%s holds a lock the client was not told about", u)
		}
	}
}

func TestConfigValidation(t *testing.T) {
	for _, cfg := range []car.Config{
		{Scheme: "ftp"},
		{Endpoint: "https://car.tencentcloudapi.com"},
		{Rates: map[string]float64{car.ActionApplyConcurrent: 0}},
		{CallTimeout: -time.Second},
	} {
		if _, err := car.New(cfg); err == nil {
			t.Errorf("New(%+v) accepted a bad config", cfg)
		}
	}
	if _, err := car.New(car.Config{}); err != nil {
		t.Fatalf("zero config: %v", err)
	}
}
