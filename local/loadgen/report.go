package loadgen

import (
	"fmt"
	"io"
	"math"
	"slices"
	"strings"
	"text/tabwriter"
	"time"
)

// Report is what a run observed and which promises it saw broken.
type Report struct {
	Users    int
	Roles    map[string]int // what users set out to do
	Outcomes map[string]int // what they ended up doing (stopped, quit-queued, vanished, lost, unfinished)
	// Forgotten users left more than GoneRetention before the final /poll, which then answers
	// Expired without a Reason: their departure reason could not be checked.
	Forgotten int

	Wall      time.Duration // first /start until the system was drained (or DrainTimeout)
	UsersWall time.Duration // first /start until the last user finished
	Drained   bool          // the end state was reached: 0 holders, 0 queued, every emulated slot idle

	Admitted            int     // users who became Ready
	AdmissionsPerMinute float64 // Admitted over the span from the first to the last first-Ready
	AdmittedTotal       int64   // the server's AdmittedTotal counted during the run (/stats)

	Capacity        int64 // /stats Capacity
	MaxHolders      int64 // most Admitting+Ready+Active+Releasing seen in /stats
	MaxQueued       int64
	EmulatorTotal   int // emulated slots (0: no /emulator/state)
	MaxEmulatorHeld int // most Locked+Sessions seen in /emulator/state
	MaxEmulatorRun  int // most Running (locked + sessions + cleaning) seen
	Samples         int
	SampleErrors    int

	// Occupancy over the users' run (first /start to the last user done), from the samples.
	Occupancy Occupancy
	// ReleaseLag is, per kind of vanished user, the time from its last sign of life to the
	// sample that first saw its emulated slot freed: "heartbeat_timeout" from the answer to its
	// last heartbeat (the server's deadline is HEARTBEAT_TIMEOUT after it), "never_started"
	// from the Ready answer (READY_TIMEOUT after MarkReady, which came up to one poll earlier).
	// Late by up to one SampleInterval. Empty without /emulator/state.
	ReleaseLag map[string]Latency
	// ReleaseOverrun is the same minus the timeout (HEARTBEAT_TIMEOUT, READY_TIMEOUT), for the
	// kinds whose timeout Config gives.
	ReleaseOverrun map[string]Latency
	ReleaseUnseen  int // vanished users whose freed slot no sample saw

	Reconnects         int           // users who sent /reconnect
	ReconnectFallbacks int           // of them, put back in line (allowed only outside HEARTBEAT_TIMEOUT)
	ReadyInversions    int           // pairs started A<B that saw Ready B first (allowed: see checkFIFO)
	MaxInversionLag    time.Duration // the largest such gap

	Statuses map[string]map[int]int // route → HTTP status (0: transport error) → attempts
	Retries  int                    // attempts retried after 429/5xx/transport errors
	Latency  map[string]Latency     // route → per-attempt latency

	// ETA compares each admitted user's first EtaSeconds (its /start answer) with its actual
	// wait (first /start answer to Ready): all of them, and those who joined once a minute of
	// admissions had been seen (the estimator had history).
	ETA, ETAWithHistory ETAAccuracy
	// ServerETAErrorPct is the server's own figure (/stats EtaErrorPct) at the last sample.
	ServerETAErrorPct float64
	ServerETASamples  int64

	Notes      []string // checks skipped and why
	Violations []string
}

// ETAAccuracy is how far first ETAs were from the waits that followed.
type ETAAccuracy struct {
	Told      int     // admitted users whose first answer carried EtaSeconds
	Untold    int     // admitted users queued at first whose answer carried none
	MedianPct float64 // median of |ETA − wait| / wait, in percent
	P90Pct    float64
}

// etaAccuracy measures the first ETAs of the users admitted after a queued start; withHistory
// keeps those who started at least a minute after the first admission anyone saw.
func etaAccuracy(users []*user, withHistory bool) ETAAccuracy {
	var firstReady time.Time
	for _, u := range users {
		if !u.readyAt.IsZero() && (firstReady.IsZero() || u.readyAt.Before(firstReady)) {
			firstReady = u.readyAt
		}
	}
	var a ETAAccuracy
	var errs []float64
	for _, u := range users {
		if u.readyAt.IsZero() || len(u.waits) == 0 { // admitted at once: no ETA to judge
			continue
		}
		if withHistory && (firstReady.IsZero() || u.startRecv.Sub(firstReady) < time.Minute) {
			continue
		}
		if !u.told {
			a.Untold++
			continue
		}
		a.Told++
		wait := max(u.readyAt.Sub(u.startRecv), time.Second)
		errs = append(errs, 100*math.Abs(float64(u.firstETA-wait))/float64(wait))
	}
	if len(errs) > 0 {
		slices.Sort(errs)
		a.MedianPct = errs[len(errs)/2]
		if len(errs)%2 == 0 {
			a.MedianPct = (errs[len(errs)/2-1] + errs[len(errs)/2]) / 2
		}
		a.P90Pct = errs[min(len(errs)-1, len(errs)*9/10)]
	}
	return a
}

// buildReport runs the checks over what the users and the sampler recorded.
func buildReport(cfg Config, users []*user, s *sampler, m *metrics, begin, usersDone, end time.Time, drained bool) Report {
	r := Report{Users: len(users), Roles: map[string]int{}, Outcomes: map[string]int{},
		Wall: end.Sub(begin), UsersWall: usersDone.Sub(begin), Drained: drained}
	r.Latency, r.Statuses, r.Retries = m.snapshot()
	r.ETA, r.ETAWithHistory = etaAccuracy(users, false), etaAccuracy(users, true)

	s.mu.Lock()
	r.Capacity, r.MaxHolders, r.MaxQueued = s.last.Capacity, s.maxHolders, s.maxQueued
	r.AdmittedTotal = s.last.AdmittedTotal - s.first.AdmittedTotal
	r.EmulatorTotal, r.MaxEmulatorHeld, r.MaxEmulatorRun = s.lastEmu.Total, s.maxEmuHeld, s.maxEmuRun
	r.Samples, r.SampleErrors = s.samples, s.errs
	r.ServerETAErrorPct, r.ServerETASamples = s.last.EtaErrorPct, s.last.EtaSamples
	r.Violations = append(r.Violations, s.breaches...)
	if !s.statsOK {
		r.Notes = append(r.Notes, "no /stats samples (no admin token?): capacity and drain checks of the queue skipped")
	}
	if !s.emuOK {
		r.Notes = append(r.Notes, "no /emulator/state (not the local harness): emulator checks skipped")
	}
	statsOK := s.statsOK
	s.mu.Unlock()

	var firstReady, lastReady time.Time
	for _, u := range users {
		r.Roles[string(u.role)]++
		out := u.outcome
		if out == "" {
			out = outUnfinished
			if len(u.problems) == 0 {
				u.problem("ended without an outcome")
			}
		}
		r.Outcomes[out]++
		r.Violations = append(r.Violations, u.problems...)
		v, forgotten := checkFinal(u, cfg.GoneRetention)
		r.Violations = append(r.Violations, v...)
		if forgotten {
			r.Forgotten++
		}
		if u.reconn {
			r.Reconnects++
		}
		if u.fellBack {
			r.ReconnectFallbacks++
		}
		if !u.readyAt.IsZero() {
			r.Admitted++
			if firstReady.IsZero() || u.readyAt.Before(firstReady) {
				firstReady = u.readyAt
			}
			if u.readyAt.After(lastReady) {
				lastReady = u.readyAt
			}
		}
	}
	r.Occupancy = s.occupancy(begin, usersDone)
	r.ReleaseLag, r.ReleaseOverrun, r.ReleaseUnseen = releaseLags(cfg, users, s)
	if span := lastReady.Sub(firstReady); span > 0 {
		r.AdmissionsPerMinute = float64(r.Admitted-1) / span.Minutes()
	}
	if statsOK {
		fifo, inv, lag := checkFIFO(users, r.Capacity)
		r.Violations = append(r.Violations, fifo...)
		r.ReadyInversions, r.MaxInversionLag = inv, lag
	} else {
		r.Notes = append(r.Notes, "FIFO check skipped: it needs Capacity from /stats")
	}
	return r
}

// releaseLags measures, for every vanished user, how long its slot stayed held after its last
// sign of life (see Report.ReleaseLag).
func releaseLags(cfg Config, users []*user, s *sampler) (lag, overrun map[string]Latency, unseen int) {
	s.mu.Lock()
	emuOK := s.emuOK
	s.mu.Unlock()
	if !emuOK {
		return nil, nil, 0
	}
	lags, overs := map[string][]time.Duration{}, map[string][]time.Duration{}
	for _, u := range users {
		if u.outcome != outVanished {
			continue
		}
		kind, from, timeout := "heartbeat_timeout", u.lastBeat, cfg.HeartbeatTimeout
		if u.beats == 0 {
			kind, from, timeout = "never_started", u.readyAt, cfg.ReadyTimeout
		}
		freed := s.freedAfter(u.id, u.leftAt)
		if freed.IsZero() || from.IsZero() {
			unseen++
			continue
		}
		d := freed.Sub(from)
		lags[kind] = append(lags[kind], d)
		if timeout > 0 {
			overs[kind] = append(overs[kind], d-timeout)
		}
	}
	lag, overrun = map[string]Latency{}, map[string]Latency{}
	for k, ds := range lags {
		lag[k] = summarize(ds)
	}
	for k, ds := range overs {
		overrun[k] = summarize(ds)
	}
	return lag, overrun, unseen
}

// WriteTable prints the report as aligned, readable tables.
func (r Report) WriteTable(w io.Writer) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	p := func(format string, args ...any) { fmt.Fprintf(tw, format+"\n", args...) }
	p("users\t%d\troles %s", r.Users, kv(r.Roles))
	p("outcomes\t\t%s (final reason forgotten after GONE_RETENTION: %d)", kv(r.Outcomes), r.Forgotten)
	p("wall time\t%s\tusers done after %s; drained: %v", r.Wall.Round(time.Millisecond), r.UsersWall.Round(time.Millisecond), r.Drained)
	p("admitted\t%d\t%.1f admissions/min (first to last Ready); server AdmittedTotal +%d", r.Admitted, r.AdmissionsPerMinute, r.AdmittedTotal)
	p("max holders\t%d\tcapacity %d (Admitting+Ready+Active+Releasing in /stats, %d samples, %d errors)", r.MaxHolders, r.Capacity, r.Samples, r.SampleErrors)
	p("max queued\t%d\t", r.MaxQueued)
	if r.EmulatorTotal > 0 {
		p("emulator held\t%d\tof %d slots (Locked+Sessions); max Running incl. cleaning %d", r.MaxEmulatorHeld, r.EmulatorTotal, r.MaxEmulatorRun)
	}
	o := r.Occupancy
	p("slots held\t%.1f\tof %d on average (/stats holders, %d samples in the users' run); while someone waited: %.1f (%d samples)",
		o.Holders, r.Capacity, o.Samples, o.HoldersWaiting, o.WaitingSamples)
	if r.EmulatorTotal > 0 {
		p("CAR slots\t\twhile someone waited: %.1f held (Locked+Sessions), %.1f cleaning, %.1f idle on average, at most %d idle",
			o.EmuHeldWaiting, o.EmuCleaningWait, o.EmuIdleWaiting, o.EmuIdleMaxWait)
	}
	for _, k := range []string{"heartbeat_timeout", "never_started"} {
		l, ok := r.ReleaseLag[k]
		if !ok {
			continue
		}
		line := fmt.Sprintf("n=%d p50 %s p95 %s p99 %s max %s", l.N, sec(l.P50), sec(l.P95), sec(l.P99), sec(l.Max))
		if ov, ok := r.ReleaseOverrun[k]; ok {
			line += fmt.Sprintf("; past the timeout: p50 %s p95 %s p99 %s max %s", sec(ov.P50), sec(ov.P95), sec(ov.P99), sec(ov.Max))
		}
		p("release lag\t%s\t%s", k, line)
	}
	if r.ReleaseUnseen > 0 {
		p("release lag\t\t%d vanished users' freed slot not seen by any sample", r.ReleaseUnseen)
	}
	p("ETA error\t%.1f%%\tmedian |first ETA − wait| / wait over %d admitted users told one (p90 %.1f%%; %d queued without one)",
		r.ETA.MedianPct, r.ETA.Told, r.ETA.P90Pct, r.ETA.Untold)
	p("ETA error\t%.1f%%\tthe same for users who joined once a minute of admissions was seen: %d told (p90 %.1f%%; %d without)",
		r.ETAWithHistory.MedianPct, r.ETAWithHistory.Told, r.ETAWithHistory.P90Pct, r.ETAWithHistory.Untold)
	if r.ServerETASamples > 0 {
		p("ETA error\t%.1f%%\tthe server's own (/stats EtaErrorPct) over its last %d first admissions with an ETA", r.ServerETAErrorPct, r.ServerETASamples)
	}
	p("reconnects\t%d\tfell back into the line: %d", r.Reconnects, r.ReconnectFallbacks)
	p("FIFO\t%d inversions\tpairs Ready out of start order (same window or retried admission; allowed), max lag %s", r.ReadyInversions, r.MaxInversionLag.Round(time.Millisecond))
	attempts, unavailable := 0, 0
	for _, st := range r.Statuses {
		for code, n := range st {
			attempts += n
			if code == 503 {
				unavailable += n
			}
		}
	}
	p("HTTP 503\t%d\tof %d attempts; %d retried after 429/5xx/transport errors", unavailable, attempts, r.Retries)
	tw.Flush()

	fmt.Fprintln(w)
	tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "route\tattempts\tp50\tp90\tp99\tmax\tHTTP statuses\t")
	routes := make([]string, 0, len(r.Latency))
	for rt := range r.Latency {
		routes = append(routes, rt)
	}
	slices.Sort(routes)
	for _, rt := range routes {
		l := r.Latency[rt]
		st := map[string]int{}
		for code, n := range r.Statuses[rt] {
			k := fmt.Sprint(code)
			if code == 0 {
				k = "transport-error"
			}
			st[k] = n
		}
		fmt.Fprintf(tw, "/%s\t%d\t%s\t%s\t%s\t%s\t%s\t\n", rt, l.N, ms(l.P50), ms(l.P90), ms(l.P99), ms(l.Max), kv(st))
	}
	tw.Flush()

	for _, n := range r.Notes {
		fmt.Fprintf(w, "note: %s\n", n)
	}
	fmt.Fprintf(w, "\nviolations: %d\n", len(r.Violations))
	for _, v := range r.Violations {
		fmt.Fprintf(w, "  - %s\n", v)
	}
}

// String is WriteTable into a string.
func (r Report) String() string {
	var b strings.Builder
	r.WriteTable(&b)
	return b.String()
}

func sec(d time.Duration) string {
	return fmt.Sprintf("%.2fs", d.Seconds())
}

func ms(d time.Duration) string {
	return fmt.Sprintf("%.1fms", float64(d)/float64(time.Millisecond))
}

// kv prints a map sorted by key: "a=1 b=2".
func kv(m map[string]int) string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = fmt.Sprintf("%s=%d", k, m[k])
	}
	return strings.Join(parts, " ")
}
