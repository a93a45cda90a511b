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
		Lane:              v.Lane,
		OpensInSeconds:    ceilSeconds(v.OpensIn),
		Warning:           v.Warning,
		Notice:            v.Notice,
		Paused:            v.Paused,
	}
	if v.Limited {
		left := ceilSeconds(v.Remaining)
		d.RemainingSeconds = &left
	}
	if v.ETA > 0 {
		eta := int64((v.ETA + time.Second - 1) / time.Second)
		d.EtaSeconds = &eta
	}
	return d
}

// ceilSeconds is d in whole seconds, rounded up (0 for 0).
func ceilSeconds(d time.Duration) int64 {
	if d <= 0 {
		return 0
	}
	return int64((d + time.Second - 1) / time.Second)
}
