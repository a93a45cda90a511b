package caremu

import (
	"fmt"
	"math"
	"time"

	"golang.org/x/time/rate"
)

// The Go API to inject faults and change limits while the emulator runs.

// SetErrorRate makes action answer code with probability rate (0 removes it).
func (e *Emulator) SetErrorRate(action, code string, rate float64) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if rate <= 0 {
		delete(e.faults.ErrorRates[action], code)
		return
	}
	if e.faults.ErrorRates[action] == nil {
		e.faults.ErrorRates[action] = map[string]float64{}
	}
	e.faults.ErrorRates[action][code] = min(rate, 1)
}

// SetLatency adds base plus up to jitter of latency to action's answers
// (action "*" for all actions); zero values remove it.
func (e *Emulator) SetLatency(action string, base, jitter time.Duration) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if base <= 0 && jitter <= 0 {
		delete(e.faults.Latency, action)
		return
	}
	e.faults.Latency[action] = Latency{Base: base, Jitter: jitter}
}

// Script queues the next answers for action: each an error code, or "" to
// behave normally. Scripted answers take precedence over error rates.
func (e *Emulator) Script(action string, codes ...string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.faults.Scripts[action] = append(e.faults.Scripts[action], codes...)
}

// ResetFaults removes every injected fault, including those from Options.Faults.
func (e *Emulator) ResetFaults() {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.faults = newFaultState(Faults{})
}

// SetFaults replaces every injected fault with those of spec (ParseFaults
// syntax), e.g. from a harness endpoint or flag at run time.
func (e *Emulator) SetFaults(spec string) error {
	f, err := ParseFaults(spec)
	if err != nil {
		return fmt.Errorf("set emulator faults: %w", err)
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	e.faults = newFaultState(f)
	return nil
}

// SetRate changes action's request limit (requests/s; 0 = unlimited).
func (e *Emulator) SetRate(action string, perSecond float64) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if perSecond <= 0 {
		delete(e.limiters, action)
		return
	}
	e.limiters[action] = newLimiter(perSecond)
}

// newLimiter allows perSecond requests per second with a one-second burst.
func newLimiter(perSecond float64) *rate.Limiter {
	return rate.NewLimiter(rate.Limit(perSecond), max(1, int(math.Ceil(perSecond))))
}
