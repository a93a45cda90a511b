package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// multi is a production environment with QUEUES instead of the single-queue variables.
func multi(queues string) map[string]string {
	return map[string]string{
		"REDIS_ADDR":         "10.0.0.5:6379",
		"TICKET_SECRET":      "0123456789abcdef0123",
		"QUEUE_IDLE_TIMEOUT": "2m",
		"QUEUES":             queues,
	}
}

func TestQueuesFromJSON(t *testing.T) {
	c, err := FromEnv(env(multi(`[
		{"Id": "game-a", "ProjectId": "cap-a", "Capacity": 5},
		{"Id": "game-b", "ProjectId": "cap-b", "ApplicationId": "app-b", "ApplicationVersionId": "ver-b",
		 "Capacity": 0, "HeartbeatTimeout": "20s", "RunMode": "RunWithoutClient", "PollMaxInterval": "10s"}
	]`)), false)
	if err != nil {
		t.Fatal(err)
	}
	if len(c.Queues) != 2 {
		t.Fatalf("%d queues, want 2", len(c.Queues))
	}
	a, b := c.Queues[0], c.Queues[1]
	if a.ID != "game-a" || a.ProjectID != "cap-a" || a.Capacity != 5 || a.ApplicationID != "" ||
		a.QueueIdleTimeout != 2*time.Minute || a.HeartbeatTimeout != time.Minute || a.HeartbeatInterval != 15*time.Second {
		t.Fatalf("queue a (the variables' values where it says nothing): %+v", a)
	}
	// b's own HeartbeatTimeout derives its own HeartbeatInterval; the variables fill the rest.
	if b.ID != "game-b" || b.ProjectID != "cap-b" || b.ApplicationID != "app-b" || b.ApplicationVersionID != "ver-b" ||
		b.Capacity != 0 || b.RunMode != "RunWithoutClient" || b.HeartbeatTimeout != 20*time.Second ||
		b.HeartbeatInterval != 5*time.Second || b.PollMaxInterval != 10*time.Second || b.QueueIdleTimeout != 2*time.Minute {
		t.Fatalf("queue b: %+v", b)
	}
	// The top-level fields are the first queue's: the default one.
	if c.QueueID != "game-a" || c.CARProjectID != "cap-a" || c.Capacity != 5 {
		t.Fatalf("default queue: %s %s %d", c.QueueID, c.CARProjectID, c.Capacity)
	}
}

func TestSingleQueueVariablesStillMakeOneQueue(t *testing.T) {
	c, err := FromEnv(env(prod()), false)
	if err != nil {
		t.Fatal(err)
	}
	if len(c.Queues) != 1 || c.Queues[0].ID != "default" || c.Queues[0].ProjectID != "cap-abc" || c.Queues[0].Capacity != 10 {
		t.Fatalf("queues: %+v", c.Queues)
	}
	m := prod()
	m["CAPACITY"] = "0" // CAR's own Total
	if c, err = FromEnv(env(m), false); err != nil || c.Capacity != 0 {
		t.Fatalf("CAPACITY=0: %v, %d", err, c.Capacity)
	}
}

func TestQueuesFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "queues.json")
	if err := os.WriteFile(path, []byte(`[{"Id":"f","ProjectId":"cap-f","Capacity":3}]`), 0o600); err != nil {
		t.Fatal(err)
	}
	m := multi("")
	m["QUEUES_FILE"] = path
	c, err := FromEnv(env(m), false)
	if err != nil || len(c.Queues) != 1 || c.Queues[0].ID != "f" {
		t.Fatalf("QUEUES_FILE: %v %+v", err, c.Queues)
	}
	m["QUEUES_FILE"] = filepath.Join(t.TempDir(), "missing.json")
	if _, err := FromEnv(env(m), false); err == nil || !strings.Contains(err.Error(), "QUEUES_FILE: cannot read") {
		t.Fatalf("missing file: %v", err)
	}
}

func TestBadQueuesNameTheQueueAndField(t *testing.T) {
	for _, tc := range []struct {
		name, queues string
		extra        map[string]string
		want         []string
	}{
		{"not JSON", `[{"Id":`, nil, []string{"QUEUES: want a JSON array of queue objects: invalid JSON"}},
		{"not an array", `{"Id":"a"}`, nil, []string{"QUEUES: want a JSON array"}},
		{"empty", `[]`, nil, []string{"want at least one queue"}},
		{"item not an object", `[1]`, nil, []string{"queue 1: want a JSON object"}},
		{"unknown field", `[{"Id":"a","ProjectId":"p","Capacity":1,"Capcity":2}]`, nil, []string{`queue 1: unknown field "Capcity" (known: Id, ProjectId`}},
		{"field twice", `[{"Id":"a","Id":"b","ProjectId":"p","Capacity":1}]`, nil, []string{"queue 1: field Id given twice"}},
		{"capacity as string", `[{"Id":"a","ProjectId":"p","Capacity":"1"}]`, nil, []string{"Capacity: want a whole number, got a string"}},
		{"capacity fraction", `[{"Id":"a","ProjectId":"p","Capacity":1.5}]`, nil, []string{"Capacity: want a whole number, got 1.5"}},
		{"negative capacity", `[{"Id":"a","ProjectId":"p","Capacity":-1}]`, nil, []string{`queue 1 (Id "a"): Capacity: got "-1", want an integer 0–`}},
		{"duration as number", `[{"Id":"a","ProjectId":"p","Capacity":1,"HeartbeatTimeout":20}]`, nil, []string{"HeartbeatTimeout: want a string, got a number"}},
		{"missing fields", `[{"Capacity":1}]`, nil, []string{"queue 1: Id is required", "queue 1: ProjectId is required"}},
		{"missing capacity", `[{"Id":"a","ProjectId":"p"}]`, nil, []string{`queue 1 (Id "a"): Capacity is required`}},
		{"bad id", `[{"Id":"a{b}","ProjectId":"p","Capacity":1}]`, nil, []string{`queue 1 (Id "a{b}"): Id: got "a{b}"`}},
		{"bad duration", `[{"Id":"a","ProjectId":"p","Capacity":1},{"Id":"b","ProjectId":"q","Capacity":1,"ReadyTimeout":"soon"}]`, nil,
			[]string{`queue 2 (Id "b"): ReadyTimeout: got "soon", want a Go duration`}},
		{"rule broken by an override", `[{"Id":"a","ProjectId":"p","Capacity":1,"PollMaxInterval":"90s"}]`, nil,
			[]string{`queue 1 (Id "a"): PollMaxInterval: got 1m30s, want at most QueueIdleTimeout/2.4`}},
		{"duplicate ids", `[{"Id":"a","ProjectId":"p","Capacity":1},{"Id":"a","ProjectId":"q","Capacity":1}]`, nil,
			[]string{`queue 2 (Id "a"): Id repeats queue 1's`}},
		{"same project and application", `[{"Id":"a","ProjectId":"p","ApplicationId":"x","Capacity":1},{"Id":"b","ProjectId":"p","ApplicationId":"x","Capacity":2}]`, nil,
			[]string{`queue 2 (Id "b"): ProjectId "p" with ApplicationId "x" is queue 1's already`}},
		{"single-queue variable too", `[{"Id":"a","ProjectId":"p","Capacity":1}]`, map[string]string{"CAPACITY": "3"},
			[]string{"QUEUES: CAPACITY is set too: with QUEUES every queue names its own Capacity"}},
		{"both sources", `[{"Id":"a","ProjectId":"p","Capacity":1}]`, map[string]string{"QUEUES_FILE": "/x.json"},
			[]string{"QUEUES: set only one of QUEUES and QUEUES_FILE"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := multi(tc.queues)
			for k, v := range tc.extra {
				m[k] = v
			}
			_, err := FromEnv(env(m), false)
			if err == nil {
				t.Fatal("no error")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q\nshould contain %q", err, w)
				}
			}
			if names := Variables(err); len(names) == 0 || names[0] != "QUEUES" {
				t.Errorf("Variables = %v, want QUEUES first", names)
			}
		})
	}
}

func TestSameProjectTwoApplicationsIsFine(t *testing.T) {
	_, err := FromEnv(env(multi(`[{"Id":"a","ProjectId":"p","ApplicationId":"x","Capacity":1},{"Id":"b","ProjectId":"p","ApplicationId":"y","Capacity":1}]`)), false)
	if err != nil {
		t.Fatal(err)
	}
}

func TestQueueFieldsMarkdownListsEveryField(t *testing.T) {
	md := QueueFieldsMarkdown()
	for _, f := range queueFields {
		if !strings.Contains(md, "`"+f.field+"` | `"+f.variable+"`") {
			t.Errorf("QueueFieldsMarkdown lacks %s", f.field)
		}
	}
}

// TestREADMEQueueFields keeps README.md's table of QUEUES fields exactly QueueFieldsMarkdown().
func TestREADMEQueueFields(t *testing.T) {
	section := readmeSection(t, "Many queues in one deployment")
	if !strings.Contains(section, QueueFieldsMarkdown()) {
		t.Fatalf("README.md's table of QUEUES fields differs from config.QueueFieldsMarkdown():\n%s", QueueFieldsMarkdown())
	}
}
