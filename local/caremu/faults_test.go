package caremu

import (
	"reflect"
	"testing"
	"time"
)

func TestParseFaults(t *testing.T) {
	got, err := ParseFaults(" ApplyConcurrent:InternalError=0.1, CreateSession:latency=200ms~50ms," +
		"DestroySession:latency=1s, *:RequestLimitExceeded=0.05, ApplyConcurrent:script=ResourceNotFound.NoIdle|ok||InternalError ")
	if err != nil {
		t.Fatal(err)
	}
	want := Faults{
		ErrorRates: map[string]map[string]float64{
			"ApplyConcurrent": {"InternalError": 0.1},
			"*":               {"RequestLimitExceeded": 0.05},
		},
		Latency: map[string]Latency{
			"CreateSession":  {Base: 200 * time.Millisecond, Jitter: 50 * time.Millisecond},
			"DestroySession": {Base: time.Second},
		},
		Scripts: map[string][]string{"ApplyConcurrent": {"ResourceNotFound.NoIdle", "", "", "InternalError"}},
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("got %+v\nwant %+v", got, want)
	}
	if f, err := ParseFaults(""); err != nil || len(f.ErrorRates)+len(f.Latency)+len(f.Scripts) != 0 {
		t.Fatalf("empty spec: %+v, %v", f, err)
	}
	for _, bad := range []string{
		"ApplyConcurrent", "ApplyConcurrent:InternalError", "Nope:InternalError=0.1",
		"ApplyConcurrent:InternalError=2", "ApplyConcurrent:InternalError=x",
		"CreateSession:latency=fast", "CreateSession:latency=1s~soon", "CreateSession:latency=-1s",
	} {
		if _, err := ParseFaults(bad); err == nil {
			t.Errorf("ParseFaults(%q) accepted a bad spec", bad)
		}
	}
	if _, err := New(Options{Faults: "Nope:x=1"}); err == nil {
		t.Error("New accepted a bad fault spec")
	}
}

func TestScriptedAnswers(t *testing.T) {
	e, _ := newTestEmulator(t, Options{Slots: 5, Faults: "ApplyConcurrent:script=InternalError|ok"})
	wantCode(t, "1st scripted", apply(t, e, "a"), "InternalError")
	wantCode(t, "2nd scripted ok", apply(t, e, "a"), "")
	e.Script(actionApply, "ResourceUnavailable.Initialization", "", "FailedOperation.SlowDown")
	wantCode(t, "3rd", apply(t, e, "b"), "ResourceUnavailable.Initialization")
	wantCode(t, "4th", apply(t, e, "b"), "")
	wantCode(t, "5th", apply(t, e, "c"), "FailedOperation.SlowDown")
	wantCode(t, "script exhausted", apply(t, e, "c"), "")
	if st := e.State(); !reflect.DeepEqual(st.Locked, []string{"a", "b", "c"}) {
		t.Fatalf("scripted errors must not change state: %+v", st)
	}
}

func TestErrorRates(t *testing.T) {
	e, _ := newTestEmulator(t, Options{Slots: 5})
	e.SetErrorRate(actionDestroy, "InternalError", 1)
	for i := 0; i < 5; i++ {
		wantCode(t, "rate 1", destroy(t, e, "x"), "InternalError")
	}
	e.SetErrorRate(actionDestroy, "InternalError", 0)
	wantCode(t, "rate removed", destroy(t, e, "x"), codeSessionNotFound)

	e.SetErrorRate("*", "ResourceUnavailable.AccessFailed", 1)
	wantCode(t, "wildcard", apply(t, e, "a"), "ResourceUnavailable.AccessFailed")
	e.ResetFaults()
	wantCode(t, "after reset", apply(t, e, "a"), "")

	e.SetErrorRate(actionApply, "InternalError", 0.5)
	errs := 0
	for i := 0; i < 200; i++ {
		if apply(t, e, "a") != "" {
			errs++
		}
	}
	if errs == 0 || errs == 200 {
		t.Fatalf("rate 0.5 gave %d errors in 200 calls", errs)
	}
}

func TestLatencyDrawBounds(t *testing.T) {
	l := Latency{Base: 100 * time.Millisecond, Jitter: 20 * time.Millisecond}
	for range 200 {
		if d := l.draw(); d < l.Base || d > l.Base+l.Jitter {
			t.Fatalf("draw %v outside [%v, %v]", d, l.Base, l.Base+l.Jitter)
		}
	}
	if d := (Latency{Base: time.Second}).draw(); d != time.Second {
		t.Fatalf("no jitter: %v", d)
	}
}

func TestSetFaultsAndRate(t *testing.T) {
	e, _ := newTestEmulator(t, Options{Slots: 5})
	if err := e.SetFaults("ApplyConcurrent:script=InternalError"); err != nil {
		t.Fatal(err)
	}
	wantCode(t, "scripted", apply(t, e, "a"), "InternalError")
	if err := e.SetFaults("Bogus:x=1"); err == nil {
		t.Fatal("bad spec accepted")
	}
	e.SetRate(actionApply, 1)
	wantCode(t, "within rate", apply(t, e, "a"), "")
	wantCode(t, "over rate", apply(t, e, "b"), "RequestLimitExceeded")
	e.SetRate(actionApply, 0)
	wantCode(t, "unlimited again", apply(t, e, "b"), "")
}
