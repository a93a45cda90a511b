package car

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
)

// Kind is what a caller should do about a CAR error. Callers branch on the
// kind, never on raw codes, so the code table lives in one place (classify).
type Kind int

const (
	// KindUnknown: not a CAR error, or a code we do not know. Treat as a failure.
	KindUnknown Kind = iota
	// KindNoIdle: no idle slot; keep the user waiting, stop admitting this round.
	KindNoIdle
	// KindLockExpired: CreateSession without a live lock; ApplyConcurrent again.
	KindLockExpired
	// KindBusy: a call for this UserId is in progress; back off.
	KindBusy
	// KindTransient: CAR or the network hiccupped; retry later, the user keeps its place.
	KindTransient
	// KindRateLimited: the API rate limit was hit; pace calls and retry.
	KindRateLimited
	// KindOurFault: the request was wrong; fail loudly, do not spin.
	KindOurFault
	// KindAuth: credentials missing or rejected; fail loudly.
	KindAuth
	// KindNotFound: there is no session for the user (on DestroySession: already gone).
	KindNotFound
)

var kindNames = [...]string{
	KindUnknown:     "unknown",
	KindNoIdle:      "no_idle",
	KindLockExpired: "lock_expired",
	KindBusy:        "busy",
	KindTransient:   "transient",
	KindRateLimited: "rate_limited",
	KindOurFault:    "our_fault",
	KindAuth:        "auth",
	KindNotFound:    "not_found",
}

// String returns a stable snake_case name, suitable for logs and metrics labels.
func (k Kind) String() string {
	if k >= 0 && int(k) < len(kindNames) {
		return kindNames[k]
	}
	return fmt.Sprintf("kind(%d)", int(k))
}

// Retryable reports whether the client itself retries errors of this kind.
// Busy and NoIdle are deliberately not retried here: the caller decides.
func (k Kind) Retryable() bool { return k == KindTransient || k == KindRateLimited }

// Error is a failed CAR call: the service's error code and message, the
// RequestId to quote to Tencent support, and the classified Kind.
type Error struct {
	Action    string
	Code      string
	Message   string
	RequestID string
	Kind      Kind
	cause     error
}

func (e *Error) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "car %s: %s", e.Action, e.Code)
	if e.Message != "" {
		fmt.Fprintf(&b, ": %s", e.Message)
	}
	if e.RequestID != "" {
		fmt.Fprintf(&b, " (RequestId %s)", e.RequestID)
	}
	return b.String()
}

// Unwrap exposes the underlying network or context error, if any.
func (e *Error) Unwrap() error { return e.cause }

// KindOf classifies any error: nil → KindUnknown; a *Error (anywhere in the
// chain) → its Kind; context deadline/cancellation and network errors →
// KindTransient.
func KindOf(err error) Kind {
	if err == nil {
		return KindUnknown
	}
	var ce *Error
	if errors.As(err, &ce) {
		return ce.Kind
	}
	if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled) {
		return KindTransient
	}
	var ne net.Error
	if errors.As(err, &ne) {
		return KindTransient
	}
	return KindUnknown
}

// classify maps a CAR (or SDK client-side) error code to a Kind, per the
// error table in DESIGN.md §2 and the codes of car/v20220110/errors.go.
func classify(action, code string) Kind {
	switch code {
	case "ResourceNotFound.NoIdle":
		return KindNoIdle
	case "FailedOperation.LockTimeout":
		return KindLockExpired
	case "FailedOperation.SlowDown":
		return KindBusy
	case "ResourceNotFound.SessionNotFound":
		// For CreateSession a vanished session means the lock is gone too:
		// the remedy is ApplyConcurrent again. Elsewhere it means "already gone".
		if action == ActionCreateSession {
			return KindLockExpired
		}
		return KindNotFound
	case "ResourceUnavailable.Initialization", "UnsupportedOperation.Stopping",
		"UnsupportedOperation.NotRunning", "FailedOperation.ProcessTimeout",
		"ResourceUnavailable.AccessFailed", "ResourceUnavailable",
		"ClientError.NetworkError", "ClientError.HttpStatusCodeError", "ClientError.IOError":
		return KindTransient
	case "MissingParameter", "InvalidAction", "UnknownParameter", "OperationDenied",
		"LimitExceeded.Role", "NoSuchVersion", "UnsupportedProtocol", "RequestSizeLimitExceeded":
		return KindOurFault
	}
	switch {
	case strings.HasPrefix(code, "InternalError"):
		return KindTransient
	case strings.HasPrefix(code, "RequestLimitExceeded"):
		return KindRateLimited
	case strings.HasPrefix(code, "InvalidParameter"), strings.HasPrefix(code, "MissingParameter"),
		strings.HasPrefix(code, "ClientError.InvalidParameter"):
		return KindOurFault
	case strings.HasPrefix(code, "AuthFailure"), strings.HasPrefix(code, "UnauthorizedOperation"):
		return KindAuth
	}
	return KindUnknown
}
