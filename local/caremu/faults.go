package caremu

import (
	"fmt"
	"math/rand/v2"
	"sort"
	"strconv"
	"strings"
	"time"
)

// Latency is added before an action is answered: Base plus a uniform random
// extra in [0, Jitter].
type Latency struct{ Base, Jitter time.Duration }

func (l Latency) draw() time.Duration {
	if l.Jitter <= 0 {
		return l.Base
	}
	return l.Base + rand.N(l.Jitter+1)
}

// Faults is a parsed fault specification. Action "*" applies to every action
// that has no entry of its own.
type Faults struct {
	ErrorRates map[string]map[string]float64 // action → error code → probability in [0,1]
	Latency    map[string]Latency            // action → added latency
	Scripts    map[string][]string           // action → next answers, "" = behave normally
}

// ParseFaults parses the fault syntax shared by Options.Faults, the local
// harness's flag and its environment variable. The spec is a comma-separated
// list of items, each "Action:key=value":
//
//	Action:Code=P            answer Code with probability P (0..1), e.g. ApplyConcurrent:InternalError=0.1
//	Action:latency=D         add latency D (a Go duration), e.g. CreateSession:latency=200ms
//	Action:latency=D~J       add D plus a uniform random jitter up to J, e.g. CreateSession:latency=200ms~50ms
//	Action:script=C1|C2|ok   the next answers, in order: a code, or "ok"/"" to behave normally
//
// Action is a CAR action name or "*" for all actions. Whitespace around items
// is ignored; an empty spec means no faults.
func ParseFaults(spec string) (Faults, error) {
	f := Faults{
		ErrorRates: map[string]map[string]float64{},
		Latency:    map[string]Latency{},
		Scripts:    map[string][]string{},
	}
	for _, item := range strings.Split(spec, ",") {
		item = strings.TrimSpace(item)
		if item == "" {
			continue
		}
		action, kv, ok := strings.Cut(item, ":")
		key, val, ok2 := strings.Cut(kv, "=")
		action, key, val = strings.TrimSpace(action), strings.TrimSpace(key), strings.TrimSpace(val)
		if !ok || !ok2 || action == "" || key == "" {
			return Faults{}, fmt.Errorf("fault %q: want Action:key=value", item)
		}
		if action != "*" && !knownAction(action) {
			return Faults{}, fmt.Errorf("fault %q: unknown action %q", item, action)
		}
		switch key {
		case "latency":
			l, err := parseLatency(val)
			if err != nil {
				return Faults{}, fmt.Errorf("fault %q: %w", item, err)
			}
			f.Latency[action] = l
		case "script":
			var codes []string
			for _, c := range strings.Split(val, "|") {
				c = strings.TrimSpace(c)
				if strings.EqualFold(c, "ok") {
					c = ""
				}
				codes = append(codes, c)
			}
			f.Scripts[action] = append(f.Scripts[action], codes...)
		default:
			p, err := strconv.ParseFloat(val, 64)
			if err != nil || p < 0 || p > 1 {
				return Faults{}, fmt.Errorf("fault %q: error rate must be a number in [0,1]", item)
			}
			if f.ErrorRates[action] == nil {
				f.ErrorRates[action] = map[string]float64{}
			}
			f.ErrorRates[action][key] = p
		}
	}
	return f, nil
}

func parseLatency(s string) (Latency, error) {
	base, jit, hasJitter := strings.Cut(s, "~")
	b, err := time.ParseDuration(strings.TrimSpace(base))
	if err != nil || b < 0 {
		return Latency{}, fmt.Errorf("latency %q: want a non-negative duration, optionally ~jitter", s)
	}
	l := Latency{Base: b}
	if hasJitter {
		j, err := time.ParseDuration(strings.TrimSpace(jit))
		if err != nil || j < 0 {
			return Latency{}, fmt.Errorf("latency jitter %q: want a non-negative duration", jit)
		}
		l.Jitter = j
	}
	return l, nil
}

// faultState is the live, mutable fault configuration. Guarded by Emulator.mu.
type faultState struct{ Faults }

func newFaultState(f Faults) faultState {
	if f.ErrorRates == nil {
		f.ErrorRates = map[string]map[string]float64{}
	}
	if f.Latency == nil {
		f.Latency = map[string]Latency{}
	}
	if f.Scripts == nil {
		f.Scripts = map[string][]string{}
	}
	return faultState{f}
}

func (s *faultState) latency(action string) Latency {
	if l, ok := s.Latency[action]; ok {
		return l
	}
	return s.Latency["*"]
}

// nextCode pops the action's script, else draws from its error rates. "" means
// answer normally. Codes are tried in sorted order so a draw is reproducible.
func (s *faultState) nextCode(action string) string {
	for _, a := range []string{action, "*"} {
		if q := s.Scripts[a]; len(q) > 0 {
			s.Scripts[a] = q[1:]
			return q[0]
		}
	}
	rates, ok := s.ErrorRates[action]
	if !ok {
		rates = s.ErrorRates["*"]
	}
	if len(rates) == 0 {
		return ""
	}
	codes := make([]string, 0, len(rates))
	for c := range rates {
		codes = append(codes, c)
	}
	sort.Strings(codes)
	x, acc := rand.Float64(), 0.0
	for _, c := range codes {
		acc += rates[c]
		if x < acc {
			return c
		}
	}
	return ""
}
