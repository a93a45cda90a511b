package httpapi

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"net/http"
	"strings"
)

// stats answers the queue's counters to a caller with Authorization: Bearer <ADMIN_TOKEN>.
func (a *API) stats(ctx context.Context, rq *request) (any, error) {
	if !a.adminAuthorized(rq.header["authorization"]) {
		msg := "Authorization: want Bearer <ADMIN_TOKEN>"
		if a.d.AdminToken == "" {
			msg = "Authorization: /stats is turned off (no ADMIN_TOKEN configured)"
		}
		return nil, &apiError{status: http.StatusUnauthorized, code: CodeBadAdminToken, msg: msg}
	}
	st, err := a.d.Sessions.Stats(ctx)
	if err != nil {
		return nil, sessionErr(err)
	}
	byReason := map[string]int64{}
	for r, n := range st.ReapedByReason {
		byReason[string(r)] = n
	}
	holding := st.Admitting + st.Ready + st.Active + st.Releasing
	free := st.Capacity - holding
	if free < 0 {
		free = 0
	}
	out := map[string]any{
		"QueueId":             a.d.QueueID,
		"Queued":              st.Queued,
		"Admitting":           st.Admitting,
		"Ready":               st.Ready,
		"Active":              st.Active,
		"Releasing":           st.Releasing,
		"ReleasesRetrying":    st.ReleasesRetrying,
		"Holding":             holding,
		"Free":                free,
		"Capacity":            st.Capacity,
		"AdmittedTotal":       st.AdmittedTotal,
		"ReapedTotal":         st.ReapedTotal,
		"ReapedByReason":      byReason,
		"AdmissionsPerMinute": st.AdmissionsPerMinute,
	}
	if a.d.Extra != nil {
		for k, v := range a.d.Extra(ctx) {
			if _, taken := out[k]; !taken {
				out[k] = v
			}
		}
	}
	return out, nil
}

// adminAuthorized compares the bearer token in constant time (over hashes, so the length of
// the configured token does not leak either). An empty ADMIN_TOKEN authorizes nobody.
func (a *API) adminAuthorized(header string) bool {
	if a.d.AdminToken == "" {
		return false
	}
	scheme, token, ok := strings.Cut(strings.TrimSpace(header), " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return false
	}
	got := sha256.Sum256([]byte(strings.TrimSpace(token)))
	want := sha256.Sum256([]byte(a.d.AdminToken))
	return subtle.ConstantTimeCompare(got[:], want[:]) == 1
}
