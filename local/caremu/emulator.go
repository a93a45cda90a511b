// Package caremu emulates Tencent Cloud CAR's concurrency API (version
// 2022-01-10) over the real wire protocol, so that the unmodified SDK client
// (and any Tencent Cloud API v3 client) can be pointed at it: the local
// harness serves it in place of car.tencentcloudapi.com, and tests drive the
// real client against it over httptest.
//
// Protocol: POST / with X-TC-Action, X-TC-Version (2022-01-10),
// X-TC-Timestamp (at most 5 minutes off the wall clock: clients sign with real
// time even when Options.Now is a fake clock), optional X-TC-Token, and a
// TC3-HMAC-SHA256 Authorization verified against Options.SecretID/SecretKey
// with the request's own signed headers. Every answer is HTTP 200 with
// {"Response":{…,"RequestId"}} or {"Response":{"Error":{"Code","Message"},"RequestId"}}.
// Request errors: AuthFailure.InvalidAuthorization / SecretIdNotFound /
// SignatureExpire / SignatureFailure, MissingParameter, UnknownParameter,
// InvalidParameter(.JsonParseError), InvalidParameterValue, InvalidAction,
// NoSuchVersion, UnsupportedProtocol (not POST), RequestSizeLimitExceeded,
// RequestLimitExceeded (Options.Rates).
//
// Slot model (Options.Slots slots, all expiry evaluated lazily on Options.Now):
//   - ApplyConcurrent locks an idle slot to the UserId for LockTTL, or
//     re-attaches to the lock or session the user already holds;
//     ResourceNotFound.NoIdle when no slot is idle.
//   - A second call for a UserId while one is being processed (observable
//     with injected latency) gets FailedOperation.SlowDown.
//   - CreateSession needs a live lock or session (else
//     FailedOperation.LockTimeout) and a ClientSession unless
//     RunMode=RunWithoutClient; each call returns a new ServerSession.
//   - DestroySession frees the lock or session; the slot stays busy (counted
//     in Running, not Idle) for CleanupDelay. An unknown UserId gets
//     ResourceNotFound.SessionNotFound.
//   - Disconnect(user) starts the ReconnectWindow; a CreateSession inside it
//     keeps the slot, otherwise the session is reclaimed (then cleaned).
//     RunWithoutClient sessions are never reclaimed.
//   - DescribeConcurrentCount returns Total and Running (locks + sessions +
//     cleaning slots).
//
// Sessions (the Go API in sessions.go): CreateSession records the
// ClientSession it was given; Attach connects a page to a session by its
// ServerSession and that ClientSession (a page's leaving starts the reconnect
// window), and Subscribe reports every session created and ended (destroyed,
// replaced by a newer CreateSession for the UserId, or reclaimed), so a
// harness can disconnect the page as CAR does.
//
// Faults (Options.Faults, see ParseFaults, or the Go API): error codes with a
// probability per action, added latency with jitter, scripted next answers.
package caremu

import (
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"sort"
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// Credentials the local harness configures on both sides.
const (
	LocalSecretID  = "AKIDLOCAL"
	LocalSecretKey = "local-secret-key"
)

// Options configures an Emulator. Zero fields take the defaults in brackets.
type Options struct {
	Slots               int                // concurrency slots [10], of every ProjectId when Projects is empty
	Projects            map[string]int     // the projects hosted, each with its own slots; other ProjectIds are refused
	SecretID, SecretKey string             // accepted credentials [LocalSecretID, LocalSecretKey]
	LockTTL             time.Duration      // ApplyConcurrent lock lifetime without CreateSession [30s]
	CleanupDelay        time.Duration      // after DestroySession the slot is busy this long [2s]
	ReconnectWindow     time.Duration      // after Disconnect, session kept this long [90s]
	Now                 func() time.Time   // clock for all slot expiry and rate limits [time.Now]
	Rates               map[string]float64 // per-action requests/s, 0 or missing = unlimited (see CARRates)
	Faults              string             // fault spec, see ParseFaults
	Logger              *slog.Logger       // [slog.Default()]
	MaxBodyBytes        int64              // request body limit [64 KiB]
}

// CARRates returns the real service's documented per-action limits, for
// harnesses that want the emulator to push back like CAR does.
func CARRates() map[string]float64 {
	return map[string]float64{
		actionApply: 100, actionCreate: 100, actionDestroy: 100, actionDescribe: 20,
	}
}

// State is a snapshot of the slots, served as JSON at GET /emulator/state.
type State struct {
	Total    int
	Idle     int
	Locked   []string // users holding a lock without a session
	Sessions []string // users with a session
	Cleaning int      // slots cleaning up after DestroySession or a reclaim
	Running  int      // what DescribeConcurrentCount reports: locked + sessions + cleaning
	InFlight []string // users with a request being processed (see FailedOperation.SlowDown)
}

// Emulator is the CAR emulator: an http.Handler for the API plus a Go API to
// inspect state and inject faults. Safe for concurrent use.
type Emulator struct {
	opts    Options
	now     func() time.Time
	signNow func() time.Time // clock for the signature window: clients sign with real time
	log     *slog.Logger

	mu       sync.Mutex // guards everything below; never held while sleeping
	slots    *slots
	faults   faultState
	inflight map[string]bool
	limiters map[string]*rate.Limiter
	subs     []subscriber // see Subscribe
	nextSub  int

	delivering sync.Mutex // held by the goroutine handing session events to subs
}

// New validates opts and builds an Emulator.
func New(opts Options) (*Emulator, error) {
	if opts.Slots == 0 {
		opts.Slots = 10
	}
	if opts.Slots < 0 {
		return nil, fmt.Errorf("new car emulator: %d slots: want > 0", opts.Slots)
	}
	totals := map[string]int{"": opts.Slots}
	if len(opts.Projects) > 0 {
		totals = map[string]int{}
		for p, n := range opts.Projects {
			if p == "" || n < 0 {
				return nil, fmt.Errorf("new car emulator: project %q with %d slots: want a ProjectId and slots >= 0", p, n)
			}
			totals[p] = n
		}
	}
	if opts.SecretID == "" && opts.SecretKey == "" {
		opts.SecretID, opts.SecretKey = LocalSecretID, LocalSecretKey
	}
	if opts.SecretID == "" || opts.SecretKey == "" {
		return nil, fmt.Errorf("new car emulator: set both SecretID and SecretKey")
	}
	opts.LockTTL = orDuration(opts.LockTTL, 30*time.Second)
	opts.CleanupDelay = orDuration(opts.CleanupDelay, 2*time.Second)
	opts.ReconnectWindow = orDuration(opts.ReconnectWindow, 90*time.Second)
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.MaxBodyBytes <= 0 {
		opts.MaxBodyBytes = 64 << 10
	}
	faults, err := ParseFaults(opts.Faults)
	if err != nil {
		return nil, fmt.Errorf("new car emulator: %w", err)
	}
	e := &Emulator{
		opts:     opts,
		now:      opts.Now,
		signNow:  time.Now,
		log:      opts.Logger,
		slots:    newSlots(totals, opts.LockTTL, opts.CleanupDelay, opts.ReconnectWindow),
		faults:   newFaultState(faults),
		inflight: map[string]bool{},
		limiters: map[string]*rate.Limiter{},
	}
	for action, r := range opts.Rates {
		if !knownAction(action) {
			return nil, fmt.Errorf("new car emulator: rate for unknown action %q", action)
		}
		if r > 0 {
			e.limiters[action] = newLimiter(r)
		}
	}
	return e, nil
}

func orDuration(d, def time.Duration) time.Duration {
	if d == 0 {
		return def
	}
	return d
}

// State returns a snapshot with every expiry applied as of now: of every project together.
func (e *Emulator) State() State {
	st, _ := e.ProjectState("")
	return st
}

// ProjectState is State for one project ("": all of them); ok is false for a project the
// emulator does not host.
func (e *Emulator) ProjectState(projectID string) (_ State, ok bool) {
	defer e.deliver() // a sweep may have reclaimed sessions
	e.mu.Lock()
	defer e.mu.Unlock()
	project, all := "", projectID == ""
	if !all {
		if project, ok = e.slots.pool(projectID); !ok {
			return State{}, false
		}
	}
	st := e.slots.state(e.now(), project, all)
	st.InFlight = make([]string, 0, len(e.inflight))
	for u := range e.inflight {
		st.InFlight = append(st.InFlight, u)
	}
	sort.Strings(st.InFlight)
	return st, true
}

// StateHandler serves State as JSON (the harness mounts it at GET /emulator/state); with
// ?ProjectId=P, that project's (404 for one it does not host).
func (e *Emulator) StateHandler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			w.Header().Set("Allow", "GET, HEAD")
			http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
			return
		}
		st, ok := e.ProjectState(r.URL.Query().Get("ProjectId"))
		if !ok {
			http.Error(w, "no such ProjectId in the emulator", http.StatusNotFound)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(st)
	})
}

// Disconnect records that the user's client went away. CAR keeps the session
// for ReconnectWindow, then reclaims it, unless it runs without a client.
func (e *Emulator) Disconnect(userID string) {
	defer e.deliver()
	e.mu.Lock()
	defer e.mu.Unlock()
	e.slots.disconnect(userID, e.now())
}
