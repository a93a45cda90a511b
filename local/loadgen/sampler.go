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
	// EtaErrorPct and EtaSamples are the server's own measure of its ETA (median absolute
	// error of the first ETA over the last hour's admissions); 0 samples: none yet.
	EtaErrorPct float64
	EtaSamples  int64
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

	// What the averages and the release lags are computed from (see occupancy and lags).
	points  []point
	held    map[string]bool        // users holding an emulated slot (Locked or Sessions) at the last sample
	freedAt map[string][]time.Time // per user: the samples at which it was first seen no longer holding
}

// point is one sample of both views, kept for the averages over a phase of the run.
type point struct {
	at             time.Time
	statsOK, emuOK bool
	holders        int64
	queued         int64
	emuIdle        int
	emuCleaning    int
	emuHeld        int
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
	at := time.Now()
	now := at.Format("15:04:05.000")
	s.mu.Lock()
	defer s.mu.Unlock()
	s.samples++
	p := point{at: at}
	defer func() { s.points = append(s.points, p) }()
	if s.c.token != "" {
		if stErr != nil {
			s.errs++
		} else {
			st := env.Data
			if !s.statsOK {
				s.first = st
			}
			s.statsOK, s.last = true, st
			p.statsOK, p.holders, p.queued = true, st.holders(), st.Queued
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
		p.emuOK, p.emuIdle, p.emuCleaning, p.emuHeld = true, emu.Idle, emu.Cleaning, emu.held()
		s.trackHeld(emu, at)
		s.maxEmuHeld = max(s.maxEmuHeld, emu.held())
		s.maxEmuRun = max(s.maxEmuRun, emu.Running)
		if emu.held() > emu.Total {
			s.breach("capacity: at %s the emulator shows %d locked + %d sessions > Total %d", now, len(emu.Locked), len(emu.Sessions), emu.Total)
		}
	}
}

// trackHeld notes, for every user who held an emulated slot at the previous sample and holds
// none now, the time its slot was seen freed (CAR destroyed its session: the queue frees the
// slot once CAR confirmed). The time is that of this sample, so it is late by up to one
// sampling interval.
func (s *sampler) trackHeld(emu emuState, at time.Time) {
	now := make(map[string]bool, len(emu.Locked)+len(emu.Sessions))
	for _, u := range emu.Locked {
		now[u] = true
	}
	for _, u := range emu.Sessions {
		now[u] = true
	}
	if s.freedAt == nil {
		s.freedAt = map[string][]time.Time{}
	}
	for u := range s.held {
		if !now[u] {
			s.freedAt[u] = append(s.freedAt[u], at)
		}
	}
	s.held = now
}

// freedAfter is the first time u's emulated slot was seen freed after t (zero: not seen).
func (s *sampler) freedAfter(u string, t time.Time) time.Time {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, f := range s.freedAt[u] {
		if f.After(t) {
			return f
		}
	}
	return time.Time{}
}

// Occupancy is how full the slots were over a phase of the run, as the samples saw it.
type Occupancy struct {
	Samples        int     // /stats samples in the phase
	Holders        float64 // mean Admitting+Ready+Active+Releasing (/stats)
	WaitingSamples int     // of them, samples with someone Queued
	// While someone was Queued: the mean holders, and the emulator's mean and most Idle
	// slots (neither held nor cleaning up: slots CAR could have given to a waiting user)
	// and mean Cleaning ones (destroyed, not yet reusable: CAR's own delay).
	HoldersWaiting  float64
	EmuIdleWaiting  float64
	EmuIdleMaxWait  int
	EmuCleaningWait float64
	EmuHeldWaiting  float64 // mean Locked+Sessions in the emulator while someone was Queued
}

// occupancy averages the samples taken in [from, to].
func (s *sampler) occupancy(from, to time.Time) Occupancy {
	s.mu.Lock()
	defer s.mu.Unlock()
	var o Occupancy
	var holders, holdersW, idleW, cleanW, heldW float64
	emuW := 0
	for _, p := range s.points {
		if p.at.Before(from) || p.at.After(to) || !p.statsOK {
			continue
		}
		o.Samples++
		holders += float64(p.holders)
		if p.queued == 0 {
			continue
		}
		o.WaitingSamples++
		holdersW += float64(p.holders)
		if p.emuOK {
			emuW++
			idleW += float64(p.emuIdle)
			cleanW += float64(p.emuCleaning)
			heldW += float64(p.emuHeld)
			o.EmuIdleMaxWait = max(o.EmuIdleMaxWait, p.emuIdle)
		}
	}
	if o.Samples > 0 {
		o.Holders = holders / float64(o.Samples)
	}
	if o.WaitingSamples > 0 {
		o.HoldersWaiting = holdersW / float64(o.WaitingSamples)
	}
	if emuW > 0 {
		o.EmuIdleWaiting, o.EmuCleaningWait, o.EmuHeldWaiting = idleW/float64(emuW), cleanW/float64(emuW), heldW/float64(emuW)
	}
	return o
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
