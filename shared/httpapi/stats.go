package httpapi

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"strings"
	"sync"
	"time"

	"github.com/carqueue/carqueue/shared/queue"
)

// stats answers the queue's counters to a caller with Authorization: Bearer <ADMIN_TOKEN>.
func (a *API) stats(ctx context.Context, rq *request) (any, error) {
	if err := a.requireAdmin(rq); err != nil {
		return nil, err
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
	if want := rq.query["History"]; (want == "1" || want == "true" || string(rq.f["History"]) == "true") && q.Operator != nil {
		h, err := q.Operator.History(ctx)
		if err != nil {
			return nil, sessionErr(err)
		}
		out["History"] = history(h)
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
	stats := q.Sessions.Stats
	if q.Operator != nil {
		stats = q.Operator.OperatorStats
	}
	st, err := stats(ctx)
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
	// The operator's side (API.md: Paused, Notice, ShuffleSeed; the rest the project's).
	out["Paused"] = st.Controls.Paused
	if st.Controls.Notice != "" {
		out["Notice"] = st.Controls.Notice
	}
	if st.Controls.CapacitySet {
		out["CapacityOverride"] = st.Controls.Capacity
	}
	if st.LaneQueued != nil {
		out["Lanes"] = st.LaneQueued
	}
	out["RecordsKept"] = st.RecordsKept
	out["RecordsPending"] = st.RecordsPending
	if st.ETASamples > 0 {
		out["EtaErrorPct"] = st.ETAErrorPct
		out["EtaSamples"] = st.ETASamples
	}
	if q.Operator != nil {
		if seed := q.Operator.ShuffleSeed(); seed != "" {
			out["ShuffleSeed"] = seed
		}
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

// history renders the per-minute counters for /stats?History=1: oldest first, queue length
// and slots held -1 where no reaper pass sampled them.
func history(h []queue.Minute) []map[string]any {
	out := make([]map[string]any, 0, len(h))
	for _, m := range h {
		out = append(out, map[string]any{"At": m.At.UTC().Format(time.RFC3339), "Admitted": m.Admitted,
			"Left": m.Left, "Queued": m.Queued, "Holding": m.Holding})
	}
	return out
}
