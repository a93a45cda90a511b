package httpapi

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"log/slog"
	"net/http"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/carqueue/carqueue/shared/queue"
	"github.com/carqueue/carqueue/shared/session"
	"github.com/carqueue/carqueue/shared/webhook"
)

// The operator's routes of API.md (`/admin/*`, all POST, `Authorization: Bearer
// <ADMIN_TOKEN>`, optional QueueId): transport only, each calls one of the session service's
// operator use cases. Every control is written to the log with who made it (the token's id,
// never the token) and what it was.

// Operator is what the operator's routes need of a queue's use cases; *session.Service
// satisfies it.
type Operator interface {
	Pause(ctx context.Context, notice *string) error
	Resume(ctx context.Context) error
	SetNotice(ctx context.Context, notice string) error
	SetCapacity(ctx context.Context, n int) error
	ResetCapacity(ctx context.Context) error
	Kick(ctx context.Context, userID string) (queue.State, session.Stopped, error)
	Sessions(ctx context.Context, limit int) ([]session.SessionInfo, error)
	Records(ctx context.Context, after string, limit int) ([]queue.Record, string, error)
	NewestRecords(ctx context.Context, limit int) ([]queue.Record, error)
	History(ctx context.Context) ([]queue.Minute, error)
	OperatorStats(ctx context.Context) (queue.Stats, error)
	ShuffleSeed() string
}

// Limits of the operator's requests.
const (
	MaxNotice    = queue.MaxNotice
	DefaultLimit = 100
	MaxLimit     = queue.MaxList
)

// adminRoutes are the operator's routes by name (routeOf gives "admin/<name>").
func (a *API) adminRoutes() map[string]routeSpec {
	post := []string{http.MethodPost}
	return map[string]routeSpec{
		"admin/pause":    {a.admin(a.pause), post},
		"admin/resume":   {a.admin(a.resume), post},
		"admin/capacity": {a.admin(a.capacity), post},
		"admin/kick":     {a.admin(a.kick), post},
		"admin/notice":   {a.admin(a.notice), post},
		"admin/sessions": {a.admin(a.sessions), post},
		"admin/records":  {a.admin(a.records), post},
	}
}

type adminFunc func(ctx context.Context, rq *request, q *Queue, op Operator) (any, error)

// admin checks the token, picks the queue and hands the route its operator use cases.
func (a *API) admin(f adminFunc) routeFunc {
	return func(ctx context.Context, rq *request) (any, error) {
		if err := a.requireAdmin(rq); err != nil {
			return nil, err
		}
		q, err := a.pick(rq)
		if err != nil {
			return nil, err
		}
		rq.queue = q
		if q.Operator == nil {
			return nil, &apiError{status: http.StatusNotFound, code: CodeUnknownPath, msg: "path: no operator routes for this queue"}
		}
		return f(ctx, rq, q, q.Operator)
	}
}

// requireAdmin is the Bearer check shared by /stats and /admin/*.
func (a *API) requireAdmin(rq *request) error {
	if a.adminAuthorized(rq.header["authorization"]) {
		return nil
	}
	msg := "Authorization: want Bearer <ADMIN_TOKEN>"
	if a.d.AdminToken == "" {
		msg = "Authorization: /" + rq.route + " is turned off (no ADMIN_TOKEN configured)"
	}
	return &apiError{status: http.StatusUnauthorized, code: CodeBadAdminToken, msg: msg}
}

// TokenID names an admin token in logs: the first 8 hex digits of its SHA-256, enough to tell
// tokens apart, useless to reconstruct one.
func TokenID(token string) string {
	h := sha256.Sum256([]byte(token))
	return hex.EncodeToString(h[:4])
}

// audit logs one control: who, which queue, what.
func (a *API) audit(ctx context.Context, rq *request, q *Queue, action string, attrs ...slog.Attr) {
	base := []slog.Attr{slog.String("token_id", TokenID(a.d.AdminToken)), slog.String("queue_id", q.ID),
		slog.String("action", action), slog.String("request_id", rq.rid)}
	a.log.LogAttrs(ctx, slog.LevelInfo, "operator control", append(base, attrs...)...)
	rq.note = action
}

// optionalNotice reads Notice: absent is nil; at most MaxNotice characters of valid UTF-8.
func optionalNotice(rq *request) (*string, error) {
	if _, ok := rq.f["Notice"]; !ok {
		return nil, nil
	}
	n, err := rq.f.str("Notice")
	if err != nil {
		return nil, err
	}
	if c := utf8.RuneCountInString(n); c > MaxNotice {
		return nil, invalid("Notice: %d characters, at most %d", c, MaxNotice)
	}
	return &n, nil
}

func (a *API) pause(ctx context.Context, rq *request, q *Queue, op Operator) (any, error) {
	notice, err := optionalNotice(rq)
	if err != nil {
		return nil, err
	}
	if err := op.Pause(ctx, notice); err != nil {
		return nil, sessionErr(err)
	}
	attrs := []slog.Attr{}
	if notice != nil {
		attrs = append(attrs, slog.String("notice", *notice))
	}
	a.audit(ctx, rq, q, "pause", attrs...)
	return map[string]any{"QueueId": q.ID, "Paused": true}, nil
}

func (a *API) resume(ctx context.Context, rq *request, q *Queue, op Operator) (any, error) {
	if err := op.Resume(ctx); err != nil {
		return nil, sessionErr(err)
	}
	a.audit(ctx, rq, q, "resume")
	return map[string]any{"QueueId": q.ID, "Paused": false}, nil
}

func (a *API) notice(ctx context.Context, rq *request, q *Queue, op Operator) (any, error) {
	notice, err := optionalNotice(rq)
	if err != nil {
		return nil, err
	}
	if notice == nil {
		return nil, invalid("Notice: required (an empty string clears the notice)")
	}
	if err := op.SetNotice(ctx, *notice); err != nil {
		return nil, sessionErr(err)
	}
	a.audit(ctx, rq, q, "notice", slog.String("notice", *notice))
	return map[string]any{"QueueId": q.ID, "Notice": *notice}, nil
}

func (a *API) capacity(ctx context.Context, rq *request, q *Queue, op Operator) (any, error) {
	reset, err := rq.f.boolean("Reset")
	if err != nil {
		return nil, err
	}
	if reset {
		if _, ok := rq.f["Capacity"]; ok {
			return nil, invalid("Capacity: not with Reset (Reset returns to the configured capacity)")
		}
		if err := op.ResetCapacity(ctx); err != nil {
			return nil, sessionErr(err)
		}
		a.audit(ctx, rq, q, "capacity reset")
		return map[string]any{"QueueId": q.ID, "CapacityOverride": nil}, nil
	}
	n, ok, err := rq.f.integer("Capacity", 0, queue.MaxCapacity)
	if err != nil {
		return nil, err
	}
	if !ok {
		return nil, invalid("Capacity: required, an integer 0–%d (or Reset: true)", queue.MaxCapacity)
	}
	if err := op.SetCapacity(ctx, int(n)); err != nil {
		return nil, sessionErr(err)
	}
	a.audit(ctx, rq, q, "capacity", slog.Int64("capacity", n))
	return map[string]any{"QueueId": q.ID, "CapacityOverride": n}, nil
}

func (a *API) kick(ctx context.Context, rq *request, q *Queue, op Operator) (any, error) {
	user, err := rq.f.userID()
	if err != nil {
		return nil, err
	}
	rq.userID = user
	prev, res, err := op.Kick(ctx, user)
	if err != nil {
		return nil, sessionErr(err)
	}
	was := string(prev)
	if prev == queue.StateNone {
		was = "None"
	}
	a.audit(ctx, rq, q, "kick", slog.String("user_id", user), slog.String("was", was))
	out := map[string]any{"QueueId": q.ID, "UserId": user, "Was": was, "Reason": string(queue.ReasonKicked)}
	if prev.Holds() {
		out["Released"] = res.Released
	}
	return out, nil
}

// limit reads Limit: DefaultLimit when absent, else 1–MaxLimit.
func limit(rq *request) (int, error) {
	n, ok, err := rq.f.integer("Limit", 1, MaxLimit)
	if err != nil || !ok {
		return DefaultLimit, err
	}
	return int(n), nil
}

func (a *API) sessions(ctx context.Context, rq *request, q *Queue, op Operator) (any, error) {
	n, err := limit(rq)
	if err != nil {
		return nil, err
	}
	ss, err := op.Sessions(ctx, n)
	if err != nil {
		return nil, sessionErr(err)
	}
	out := make([]map[string]any, 0, len(ss))
	for _, s := range ss {
		out = append(out, map[string]any{"UserId": s.UserID, "Status": string(s.Status), "Lane": s.Lane,
			"WaitedSeconds": seconds(s.Waited), "PlayedSeconds": seconds(s.Played)})
	}
	return map[string]any{"QueueId": q.ID, "Sessions": out}, nil
}

func (a *API) records(ctx context.Context, rq *request, q *Queue, op Operator) (any, error) {
	after, err := rq.f.str("After")
	if err != nil {
		return nil, err
	}
	if after != "" && !recordID(after) {
		return nil, invalid("After: want a record id (<ms>-<n>) as Next or RecordId gave it")
	}
	n, err := limit(rq)
	if err != nil {
		return nil, err
	}
	// Newest (an extension): the newest N records instead of a page from a cursor.
	newest, byNewest, err := rq.f.integer("Newest", 1, MaxLimit)
	if err != nil {
		return nil, err
	}
	if byNewest && after != "" {
		return nil, invalid("Newest: not with After (Newest reads the latest records, After pages from a cursor)")
	}
	var recs []queue.Record
	next := ""
	if byNewest {
		recs, err = op.NewestRecords(ctx, int(newest))
	} else {
		recs, next, err = op.Records(ctx, after, n)
	}
	if err != nil {
		return nil, sessionErr(err)
	}
	out := make([]webhook.Record, 0, len(recs))
	for _, r := range recs {
		out = append(out, webhook.RecordOf(q.ID, r))
	}
	return map[string]any{"QueueId": q.ID, "Records": out, "Next": next}, nil
}

// adminPath reports whether a path names an operator route ("…/admin/<name>").
func adminPath(path string) (string, bool) {
	path = strings.TrimRight(path, "/")
	i := strings.LastIndexByte(path, '/')
	if i < 0 {
		return "", false
	}
	head, name := path[:i], path[i+1:]
	if strings.HasSuffix(head, "/admin") || head == "admin" {
		return "admin/" + name, true
	}
	return "", false
}

// recordID reports whether s has the form of a record id, "<ms>-<n>".
func recordID(s string) bool {
	a, b, ok := strings.Cut(s, "-")
	if !ok || len(s) > 41 || a == "" || b == "" {
		return false
	}
	for _, c := range a + b {
		if c < '0' || c > '9' {
			return false
		}
	}
	return true
}

// seconds is a duration in seconds with millisecond precision, never negative.
func seconds(d time.Duration) float64 { return float64(max(d, 0).Milliseconds()) / 1000 }
