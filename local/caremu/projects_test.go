package caremu

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"reflect"
	"testing"
	"time"
)

func applyIn(t *testing.T, e *Emulator, user, project string) string {
	t.Helper()
	return call(t, e, actionApply, map[string]string{"UserId": user, "UserIp": "10.0.0.1", "ProjectId": project}).code()
}

func TestProjectsHaveTheirOwnSlots(t *testing.T) {
	e, clock := newTestEmulator(t, Options{Projects: map[string]int{"cap-a": 1, "cap-b": 2}, CleanupDelay: time.Second})
	wantCode(t, "a1 in A", applyIn(t, e, "a1", "cap-a"), "")
	wantCode(t, "a2 in full A", applyIn(t, e, "a2", "cap-a"), codeNoIdle)
	wantCode(t, "b1 in B while A is full", applyIn(t, e, "b1", "cap-b"), "")
	wantCode(t, "b2 in B", applyIn(t, e, "b2", "cap-b"), "")
	wantCode(t, "unknown project", applyIn(t, e, "c1", "cap-c"), codeInvalidProject)
	wantCode(t, "a1 applying in B while holding A", applyIn(t, e, "a1", "cap-b"), codeUserElsewhere)

	count := func(project string) (int, int) {
		a := call(t, e, actionDescribe, map[string]string{"ProjectId": project})
		if a.code() != "" || a.Response.Total == nil {
			t.Fatalf("DescribeConcurrentCount(%s): %q", project, a.code())
		}
		return *a.Response.Total, *a.Response.Running
	}
	if tot, run := count("cap-a"); tot != 1 || run != 1 {
		t.Fatalf("A: Total %d Running %d", tot, run)
	}
	if tot, run := count("cap-b"); tot != 2 || run != 2 {
		t.Fatalf("B: Total %d Running %d", tot, run)
	}
	wantCode(t, "describe an unknown project", call(t, e, actionDescribe, map[string]string{"ProjectId": "x"}).code(), codeInvalidProject)

	// DestroySession names no project: it frees the user's slot wherever it is, and only that.
	wantCode(t, "destroy a1", destroy(t, e, "a1"), "")
	if st, _ := e.ProjectState("cap-a"); st.Cleaning != 1 || st.Idle != 0 || len(st.Locked) != 0 {
		t.Fatalf("A after destroy: %+v", st)
	}
	if st, _ := e.ProjectState("cap-b"); st.Cleaning != 0 || st.Idle != 0 || !reflect.DeepEqual(st.Locked, []string{"b1", "b2"}) {
		t.Fatalf("B after A's destroy: %+v", st)
	}
	clock.Advance(time.Second)
	wantCode(t, "a2 in A after clean-up", applyIn(t, e, "a2", "cap-a"), "")
	if st := e.State(); st.Total != 3 || st.Idle != 0 || !reflect.DeepEqual(st.Locked, []string{"a2", "b1", "b2"}) {
		t.Fatalf("all projects: %+v", st)
	}

	srv := httptest.NewServer(e.StateHandler())
	t.Cleanup(srv.Close)
	for q, want := range map[string]int{"?ProjectId=cap-b": http.StatusOK, "?ProjectId=nope": http.StatusNotFound, "": http.StatusOK} {
		res, err := http.Get(srv.URL + q)
		if err != nil {
			t.Fatal(err)
		}
		var st State
		_ = json.NewDecoder(res.Body).Decode(&st)
		res.Body.Close()
		if res.StatusCode != want {
			t.Fatalf("GET state%s: %d, want %d", q, res.StatusCode, want)
		}
		if q == "?ProjectId=cap-b" && st.Total != 2 {
			t.Fatalf("state of B: %+v", st)
		}
	}
	if _, err := New(Options{Projects: map[string]int{"": 1}}); err == nil {
		t.Fatal("New accepted an empty ProjectId")
	}
}
