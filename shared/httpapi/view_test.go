package httpapi

import (
	"testing"
	"time"

	"github.com/carqueue/carqueue/shared/queue"
	"github.com/carqueue/carqueue/shared/session"
)

// TestRender: each View becomes the contract's Data, with only the fields of its status.
func TestRender(t *testing.T) {
	eta := int64(90)
	cases := []struct {
		v    session.View
		want Data
	}{
		{session.View{Status: session.StatusQueued, Position: 4, Length: 9, NextPoll: 2 * time.Second},
			Data{Status: StatusQueued, Position: 4, QueueLength: 9, NextPollMs: 2000}},
		{session.View{Status: session.StatusQueued, Position: 1, Length: 1, NextPoll: time.Second, ETA: 89500 * time.Millisecond},
			Data{Status: StatusQueued, Position: 1, QueueLength: 1, NextPollMs: 1000, EtaSeconds: &eta}},
		{session.View{Status: session.StatusAdmitting, NextPoll: time.Second}, Data{Status: StatusAdmitting, NextPollMs: 1000}},
		{session.View{Status: session.StatusReady, ServerSession: "ss", NextHeartbeat: 5 * time.Second, ReconnectWindow: 20 * time.Second},
			Data{Status: StatusReady, ServerSession: "ss", NextHeartbeatMs: 5000, ReconnectWindowMs: 20000}},
		{session.View{Status: session.StatusActive, NextHeartbeat: 5 * time.Second, ReconnectWindow: 20 * time.Second},
			Data{Status: StatusActive, NextHeartbeatMs: 5000, ReconnectWindowMs: 20000}},
		{session.View{Status: session.StatusExpired, Reason: queue.ReasonIdle}, Data{Status: StatusExpired, Reason: "idle"}},
		{session.View{Status: session.StatusExpired, Note: "never shown"}, Data{Status: StatusExpired}},
	}
	for _, c := range cases {
		got := render(c.v)
		if (got.EtaSeconds == nil) != (c.want.EtaSeconds == nil) || (got.EtaSeconds != nil && *got.EtaSeconds != *c.want.EtaSeconds) {
			t.Errorf("render(%+v).EtaSeconds = %v, want %v", c.v, got.EtaSeconds, c.want.EtaSeconds)
		}
		got.EtaSeconds, c.want.EtaSeconds = nil, nil
		if got != c.want {
			t.Errorf("render(%+v) = %+v, want %+v", c.v, got, c.want)
		}
	}
}
