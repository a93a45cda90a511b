package httpapi

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/carqueue/carqueue/shared/queue"
	"github.com/carqueue/carqueue/shared/redistest"
	"github.com/carqueue/carqueue/shared/session"
	"github.com/carqueue/carqueue/shared/ticket"
	"github.com/carqueue/carqueue/shared/webhook"
	"github.com/tencentyun/scf-go-lib/events"
)

// admin calls an operator route with the admin token (or the token given).
func (e *env) admin(route string, body map[string]any, token ...string) answer {
	e.t.Helper()
	tok := testAdminToken
	if len(token) > 0 {
		tok = token[0]
	}
	b, _ := json.Marshal(body)
	if body == nil {
		b = nil // an empty body is fine on the operator's routes
	}
	return e.do("admin/"+route, events.APIGatewayRequest{Method: "POST", Path: "/admin/" + route, Body: string(b),
		Headers: map[string]string{"Authorization": "Bearer " + tok, "x-scf-remote-addr": "198.51.100.9"}})
}

func TestAdminAuthAndBadInputChangeNothing(t *testing.T) {
	eachBackend(t, func(t *testing.T, b redistest.Backend) {
		e := newEnv(t, b, envOpts{capacity: 1})
		for _, r := range []string{"pause", "resume", "capacity", "kick", "notice", "sessions", "records"} {
			for _, tok := range []string{"", "wrong-token", testAdminToken + "x"} {
				a := e.admin(r, map[string]any{"Capacity": 3, "UserId": "u", "Notice": "x"}, tok)
				if a.Status != 401 || a.Env.Code != int(CodeBadAdminToken) {
					t.Fatalf("/admin/%s with token %q: HTTP %d Code %d", r, tok, a.Status, a.Env.Code)
				}
			}
		}
		for _, c := range []struct {
			route string
			body  map[string]any
			field string
		}{
			{"capacity", map[string]any{"Capacity": -1}, "Capacity"},
			{"capacity", map[string]any{"Capacity": 1.5}, "Capacity"},
			{"capacity", map[string]any{}, "Capacity"},
			{"capacity", map[string]any{"Capacity": 2, "Reset": true}, "Capacity"},
			{"notice", map[string]any{"Notice": strings.Repeat("长", MaxNotice+1)}, "Notice"},
			{"notice", map[string]any{}, "Notice"},
			{"pause", map[string]any{"Notice": 7}, "Notice"},
			{"kick", map[string]any{"UserId": "bad user"}, "UserId"},
			{"sessions", map[string]any{"Limit": 0}, "Limit"},
			{"records", map[string]any{"Limit": MaxLimit + 1}, "Limit"},
			{"records", map[string]any{"After": "not-an-id"}, "After"},
			{"pause", map[string]any{"QueueId": "nope"}, "QueueId"},
		} {
			a := e.admin(c.route, c.body)
			if a.Status != 400 || !strings.HasPrefix(a.Env.Msg, c.field) {
				t.Fatalf("/admin/%s %v: HTTP %d %q, want 400 naming %s", c.route, c.body, a.Status, a.Env.Msg, c.field)
			}
		}
		e.nothingChanged()
		if c, _ := e.q.Controls(context.Background()); c != (queue.Controls{}) {
			t.Fatalf("refused controls changed something: %+v", c)
		}
		if strings.Contains(e.logs.String(), testAdminToken) {
			t.Fatal("the admin token is in the log")
		}
	})
}

func TestAdminPauseNoticeCapacityKick(t *testing.T) {
	eachBackend(t, func(t *testing.T, b redistest.Backend) {
		e := newEnv(t, b, envOpts{capacity: 1, slots: 3})
		want(t, e.start("alice", "cs-a"), 200, 0, StatusReady)

		// Pause with a notice: bob queues at the head with no one admitted, and sees both.
		a := e.admin("pause", map[string]any{"Notice": "Maintenance until 10:00"})
		if a.Status != 200 || a.Map["Paused"] != true {
			t.Fatalf("pause: %d %v", a.Status, a.Map)
		}
		want(t, e.stop("alice"), 200, 0, StatusStopped)
		a = e.start("bob", "cs-b")
		want(t, a, 200, 0, StatusQueued)
		if !a.Data.Paused || a.Data.Notice != "Maintenance until 10:00" || a.Data.Position != 1 {
			t.Fatalf("start while paused: %+v", a.Data)
		}
		if a = e.poll("bob"); a.Data.Status != StatusQueued || !a.Data.Paused {
			t.Fatalf("poll while paused: %+v", a.Data)
		}
		s := e.stats()
		if s.Map["Paused"] != true || s.Map["Notice"] != "Maintenance until 10:00" {
			t.Fatalf("stats while paused: %v", s.Map)
		}
		log := e.logs.String()
		if !strings.Contains(log, `"action":"pause"`) || !strings.Contains(log, `"token_id":"`+TokenID(testAdminToken)+`"`) {
			t.Fatalf("no audit line for the pause:\n%s", log)
		}

		// Resume: the next poll admits bob; the notice stays until cleared.
		want(t, e.admin("resume", map[string]any{}), 200, 0, "")
		a = e.poll("bob")
		want(t, a, 200, 0, StatusReady)
		if a.Data.Paused || a.Data.Notice != "Maintenance until 10:00" {
			t.Fatalf("after resume: %+v", a.Data)
		}
		want(t, e.admin("notice", map[string]any{"Notice": ""}), 200, 0, "")
		if a = e.heartbeat("bob"); a.Data.Notice != "" {
			t.Fatalf("notice not cleared: %+v", a.Data)
		}

		// Capacity 2 live: carol gets the second slot at once; lowering to 1 ends nobody.
		want(t, e.start("carol", "cs-c"), 200, 0, StatusQueued)
		want(t, e.admin("capacity", map[string]any{"Capacity": 2}), 200, 0, "")
		want(t, e.poll("carol"), 200, 0, StatusReady)
		want(t, e.admin("capacity", map[string]any{"Capacity": 1}), 200, 0, "")
		want(t, e.heartbeat("carol"), 200, 0, StatusActive)
		if s := e.stats(); s.Map["CapacityOverride"] != 1.0 || s.Map["Capacity"] != 1.0 || s.Map["Holding"] != 2.0 {
			t.Fatalf("stats after lowering: %v", s.Map)
		}
		want(t, e.admin("capacity", map[string]any{"Reset": true}), 200, 0, "")

		// Sessions: both holders, with their play time.
		e.clock.Advance(90 * time.Second)
		a = e.admin("sessions", map[string]any{"Limit": 10})
		var ss []map[string]any
		_ = json.Unmarshal(mustJSON(a.Map["Sessions"]), &ss)
		if len(ss) != 2 || ss[1]["UserId"] != "carol" || ss[1]["Status"] != "Active" || ss[1]["Lane"] != "default" ||
			ss[1]["PlayedSeconds"] != 90.0 {
			t.Fatalf("sessions: %v", a.Map)
		}
		want(t, e.heartbeat("bob"), 200, 0, StatusActive)
		want(t, e.heartbeat("carol"), 200, 0, StatusActive)

		// Kick: a queued user leaves; a holder's CAR session is destroyed at once.
		want(t, e.start("dave", "cs-d"), 200, 0, StatusQueued)
		a = e.admin("kick", map[string]any{"UserId": "dave"})
		if a.Map["Was"] != "Queued" {
			t.Fatalf("kick dave: %v", a.Map)
		}
		a = e.admin("kick", map[string]any{"UserId": "bob"})
		if a.Map["Was"] != "Active" || a.Map["Released"] != true {
			t.Fatalf("kick bob: %v", a.Map)
		}
		for _, st := range e.emu.State().Sessions {
			if st == "bob" {
				t.Fatal("bob's CAR session survived the kick")
			}
		}
		// Bob's page learns why on its next call.
		if a = e.poll("bob"); a.Data.Status != StatusExpired || a.Data.Reason != "kicked" {
			t.Fatalf("bob after the kick: %d %+v", a.Status, a.Data)
		}
		if a = e.admin("kick", map[string]any{"UserId": "nobody"}); a.Map["Was"] != "None" {
			t.Fatalf("kick of an unknown user: %v", a.Map)
		}

		// Records: alice stopped, dave and bob kicked, oldest first, paged.
		a = e.admin("records", map[string]any{"Limit": 2})
		var recs []webhook.Record
		_ = json.Unmarshal(mustJSON(a.Map["Records"]), &recs)
		if len(recs) != 2 || recs[0].UserId != "alice" || recs[0].Reason != "stopped" || recs[1].UserId != "dave" ||
			recs[1].Reason != "kicked" || a.Map["Next"] != recs[1].RecordId || recs[0].QueueId != e.queueID {
			t.Fatalf("records page 1: %v", a.Map)
		}
		if recs[0].JoinedAt == "" || recs[0].AdmittedAt == "" || recs[1].AdmittedAt != "" || recs[1].WaitedSeconds != 0 {
			t.Fatalf("record times: %+v", recs)
		}
		a = e.admin("records", map[string]any{"After": recs[1].RecordId})
		_ = json.Unmarshal(mustJSON(a.Map["Records"]), &recs)
		if len(recs) != 1 || recs[0].UserId != "bob" || recs[0].Reason != "kicked" || a.Map["Next"] != "" {
			t.Fatalf("records page 2: %v", a.Map)
		}
		a = e.admin("records", map[string]any{"Newest": 2})
		_ = json.Unmarshal(mustJSON(a.Map["Records"]), &recs)
		if len(recs) != 2 || recs[0].UserId != "dave" || recs[1].UserId != "bob" {
			t.Fatalf("the newest two: %v", a.Map)
		}
		if a = e.admin("records", map[string]any{"Newest": 2, "After": recs[0].RecordId}); a.Status != 400 {
			t.Fatalf("Newest with After: %d", a.Status)
		}
	})
}

func TestLanesOpeningAndLimitThroughTheRoutes(t *testing.T) {
	const grantSecret = "grant-secret-0123456789"
	eachBackend(t, func(t *testing.T, b redistest.Backend) {
		var opens time.Time
		e := newEnv(t, b, envOpts{capacity: 1, slots: 3,
			deps: func(d *Deps) {
				d.Grants = ticket.NewGrants(grantSecret)
				d.Queues = []Queue{{ID: d.QueueID, ProjectID: d.ProjectID, Sessions: d.Sessions, Lanes: []string{"vip"}}}
			},
			queue: func(o *queue.Options) {
				o.Lanes = []queue.Lane{{Name: "vip", Weight: 3}, {Name: queue.DefaultLane, Weight: 1}}
				opens = o.Now().Add(time.Minute)
				o.OpensAt, o.ShuffleSeed, o.MaxSession = opens, "seed-0123", 20*time.Minute
			},
			session: func(o *session.Options) {
				o.OpensAt, o.ShuffleSeed, o.MaxSession, o.SessionWarning = opens, "seed-0123", 20*time.Minute, 5*time.Minute
			},
		})
		grant := func(user, lane string) string {
			return ticket.Sign(grantSecret, ticket.Grant{UserID: user, Lane: lane, Exp: e.clock.Now().Add(time.Hour)})
		}
		// Before the opening: queued, a countdown, no place, nobody admitted.
		a := e.start("early", "cs-e")
		want(t, a, 200, 0, StatusQueued)
		if a.Data.OpensInSeconds != 60 || a.Data.Position != 0 || a.Data.EtaSeconds != nil || a.Data.Lane != "default" {
			t.Fatalf("before opening: %+v", a.Data)
		}
		if s := e.stats(); s.Map["ShuffleSeed"] != nil {
			t.Fatal("the seed is public before the opening")
		}
		e.clock.Advance(time.Minute)
		a = e.poll("early")
		want(t, a, 200, 0, StatusReady)
		if s := e.stats(); s.Map["ShuffleSeed"] != "seed-0123" {
			t.Fatalf("seed after the opening: %v", s.Map["ShuffleSeed"])
		}

		// Lanes: a default user, then a vip with a grant: the vip is first.
		want(t, e.start("plain", "cs-p"), 200, 0, StatusQueued)
		a = e.post("start", map[string]any{"UserId": "gold", "ClientSession": "cs-g", "Grant": grant("gold", "vip")})
		want(t, a, 200, 0, StatusQueued)
		if a.Data.Lane != "vip" || a.Data.Position != 1 || a.Data.QueueLength != 2 {
			t.Fatalf("vip start: %+v", a.Data)
		}
		e.tickets["gold"] = a.Data.Ticket
		if a = e.poll("plain"); a.Data.Position != 2 || a.Data.Lane != "default" {
			t.Fatalf("plain after the vip: %+v", a.Data)
		}
		a = e.post("start", map[string]any{"UserId": "x", "ClientSession": "cs", "Grant": grant("x", "platinum")})
		if a.Status != 401 || !strings.Contains(a.Env.Msg, "platinum") {
			t.Fatalf("a grant for an unknown lane: %d %q", a.Status, a.Env.Msg)
		}
		if s := e.stats(); s.Map["Lanes"] == nil {
			t.Fatalf("no lanes in stats: %v", s.Map)
		}

		// The session limit: time left on heartbeats, a warning at the end, then time_limit.
		a = e.heartbeat("early")
		if a.Data.RemainingSeconds == nil || *a.Data.RemainingSeconds != 1200 || a.Data.Warning != "" {
			t.Fatalf("first heartbeat: %+v", a.Data)
		}
		e.clock.Advance(16 * time.Minute)
		a = e.heartbeat("early")
		if *a.Data.RemainingSeconds != 240 || !strings.Contains(a.Data.Warning, "4 min") {
			t.Fatalf("in the warning: %+v", a.Data)
		}
		e.clock.Advance(4 * time.Minute)
		e.heartbeat("early")
		e.reap()
		for _, u := range e.emu.State().Sessions {
			if u == "early" {
				t.Fatal("the session outlived its limit")
			}
		}
		if a = e.admin("records", map[string]any{}); !strings.Contains(string(mustJSON(a.Map["Records"])), `"Reason":"time_limit"`) {
			t.Fatalf("no time_limit record: %v", a.Map)
		}
	})
}

func mustJSON(v any) []byte {
	b, _ := json.Marshal(v)
	return b
}
