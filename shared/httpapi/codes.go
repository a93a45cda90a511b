package httpapi

import (
	"fmt"
	"net/http"
)

// Code is the envelope's stable error number; CODES.md documents each one. Clients switch on
// it, so a value never changes meaning once released.
type Code int

// The codes. The first three digits repeat the HTTP status they travel with.
const (
	CodeOK            Code = 0
	CodeInvalidField  Code = 4001 // a field is missing, of the wrong type, or outside its limits
	CodeInvalidBody   Code = 4002 // the body is not one JSON object
	CodeBadTicket     Code = 4010 // Ticket missing, malformed, forged, or another user's
	CodeBadAdminToken Code = 4011 // /stats without the right Authorization: Bearer token
	CodeUnknownPath   Code = 4040 // no such route
	CodeElsewhere     Code = 4090 // the UserId waits in or holds another queue of this deployment
	CodeMethod        Code = 4050 // method not allowed on this route
	CodeTooLarge      Code = 4130 // body larger than 16 KiB
	CodeRateLimited   Code = 4290 // too many requests; see Retry-After
	CodeInternal      Code = 5000 // a bug; the details are in the server log only
	CodeUnavailable   Code = 5030 // Redis or CAR unavailable; retry after Retry-After
	CodeCARRefused    Code = 5031 // CAR refused the admission for good (server configuration)
	CodeNotConfigured Code = 5032 // the function's configuration is invalid; Msg names the variable
)

// apiError is an answer other than success: the HTTP status, the Code and a plain message
// naming what was wrong. Route code returns it as an error; serve turns it into the envelope.
type apiError struct {
	status     int
	code       Code
	msg        string
	retryAfter int // seconds; 0: no Retry-After header
	cause      error
}

func (e *apiError) Error() string {
	if e.cause != nil {
		return fmt.Sprintf("%d %d %s: %v", e.status, e.code, e.msg, e.cause)
	}
	return fmt.Sprintf("%d %d %s", e.status, e.code, e.msg)
}

func (e *apiError) Unwrap() error { return e.cause }

func invalid(format string, args ...any) *apiError {
	return &apiError{status: http.StatusBadRequest, code: CodeInvalidField, msg: fmt.Sprintf(format, args...)}
}

func badTicket(msg string) *apiError {
	return &apiError{status: http.StatusUnauthorized, code: CodeBadTicket, msg: msg}
}

// unavailable wraps an infrastructure failure (Redis, CAR) into a 503; the cause goes to the
// log, never to the client.
func unavailable(what string, cause error) *apiError {
	return &apiError{status: http.StatusServiceUnavailable, code: CodeUnavailable,
		msg: what + " unavailable, retry later", retryAfter: 1, cause: cause}
}

// Unavailable is the 503 answer for infrastructure that could not be built (a bad
// configuration, Redis unreachable at start-up). msg names what is wrong (e.g. the variable).
func Unavailable(code Code, msg string) *apiError {
	return &apiError{status: http.StatusServiceUnavailable, code: code, msg: msg, retryAfter: 5}
}

// Codes lists every Code; a test checks CODES.md documents exactly these.
var Codes = []Code{CodeOK, CodeInvalidField, CodeInvalidBody, CodeBadTicket, CodeBadAdminToken, CodeUnknownPath, CodeElsewhere,
	CodeMethod, CodeTooLarge, CodeRateLimited, CodeInternal, CodeUnavailable, CodeCARRefused, CodeNotConfigured}
