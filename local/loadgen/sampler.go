package loadgen

import (
	"context"
	"fmt"
	"net/http"
	"sync"
	"time"
)

// stats is the part of /stats the checks read.
type stats struct {
	Queued, Admitting, Ready, Active, Releasing, Capacity, AdmittedTotal int64
}

func (s stats) holders() int64 { return s.Admitting + s.Ready + s.Active + s.Releasing }

// emuState is GET /emulator/state.
type emuState struct {
	Total, Idle, Cleaning, Running int
	Locked, Sessions               []string
}

func (e emuState) held() int { return len(e.Locked) + len(e.Sessions) }

// sampler polls /stats and /emulator/state and keeps the maxima and the first breaches.
type sampler struct {
	c *client

	mu         sync.Mutex
	statsOK    bool // /stats answered at least once
	emuOK      bool // /emulator/state answered at least once
	emuMissing bool // /emulator/state is 404: not the local harness
	first      stats
	last       stats
	lastEmu    emuState
	maxHolders int64
	maxQueued  int64
	maxEmuHeld int
	maxEmuRun  int
	samples    int
	breaches   []string
	errs       int
}

const maxBreaches = 10

func (s *sampler) breach(format string, args ...any) {
	if len(s.breaches) < maxBreaches {
		s.breaches = append(s.breaches, fmt.Sprintf(format, args...))
	}
}

// sample reads both views once.
func (s *sampler) sample(ctx context.Context) {
	var env struct{ Data stats }
	stErr := error(nil)
	if s.c.token != "" {
		_, stErr = s.c.get(ctx, "stats", true, &env)
	}
	var emu emuState
	code, emuErr := 0, error(nil)
	s.mu.Lock()
	missing := s.emuMissing
	s.mu.Unlock()
	if !missing {
		code, emuErr = s.c.get(ctx, "emulator/state", false, &emu)
	}
	if ctx.Err() != nil {
		return // the run is over; a cut-off request says nothing about the system
	}
	now := time.Now().Format("15:04:05.000")
	s.mu.Lock()
	defer s.mu.Unlock()
	s.samples++
	if s.c.token != "" {
		if stErr != nil {
			s.errs++
		} else {
			st := env.Data
			if !s.statsOK {
				s.first = st
			}
			s.statsOK, s.last = true, st
			s.maxHolders = max(s.maxHolders, st.holders())
			s.maxQueued = max(s.maxQueued, st.Queued)
			if st.holders() > st.Capacity {
				s.breach("capacity: at %s /stats shows %d holders (Admitting %d + Ready %d + Active %d + Releasing %d) > Capacity %d",
					now, st.holders(), st.Admitting, st.Ready, st.Active, st.Releasing, st.Capacity)
			}
		}
	}
	switch {
	case missing:
	case code == http.StatusNotFound:
		s.emuMissing = true
	case emuErr != nil:
		s.errs++
	default:
		s.emuOK, s.lastEmu = true, emu
		s.maxEmuHeld = max(s.maxEmuHeld, emu.held())
		s.maxEmuRun = max(s.maxEmuRun, emu.Running)
		if emu.held() > emu.Total {
			s.breach("capacity: at %s the emulator shows %d locked + %d sessions > Total %d", now, len(emu.Locked), len(emu.Sessions), emu.Total)
		}
	}
}

// loop samples every interval until ctx ends.
func (s *sampler) loop(ctx context.Context, interval time.Duration) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		s.sample(ctx)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// drained reports whether the last samples show an empty system, and what is left if not.
func (s *sampler) drained() (bool, string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var left []string
	if s.statsOK && (s.last.holders() != 0 || s.last.Queued != 0) {
		left = append(left, fmt.Sprintf("/stats: %d queued, %d holders (Admitting %d, Ready %d, Active %d, Releasing %d)",
			s.last.Queued, s.last.holders(), s.last.Admitting, s.last.Ready, s.last.Active, s.last.Releasing))
	}
	if e := s.lastEmu; s.emuOK && (len(e.Locked) > 0 || len(e.Sessions) > 0 || e.Idle != e.Total) {
		left = append(left, fmt.Sprintf("/emulator/state: Locked %v, Sessions %v, Idle %d of %d (Cleaning %d)",
			e.Locked, e.Sessions, e.Idle, e.Total, e.Cleaning))
	}
	if len(left) == 0 {
		return true, ""
	}
	return false, fmt.Sprint(left)
}
