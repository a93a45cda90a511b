package loadgen

import (
	"slices"
	"sync"
	"time"
)

// metrics collects every HTTP attempt (retries included), per route.
type metrics struct {
	mu        sync.Mutex
	durations map[string][]time.Duration
	statuses  map[string]map[int]int // route → HTTP status (0: transport error) → count
	retries   int
}

func newMetrics() *metrics {
	return &metrics{durations: map[string][]time.Duration{}, statuses: map[string]map[int]int{}}
}

// record notes one attempt; status 0 is a transport error.
func (m *metrics) record(route string, status int, d time.Duration) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.durations[route] = append(m.durations[route], d)
	if m.statuses[route] == nil {
		m.statuses[route] = map[int]int{}
	}
	m.statuses[route][status]++
}

func (m *metrics) retried() {
	m.mu.Lock()
	m.retries++
	m.mu.Unlock()
}

// Latency summarizes one route's attempts.
type Latency struct {
	N                       int
	P50, P90, P95, P99, Max time.Duration
}

// summarize computes nearest-rank percentiles (the value at rank ⌈p·N⌉).
func summarize(ds []time.Duration) Latency {
	if len(ds) == 0 {
		return Latency{}
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	at := func(p float64) time.Duration {
		i := int(p*float64(len(s))+0.999999) - 1
		return s[max(0, min(i, len(s)-1))]
	}
	return Latency{N: len(s), P50: at(0.50), P90: at(0.90), P95: at(0.95), P99: at(0.99), Max: s[len(s)-1]}
}

// snapshot copies the counts into the report.
func (m *metrics) snapshot() (map[string]Latency, map[string]map[int]int, int) {
	m.mu.Lock()
	defer m.mu.Unlock()
	lat := map[string]Latency{}
	for r, ds := range m.durations {
		lat[r] = summarize(ds)
	}
	st := map[string]map[int]int{}
	for r, c := range m.statuses {
		st[r] = map[int]int{}
		for k, v := range c {
			st[r][k] = v
		}
	}
	return lat, st, m.retries
}
