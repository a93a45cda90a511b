package httpapi

import (
	"encoding/json"
	"net/http"
	"strconv"

	"github.com/carqueue/carqueue/shared/session"
	"github.com/tencentyun/scf-go-lib/events"
)

// Envelope is the body of every answer, errors included.
type Envelope struct {
	Code      Code   `json:"Code"`
	Msg       string `json:"Msg"`
	RequestId string `json:"RequestId"` //nolint:revive // the contract's spelling
	Data      any    `json:"Data"`
}

// Data is the payload of the user routes; fields not meaningful for a Status are omitted.
type Data struct {
	Status          string `json:"Status,omitempty"`
	Ticket          string `json:"Ticket,omitempty"`
	Position        int64  `json:"Position,omitempty"`
	QueueLength     int64  `json:"QueueLength,omitempty"`
	EtaSeconds      *int64 `json:"EtaSeconds,omitempty"`
	NextPollMs      int64  `json:"NextPollMs,omitempty"`
	ServerSession   string `json:"ServerSession,omitempty"`
	NextHeartbeatMs int64  `json:"NextHeartbeatMs,omitempty"`
	// ReconnectWindowMs is how long after its last heartbeat a holder may still /reconnect
	// to its slot (HEARTBEAT_TIMEOUT), with Ready and Active; an extension of the contract.
	ReconnectWindowMs int64 `json:"ReconnectWindowMs,omitempty"`
	// Reason says why a user is Expired (stopped, idle, heartbeat_timeout, never_started,
	// car_refused) when the queue still remembers it; an extension of the contract.
	Reason string `json:"Reason,omitempty"`

	// The second edition's fields (API.md): the user's priority lane; before a scheduled
	// opening the seconds until it (and no Position); a capped session's seconds left and its
	// warning; the operator's notice and whether admission is paused.
	Lane             string `json:"Lane,omitempty"`
	OpensInSeconds   int64  `json:"OpensInSeconds,omitempty"`
	RemainingSeconds *int64 `json:"RemainingSeconds,omitempty"`
	Warning          string `json:"Warning,omitempty"`
	Notice           string `json:"Notice,omitempty"`
	Paused           bool   `json:"Paused,omitempty"`
}

// The Status values of the contract.
const (
	StatusQueued    = string(session.StatusQueued)
	StatusAdmitting = string(session.StatusAdmitting)
	StatusReady     = string(session.StatusReady)
	StatusActive    = string(session.StatusActive)
	StatusExpired   = string(session.StatusExpired)
	StatusStopped   = "Stopped"
)

// answerHeaders are the CORS and cache headers every answer carries.
func (a *API) answerHeaders() map[string]string {
	h := map[string]string{
		"Content-Type":                  "application/json",
		"Cache-Control":                 "no-store",
		"X-Content-Type-Options":        "nosniff",
		"Access-Control-Allow-Origin":   a.corsOrigin,
		"Access-Control-Expose-Headers": "Retry-After",
	}
	if a.corsOrigin != "*" {
		h["Vary"] = "Origin"
	}
	return h
}

// reply is an answer before it leaves: the event functions return it as SCF's response
// (event), the server mode writes its body as it is, without copying it into a string first.
type reply struct {
	status  int
	headers map[string]string // shared with other answers: read only
	body    []byte
}

// event is the reply as an SCF API gateway response.
func (r reply) event() events.APIGatewayResponse {
	return events.APIGatewayResponse{StatusCode: r.status, Headers: r.headers, Body: string(r.body)}
}

// response builds the answer: the envelope as JSON plus CORS and cache headers.
func (a *API) response(status int, env Envelope, retryAfter int, extra map[string]string) reply {
	if env.Data == nil {
		env.Data = struct{}{}
	}
	body, err := json.Marshal(env)
	if err != nil { // only possible with a Data type that cannot be encoded: a bug
		status = http.StatusInternalServerError
		body = []byte(`{"Code":5000,"Msg":"internal error","RequestId":` + strconv.Quote(env.RequestId) + `,"Data":{}}`)
	}
	if retryAfter <= 0 && len(extra) == 0 {
		a.plain.once.Do(func() { a.plain.h = a.answerHeaders() })
		return reply{status: status, headers: a.plain.h, body: body}
	}
	h := a.answerHeaders()
	if retryAfter > 0 {
		h["Retry-After"] = strconv.Itoa(retryAfter)
	}
	for k, v := range extra {
		h[k] = v
	}
	return reply{status: status, headers: h, body: body}
}
