package car

import (
	"context"
	"encoding/json"
	"fmt"
)

// ApplyConcurrentInput are ApplyConcurrent's parameters. Empty ids fall back
// to the Config defaults.
type ApplyConcurrentInput struct {
	UserID, UserIP, ProjectID, ApplicationID, ApplicationVersionID string
}

// ApplyConcurrent locks a concurrency slot for the user (or re-attaches to the
// one it already holds). KindNoIdle means no slot is free right now.
func (c *Client) ApplyConcurrent(ctx context.Context, in ApplyConcurrentInput) error {
	p := map[string]any{
		"UserId":    in.UserID,
		"UserIp":    in.UserIP,
		"ProjectId": or(in.ProjectID, c.cfg.ProjectID),
	}
	putIf(p, "ApplicationId", or(in.ApplicationID, c.cfg.ApplicationID))
	putIf(p, "ApplicationVersionId", or(in.ApplicationVersionID, c.cfg.ApplicationVersionID))
	err := require(ActionApplyConcurrent, p, "UserId", "UserIp", "ProjectId")
	if err == nil {
		_, err = c.call(ctx, ActionApplyConcurrent, in.UserID, p)
	}
	if err != nil {
		return fmt.Errorf("user %s: %w", in.UserID, err)
	}
	return nil
}

// CreateSessionInput are CreateSession's parameters. ClientSession is required
// unless RunMode is "RunWithoutClient".
type CreateSessionInput struct {
	UserID, UserIP, ClientSession, RunMode, ApplicationParameters, HostUserID, Role string
}

// CreateSession starts (or re-attaches) the user's session on its locked slot
// and returns the ServerSession the browser hands to TCGSDK.start.
// KindLockExpired means the lock is gone: ApplyConcurrent again.
func (c *Client) CreateSession(ctx context.Context, in CreateSessionInput) (string, error) {
	p := map[string]any{"UserId": in.UserID, "UserIp": in.UserIP}
	putIf(p, "ClientSession", in.ClientSession)
	putIf(p, "RunMode", in.RunMode)
	putIf(p, "ApplicationParameters", in.ApplicationParameters)
	putIf(p, "HostUserId", in.HostUserID)
	putIf(p, "Role", in.Role)
	need := []string{"UserId", "UserIp"}
	if in.RunMode != "RunWithoutClient" {
		need = append(need, "ClientSession")
	}
	var raw json.RawMessage
	err := require(ActionCreateSession, p, need...)
	if err == nil {
		raw, err = c.call(ctx, ActionCreateSession, in.UserID, p)
	}
	if err != nil {
		return "", fmt.Errorf("user %s: %w", in.UserID, err)
	}
	var out struct{ ServerSession string }
	if err := json.Unmarshal(raw, &out); err != nil || out.ServerSession == "" {
		return "", fmt.Errorf("user %s: %w", in.UserID,
			&Error{Action: ActionCreateSession, Code: "ClientError.ParseJsonError", Message: "response has no ServerSession", Kind: KindTransient, cause: err})
	}
	return out.ServerSession, nil
}

// DestroySession ends the user's session; the slot is idle again after CAR's
// clean-up. KindNotFound means there was nothing to destroy (already gone).
func (c *Client) DestroySession(ctx context.Context, userID string) error {
	p := map[string]any{"UserId": userID}
	err := require(ActionDestroySession, p, "UserId")
	if err == nil {
		_, err = c.call(ctx, ActionDestroySession, userID, p)
	}
	if err != nil {
		return fmt.Errorf("user %s: %w", userID, err)
	}
	return nil
}

// ConcurrentCount is DescribeConcurrentCount's answer. Running includes
// pre-launched and cleaning slots, so Total-Running under-counts idle slots.
type ConcurrentCount struct{ Total, Running int }

// DescribeConcurrentCount reports the project's slot counts ("" → Config.ProjectID).
func (c *Client) DescribeConcurrentCount(ctx context.Context, projectID string) (ConcurrentCount, error) {
	p := map[string]any{"ProjectId": or(projectID, c.cfg.ProjectID)}
	var raw json.RawMessage
	err := require(ActionDescribeConcurrentCount, p, "ProjectId")
	if err == nil {
		raw, err = c.call(ctx, ActionDescribeConcurrentCount, "", p)
	}
	if err != nil {
		return ConcurrentCount{}, fmt.Errorf("project %s: %w", p["ProjectId"], err)
	}
	var out struct{ Total, Running *int }
	if err := json.Unmarshal(raw, &out); err != nil || out.Total == nil || out.Running == nil {
		return ConcurrentCount{}, fmt.Errorf("project %s: %w", p["ProjectId"],
			&Error{Action: ActionDescribeConcurrentCount, Code: "ClientError.ParseJsonError", Message: "response lacks Total or Running", Kind: KindTransient, cause: err})
	}
	return ConcurrentCount{Total: *out.Total, Running: *out.Running}, nil
}

func or(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

func putIf(p map[string]any, k, v string) {
	if v != "" {
		p[k] = v
	}
}

// require rejects a call locally, before spending rate budget, when a
// parameter CAR requires is empty: that is always our fault.
func require(action string, p map[string]any, keys ...string) error {
	for _, k := range keys {
		if s, _ := p[k].(string); s == "" {
			return &Error{Action: action, Code: "MissingParameter", Message: "missing required parameter " + k, Kind: KindOurFault}
		}
	}
	return nil
}
