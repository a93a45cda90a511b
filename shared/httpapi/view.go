package httpapi

import (
	"time"

	"github.com/carqueue/carqueue/shared/session"
)

// render maps a use case's View to the contract's Data; fields that do not apply to the
// status are zero and so omitted.
func render(v session.View) Data {
	d := Data{
		Status:            string(v.Status),
		Position:          v.Position,
		QueueLength:       v.Length,
		NextPollMs:        v.NextPoll.Milliseconds(),
		ServerSession:     v.ServerSession,
		NextHeartbeatMs:   v.NextHeartbeat.Milliseconds(),
		ReconnectWindowMs: v.ReconnectWindow.Milliseconds(),
		Reason:            string(v.Reason),
	}
	if v.ETA > 0 {
		eta := int64((v.ETA + time.Second - 1) / time.Second)
		d.EtaSeconds = &eta
	}
	return d
}
