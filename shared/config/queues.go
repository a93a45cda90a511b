package config

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"sort"
	"strconv"
	"strings"
	"time"
)

// Queue is one queue of a deployment: the CAR project whose slots it hands out and the
// settings a queue may set for itself. Without QUEUES there is one, from the single-queue
// variables; with it, one per item, each item's missing settings taken from the variables.
type Queue struct {
	ID                                             string
	ProjectID, ApplicationID, ApplicationVersionID string
	// Capacity is the slots the queue may hold; 0 means CAR's own Total for the project
	// (DescribeConcurrentCount, re-read every CAR_TOTAL_REFRESH).
	Capacity int
	RunMode  string

	QueueIdleTimeout  time.Duration
	HeartbeatTimeout  time.Duration
	ReadyTimeout      time.Duration
	HeartbeatInterval time.Duration
	PollMinInterval   time.Duration
	PollMaxInterval   time.Duration

	// Lanes are the priority lanes, in the order written, "default" among them; nil: none.
	Lanes []Lane
	// OpensAt is the scheduled opening; zero: open.
	OpensAt        time.Time
	MaxSession     time.Duration // 0: no limit
	SessionWarning time.Duration

	// Derived names the queue's settings that were computed from others (see Config.Derived).
	Derived []string
}

// MaxQueues bounds QUEUES: a reaper pass probes every queue (one short script each).
const MaxQueues = 10000

// queueFields maps each field of a QUEUES item to the variable it stands in for; an item is
// read as the variables with its fields put in, so every per-queue value is parsed, derived
// and checked against the rules exactly as the variable would be.
var queueFields = []struct{ field, variable string }{
	{"Id", "QUEUE_ID"},
	{"ProjectId", "CAR_PROJECT_ID"},
	{"ApplicationId", "CAR_APPLICATION_ID"},
	{"ApplicationVersionId", "CAR_APPLICATION_VERSION_ID"},
	{"Capacity", "CAPACITY"},
	{"RunMode", "CAR_RUN_MODE"},
	{"QueueIdleTimeout", "QUEUE_IDLE_TIMEOUT"},
	{"HeartbeatTimeout", "HEARTBEAT_TIMEOUT"},
	{"ReadyTimeout", "READY_TIMEOUT"},
	{"HeartbeatInterval", "HEARTBEAT_INTERVAL"},
	{"PollMinInterval", "POLL_MIN_INTERVAL"},
	{"PollMaxInterval", "POLL_MAX_INTERVAL"},
	{"Lanes", "LANES"},
	{"OpensAt", "OPENS_AT"},
	{"MaxSession", "MAX_SESSION"},
	{"SessionWarning", "SESSION_WARNING"},
}

// Lane is one priority lane: a name and its weight (LANES).
type Lane struct {
	Name   string
	Weight int
}

// singleQueueVars are the variables QUEUES replaces: setting both is a mistake worth naming
// (which one would win is not obvious), so FromEnv refuses it.
var singleQueueVars = []string{"QUEUE_ID", "CAR_PROJECT_ID", "CAR_APPLICATION_ID", "CAR_APPLICATION_VERSION_ID", "CAPACITY"}

// QueueFieldsMarkdown lists the fields of a QUEUES item for README.md.
func QueueFieldsMarkdown() string {
	var b strings.Builder
	b.WriteString("| field | variable it stands in for | required |\n| --- | --- | --- |\n")
	for _, f := range queueFields {
		req := "no (the variable's value)"
		switch f.field {
		case "Id", "ProjectId", "Capacity":
			req = "yes"
		}
		fmt.Fprintf(&b, "| `%s` | `%s` | %s |\n", f.field, f.variable, req)
	}
	return b.String()
}

// queuesSource returns the QUEUES JSON (the variable, or the file QUEUES_FILE names) and the
// name to file errors under; "" when neither is set.
func (r *reader) queuesSource() (text, name string) {
	inline, file := r.str("QUEUES"), r.str("QUEUES_FILE")
	switch {
	case inline != "" && file != "":
		r.errs = append(r.errs, &VarError{Name: "QUEUES", Other: "QUEUES_FILE", Problem: "set only one of QUEUES and QUEUES_FILE"})
		return "", ""
	case file != "":
		b, err := os.ReadFile(file)
		if err != nil {
			r.add("QUEUES_FILE", fmt.Sprintf("cannot read %q: %v", file, err))
			return "", ""
		}
		return string(b), "QUEUES_FILE"
	}
	return inline, "QUEUES"
}

// queues reads the queues of the deployment into c.Queues. base is the configuration read
// from the variables alone; with QUEUES, each item is read again as the variables with the
// item's fields put in (itemEnv), so a per-queue value gets the variable's parsing, derivation
// and rules, and its errors say which queue and which field.
func (r *reader) queues(c *Config, text, source string) {
	if text == "" {
		c.Queues = []Queue{queueOf(*c)}
		return
	}
	for _, v := range singleQueueVars {
		if r.isSet(v) {
			r.errs = append(r.errs, &VarError{Name: source, Other: v,
				Problem: fmt.Sprintf("%s is set too: with %s every queue names its own %s in its item (%s)", v, source, fieldOf(v), "unset "+v)})
		}
	}
	items, err := decodeQueues(text)
	if err != nil {
		r.add(source, err.Error())
		return
	}
	seenID := map[string]int{}
	seenApp := map[string]int{}
	for i, item := range items {
		label := fmt.Sprintf("queue %d", i+1)
		if id, ok := item["Id"]; ok {
			label = fmt.Sprintf("queue %d (Id %q)", i+1, truncate(id, 64))
		}
		for _, req := range []string{"Id", "ProjectId", "Capacity"} {
			if _, ok := item[req]; !ok {
				r.add(source, fmt.Sprintf("%s: %s is required", label, req))
			}
		}
		q, errs := r.readItem(item)
		for _, e := range errs {
			r.add(source, label+": "+e)
		}
		if len(errs) > 0 || q.ID == "" {
			continue
		}
		if j, dup := seenID[q.ID]; dup {
			r.add(source, fmt.Sprintf("%s: Id repeats queue %d's; every queue needs its own Id", label, j+1))
		}
		seenID[q.ID] = i
		app := q.ProjectID + "\x00" + q.ApplicationID
		if j, dup := seenApp[app]; dup {
			r.add(source, fmt.Sprintf("%s: ProjectId %q with ApplicationId %q is queue %d's already; two queues cannot hand out the same slots",
				label, q.ProjectID, q.ApplicationID, j+1))
		}
		seenApp[app] = i
		c.Queues = append(c.Queues, q)
	}
}

// readItem reads one item as the variables with its fields put in.
func (r *reader) readItem(item map[string]string) (Queue, []string) {
	overlay := map[string]string{}
	for _, f := range queueFields {
		if v, ok := item[f.field]; ok {
			overlay[f.variable] = v
		}
	}
	sub := &reader{local: r.local, getenv: func(name string) string {
		if v, ok := overlay[name]; ok {
			return v
		}
		for _, s := range singleQueueVars {
			if s == name {
				return "" // never the single-queue variables (refused above anyway)
			}
		}
		return r.getenv(name)
	}}
	if v, ok := overlay["CAR_PROJECT_ID"]; ok && v == "" {
		return Queue{}, []string{"ProjectId: must not be empty"}
	}
	var c Config
	sub.read(&c)
	sub.derive(&c)
	sub.apply(facts{c: &c, set: sub.isSet}, false)
	var errs []string
	for _, e := range sub.errs {
		ve, ok := e.(*VarError)
		if !ok {
			errs = append(errs, e.Error())
			continue
		}
		_, name := overlay[ve.Name]
		_, other := overlay[ve.Other]
		if !name && !other {
			continue // a variable's own problem: reported once, for the variable
		}
		errs = append(errs, fieldOf(ve.Name)+": "+fieldNames(ve.Problem))
	}
	return queueOf(c), errs
}

// queueOf is the queue part of a configuration.
func queueOf(c Config) Queue {
	q := Queue{
		ID: c.QueueID, ProjectID: c.CARProjectID, ApplicationID: c.CARApplicationID,
		ApplicationVersionID: c.CARApplicationVersionID, Capacity: c.Capacity, RunMode: c.CARRunMode,
		QueueIdleTimeout: c.QueueIdleTimeout, HeartbeatTimeout: c.HeartbeatTimeout, ReadyTimeout: c.ReadyTimeout,
		HeartbeatInterval: c.HeartbeatInterval, PollMinInterval: c.PollMinInterval, PollMaxInterval: c.PollMaxInterval,
		Lanes: c.Lanes, OpensAt: c.OpensAt, MaxSession: c.MaxSession, SessionWarning: c.SessionWarning,
	}
	for _, d := range c.Derived {
		q.Derived = append(q.Derived, d)
	}
	return q
}

// fieldOf names a variable as a QUEUES item calls it ("HEARTBEAT_TIMEOUT" → "HeartbeatTimeout").
func fieldOf(variable string) string {
	for _, f := range queueFields {
		if f.variable == variable {
			return f.field
		}
	}
	return variable
}

// fieldNames rewrites the variables a message names into the item's field names.
func fieldNames(msg string) string {
	// Longest names first, so POLL_MIN_INTERVAL is not half-replaced by a shorter name.
	fs := append([]struct{ field, variable string }(nil), queueFields...)
	sort.Slice(fs, func(i, j int) bool { return len(fs[i].variable) > len(fs[j].variable) })
	for _, f := range fs {
		msg = strings.ReplaceAll(msg, f.variable, f.field)
	}
	return msg
}

// decodeQueues parses the QUEUES JSON strictly: an array of objects whose keys are the known
// fields, each once; strings for ids and durations, a whole number for Capacity. Values come
// back as the text a variable would hold.
func decodeQueues(text string) ([]map[string]string, error) {
	var raw []json.RawMessage
	dec := json.NewDecoder(strings.NewReader(text))
	if err := dec.Decode(&raw); err != nil {
		return nil, fmt.Errorf("want a JSON array of queue objects: %s", jsonProblem(err))
	}
	if dec.More() {
		return nil, fmt.Errorf("want one JSON array, found more after it")
	}
	if len(raw) == 0 {
		return nil, fmt.Errorf("want at least one queue (unset it for the single-queue variables)")
	}
	if len(raw) > MaxQueues {
		return nil, fmt.Errorf("want at most %d queues, got %d", MaxQueues, len(raw))
	}
	out := make([]map[string]string, len(raw))
	for i, item := range raw {
		m, err := decodeItem(item)
		if err != nil {
			return nil, fmt.Errorf("queue %d: %s", i+1, err)
		}
		out[i] = m
	}
	return out, nil
}

func decodeItem(item json.RawMessage) (map[string]string, error) {
	dec := json.NewDecoder(bytes.NewReader(item))
	dec.UseNumber()
	if t, err := dec.Token(); err != nil || t != json.Delim('{') {
		return nil, fmt.Errorf("want a JSON object")
	}
	out := map[string]string{}
	for dec.More() {
		t, err := dec.Token()
		if err != nil {
			return nil, fmt.Errorf("%s", jsonProblem(err))
		}
		key, _ := t.(string)
		known := false
		for _, f := range queueFields {
			known = known || f.field == key
		}
		if !known {
			names := make([]string, len(queueFields))
			for i, f := range queueFields {
				names[i] = f.field
			}
			return nil, fmt.Errorf("unknown field %q (known: %s)", truncate(key, 64), strings.Join(names, ", "))
		}
		if _, dup := out[key]; dup {
			return nil, fmt.Errorf("field %s given twice", key)
		}
		var v any
		if err := dec.Decode(&v); err != nil {
			return nil, fmt.Errorf("%s: %s", key, jsonProblem(err))
		}
		switch x := v.(type) {
		case string:
			if key == "Capacity" {
				return nil, fmt.Errorf("Capacity: want a whole number, got a string")
			}
			out[key] = x
		case json.Number:
			if key != "Capacity" {
				return nil, fmt.Errorf("%s: want a string, got a number", key)
			}
			if _, err := strconv.Atoi(x.String()); err != nil {
				return nil, fmt.Errorf("Capacity: want a whole number, got %s", truncate(x.String(), 32))
			}
			out[key] = x.String()
		default:
			return nil, fmt.Errorf("%s: want a %s", key, map[bool]string{true: "whole number", false: "string"}[key == "Capacity"])
		}
	}
	return out, nil
}

// jsonProblem says what is wrong without quoting the input (it may hold anything).
func jsonProblem(err error) string {
	if se, ok := err.(*json.SyntaxError); ok {
		return fmt.Sprintf("invalid JSON at byte %d", se.Offset)
	}
	if te, ok := err.(*json.UnmarshalTypeError); ok {
		return fmt.Sprintf("want %s at byte %d, got %s", te.Type, te.Offset, te.Value)
	}
	return "invalid JSON"
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}
