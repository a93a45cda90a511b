package caremu

import (
	"crypto/rand"
	"encoding/json"
	"fmt"
	"net/http"
)

const apiVersion = "2022-01-10"

// Actions the emulator implements.
const (
	actionApply    = "ApplyConcurrent"
	actionCreate   = "CreateSession"
	actionDestroy  = "DestroySession"
	actionDescribe = "DescribeConcurrentCount"
)

// CAR error codes with a meaning in the slot model.
const (
	codeNoIdle          = "ResourceNotFound.NoIdle"
	codeLockTimeout     = "FailedOperation.LockTimeout"
	codeSlowDown        = "FailedOperation.SlowDown"
	codeSessionNotFound = "ResourceNotFound.SessionNotFound"
	// A ProjectId the emulator does not host (Options.Projects).
	codeInvalidProject = "InvalidParameterValue.ProjectId"
	// An ApplyConcurrent for a user who holds a slot of another project: the emulator's
	// stand-in for what a real account makes of it, loud (a parameter error) so a test sees
	// the queues broke the one-queue-at-a-time rule.
	codeUserElsewhere = "InvalidParameterValue.UserId"
)

// paramSpec lists an action's parameters: required ones and optional ones.
// Anything else is UnknownParameter, as on Tencent Cloud API v3.
type paramSpec struct{ required, optional []string }

var actionParams = map[string]paramSpec{
	actionApply: {
		required: []string{"UserId", "UserIp", "ProjectId"},
		optional: []string{"ApplicationId", "ApplicationVersionId", "ApplicationCategory"},
	},
	actionCreate: {
		required: []string{"UserId", "UserIp"},
		optional: []string{"ClientSession", "RunMode", "ApplicationParameters", "HostUserId", "Role"},
	},
	actionDestroy:  {required: []string{"UserId"}},
	actionDescribe: {required: []string{"ProjectId"}},
}

func knownAction(a string) bool { _, ok := actionParams[a]; return ok }

// messages for codes the emulator answers without a specific message.
var defaultMessages = map[string]string{
	codeNoIdle:                           "no idle concurrency",
	codeLockTimeout:                      "concurrency not applied or the lock has timed out",
	codeSlowDown:                         "a request for this UserId is in progress, please try again later",
	codeSessionNotFound:                  "session not found",
	"InternalError":                      "internal error",
	"RequestLimitExceeded":               "request frequency exceeds the limit",
	"ResourceUnavailable.Initialization": "the instance is initializing",
	"ResourceUnavailable.AccessFailed":   "failed to access the concurrency instance",
	"UnsupportedOperation.Stopping":      "the session is being destroyed",
	"FailedOperation.ProcessTimeout":     "processing timed out",
}

func messageFor(code string) string {
	if m, ok := defaultMessages[code]; ok {
		return m
	}
	return "injected error " + code
}

// parseParams decodes and validates an action's JSON body into string
// parameters, returning a CAR error code and message on failure.
func parseParams(action string, body []byte) (map[string]string, string, string) {
	raw := map[string]json.RawMessage{}
	if len(body) > 0 {
		if err := json.Unmarshal(body, &raw); err != nil {
			return nil, "InvalidParameter.JsonParseError", "request body is not a JSON object: " + err.Error()
		}
	}
	spec := actionParams[action]
	allowed := map[string]bool{}
	for _, k := range append(append([]string{}, spec.required...), spec.optional...) {
		allowed[k] = true
	}
	params := map[string]string{}
	for k, v := range raw {
		if !allowed[k] {
			return nil, "UnknownParameter", fmt.Sprintf("the parameter `%s` is not recognized", k)
		}
		var s string
		if err := json.Unmarshal(v, &s); err != nil {
			return nil, "InvalidParameter", fmt.Sprintf("the parameter `%s` must be a string", k)
		}
		params[k] = s
	}
	for _, k := range spec.required {
		if params[k] == "" {
			return nil, "MissingParameter", fmt.Sprintf("the parameter `%s` is missing", k)
		}
	}
	return params, "", ""
}

func writeResult(w http.ResponseWriter, reqID string, fields map[string]any) {
	if fields == nil {
		fields = map[string]any{}
	}
	fields["RequestId"] = reqID
	writeJSON(w, reqID, map[string]any{"Response": fields})
}

func writeError(w http.ResponseWriter, reqID, code, msg string) {
	writeJSON(w, reqID, map[string]any{"Response": map[string]any{
		"Error":     map[string]string{"Code": code, "Message": msg},
		"RequestId": reqID,
	}})
}

// writeJSON answers HTTP 200 like Tencent Cloud API v3 does, errors included.
func writeJSON(w http.ResponseWriter, reqID string, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-TC-RequestId", reqID)
	w.WriteHeader(http.StatusOK)
	_ = json.NewEncoder(w).Encode(v)
}

// newRequestID returns a random UUID, the shape of CAR's RequestId.
func newRequestID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
}

// newServerSession returns an opaque ServerSession (base64-ish, like CAR's).
func newServerSession() string {
	return "emu-" + rand.Text() + rand.Text()
}
