package httpapi

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"net/http"
	"strings"
	"sync"
	"time"
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
	_, named := rq.f["QueueId"]
	named = named || rq.query["QueueId"] != ""
	q, err := a.pick(rq)
	if err != nil {
		return nil, err
	}
	out, err := counts(ctx, q)
	if err != nil {
		return nil, sessionErr(err)
	}
	if q.Extra != nil {
		for k, v := range q.Extra(ctx) {
			if _, taken := out[k]; !taken {
				out[k] = v
			}
		}
	}
	if !named {
		all, err := a.allCounts(ctx)
		if err != nil {
			return nil, sessionErr(err)
		}
		out["Queues"] = all
	}
	return out, nil
}

// statsParallel bounds the queues /stats reads at once.
const statsParallel = 16

// allCounts is every queue's counts, in the order of the queues.
func (a *API) allCounts(ctx context.Context) ([]map[string]any, error) {
	out := make([]map[string]any, len(a.queues))
	errs := make([]error, len(a.queues))
	sem := make(chan struct{}, statsParallel)
	var wg sync.WaitGroup
	for i := range a.queues {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			out[i], errs[i] = counts(ctx, &a.queues[i])
		}()
	}
	wg.Wait()
	return out, errors.Join(errs...)
}

// counts are one queue's /stats fields.
func counts(ctx context.Context, q *Queue) (map[string]any, error) {
	st, err := q.Sessions.Stats(ctx)
	if err != nil {
		return nil, err
	}
	byReason := map[string]int64{}
	for r, n := range st.ReapedByReason {
		byReason[string(r)] = n
	}
	holding := st.Admitting + st.Ready + st.Active + st.Releasing
	free := max(st.Capacity-holding, 0)
	out := map[string]any{
		"QueueId":             q.ID,
		"ProjectId":           q.ProjectID,
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
		"ReapHeldSeconds":     reapHeldSeconds(st.ReapHeldUntil),
	}
	if q.ApplicationID != "" {
		out["ApplicationId"] = q.ApplicationID
	}
	if st.CARTotalAt > 0 {
		out["CapacityFromCAR"] = true
		out["CARTotalAgeSeconds"] = max(time.Since(time.UnixMilli(st.CARTotalAt)).Seconds(), 0)
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

// reapHeldSeconds is how long reaping stays held after an outage (0: not held), so an operator
// sees why nobody is dropped right after Redis came back.
func reapHeldSeconds(untilMS int64) float64 {
	if untilMS == 0 {
		return 0
	}
	return max(time.Until(time.UnixMilli(untilMS)).Seconds(), 0)
}
