package caremu

import (
	"sort"
	"time"
)

// holding is what one user holds: a lock from ApplyConcurrent, which
// CreateSession turns into a session.
type holding struct {
	project          string // the pool it holds a slot of ("" with one pool)
	session          bool
	lockedUntil      time.Time // lock expiry while there is no session yet
	runWithoutClient bool      // CAR never reclaims such a session by itself
	disconnectedAt   time.Time // zero while the client is connected
	serverSession    string
	clientSession    string // the ClientSession CreateSession was given
	clients          int    // pages attached to the session (see attach)
}

// info describes user's session.
func (h *holding) info(user string) SessionInfo {
	return SessionInfo{UserID: user, ServerSession: h.serverSession, ClientSession: h.clientSession, RunWithoutClient: h.runWithoutClient}
}

// slots is the pool of concurrency slots. Every expiry is evaluated lazily in
// sweep against the injected clock, so tests move time instead of sleeping.
// Not safe for concurrent use: Emulator.mu guards it.
type slots struct {
	// totals are the pools' sizes by ProjectId; one pool "" serves every ProjectId when the
	// emulator hosts no named projects.
	totals                                 map[string]int
	lockTTL, cleanupDelay, reconnectWindow time.Duration
	users                                  map[string]*holding
	byServerSession                        map[string]string // ServerSession → UserId, for sessions only
	events                                 []SessionEvent    // changes not yet delivered (Emulator.deliver)
	cleaning                               []cleaningSlot    // slots cleaning up, and when each is idle again
	// nextDue is the earliest pending expiry; sweep scans nothing before it,
	// which keeps a request O(1) with thousands of holders. Zero = unknown.
	nextDue time.Time
}

// cleaningSlot is a slot of a project's pool that is idle again at a time.
type cleaningSlot struct {
	project string
	at      time.Time
}

// farFuture stands for "no expiry pending".
var farFuture = time.Unix(1<<62, 0)

// noteDeadline records a new expiry so sweep does not skip past it.
func (s *slots) noteDeadline(t time.Time) {
	if !s.nextDue.IsZero() && t.Before(s.nextDue) {
		s.nextDue = t
	}
}

func newSlots(totals map[string]int, lockTTL, cleanupDelay, reconnectWindow time.Duration) *slots {
	return &slots{totals: totals, lockTTL: lockTTL, cleanupDelay: cleanupDelay,
		reconnectWindow: reconnectWindow, users: map[string]*holding{}, byServerSession: map[string]string{}}
}

// end records that user's session ended (the caller removes or replaces the holding).
func (s *slots) end(user string, h *holding, why EndReason) {
	if !h.session {
		return
	}
	if s.byServerSession[h.serverSession] == user {
		delete(s.byServerSession, h.serverSession)
	}
	s.events = append(s.events, SessionEvent{Session: h.info(user), Ended: why})
}

// takeEvents returns the changes recorded since the last call.
func (s *slots) takeEvents() []SessionEvent {
	evs := s.events
	s.events = nil
	return evs
}

// sweep applies every expiry due at now: unused locks lapse (the slot is idle
// at once: nothing ran on it), sessions whose client stayed away past the
// reconnect window are reclaimed (and cleaned), cleaning slots finish.
func (s *slots) sweep(now time.Time) {
	if !s.nextDue.IsZero() && now.Before(s.nextDue) {
		return
	}
	next := farFuture
	due := func(t time.Time) bool {
		if now.Before(t) {
			if t.Before(next) {
				next = t
			}
			return false
		}
		return true
	}
	for id, h := range s.users {
		switch {
		case !h.session:
			if due(h.lockedUntil) {
				delete(s.users, id)
			}
		case !h.runWithoutClient && !h.disconnectedAt.IsZero():
			if reclaimAt := h.disconnectedAt.Add(s.reconnectWindow); due(reclaimAt) {
				s.end(id, h, EndReclaimed)
				delete(s.users, id)
				s.cleaning = append(s.cleaning, cleaningSlot{h.project, reclaimAt.Add(s.cleanupDelay)})
			}
		}
	}
	kept := s.cleaning[:0]
	for _, c := range s.cleaning {
		if !due(c.at) {
			kept = append(kept, c)
		}
	}
	s.cleaning = kept
	s.nextDue = next
}

// pool names the pool of a request's ProjectId: "" with one pool; ok is false for a project
// the emulator does not host.
func (s *slots) pool(projectID string) (string, bool) {
	if _, one := s.totals[""]; one {
		return "", true
	}
	_, ok := s.totals[projectID]
	return projectID, ok
}

// running counts the pool's busy slots (all pools for "all").
func (s *slots) running(project string, all bool) int {
	n := 0
	for _, h := range s.users {
		if all || h.project == project {
			n++
		}
	}
	for _, c := range s.cleaning {
		if all || c.project == project {
			n++
		}
	}
	return n
}

func (s *slots) total(project string, all bool) int {
	if !all {
		return s.totals[project]
	}
	n := 0
	for _, t := range s.totals {
		n += t
	}
	return n
}

func (s *slots) idle(project string, all bool) int {
	return s.total(project, all) - s.running(project, all)
}

// apply locks an idle slot of the project's pool for user, or re-attaches to what it already
// holds (refreshing a lock that has no session yet). It returns a CAR error code. A user
// holding a slot of another project is refused: in one CAR account a UserId has one session.
func (s *slots) apply(user, projectID string, now time.Time) string {
	s.sweep(now)
	project, ok := s.pool(projectID)
	if !ok {
		return codeInvalidProject
	}
	if h, ok := s.users[user]; ok {
		if h.project != project {
			return codeUserElsewhere
		}
		if !h.session {
			h.lockedUntil = now.Add(s.lockTTL) // later than before: nextDue stays a safe bound
		}
		return ""
	}
	if s.idle(project, false) <= 0 {
		return codeNoIdle
	}
	s.users[user] = &holding{project: project, lockedUntil: now.Add(s.lockTTL)}
	s.noteDeadline(now.Add(s.lockTTL))
	return ""
}

// create turns the user's lock (or existing session) into a session with a
// fresh ServerSession; a previous session, and so its client, is thereby
// replaced.
func (s *slots) create(user, serverSession, clientSession string, runWithoutClient bool, now time.Time) string {
	s.sweep(now)
	h, ok := s.users[user]
	if !ok {
		return codeLockTimeout
	}
	s.end(user, h, EndReplaced)
	h.session = true
	h.runWithoutClient = runWithoutClient
	h.disconnectedAt = time.Time{}
	h.serverSession = serverSession
	h.clientSession = clientSession
	h.clients = 0
	s.byServerSession[serverSession] = user
	s.events = append(s.events, SessionEvent{Session: h.info(user)})
	return ""
}

// destroy ends the user's lock or session; the slot is cleaned for
// cleanupDelay before it is idle again.
func (s *slots) destroy(user string, now time.Time) string {
	s.sweep(now)
	h, ok := s.users[user]
	if !ok {
		return codeSessionNotFound
	}
	s.end(user, h, EndDestroyed)
	delete(s.users, user)
	if s.cleanupDelay > 0 {
		s.cleaning = append(s.cleaning, cleaningSlot{h.project, now.Add(s.cleanupDelay)})
		s.noteDeadline(now.Add(s.cleanupDelay))
	}
	return ""
}

// disconnect records that the user's client went away; the session is kept
// for the reconnect window unless it runs without a client.
func (s *slots) disconnect(user string, now time.Time) {
	s.sweep(now)
	if h, ok := s.users[user]; ok && h.session && !h.runWithoutClient && h.disconnectedAt.IsZero() {
		h.disconnectedAt = now
		s.noteDeadline(now.Add(s.reconnectWindow))
	}
}

// attach records that a page connected to the session with serverSession,
// which must have been created for clientSession. The reconnect window, if it
// was running, stops.
func (s *slots) attach(serverSession, clientSession string, now time.Time) (SessionInfo, error) {
	s.sweep(now)
	user := s.byServerSession[serverSession]
	h, ok := s.users[user]
	if !ok || !h.session || h.serverSession != serverSession {
		return SessionInfo{}, ErrUnknownSession
	}
	if h.runWithoutClient || h.clientSession != clientSession {
		return SessionInfo{}, ErrClientMismatch
	}
	h.clients++
	h.disconnectedAt = time.Time{}
	return h.info(user), nil
}

// detach records that a page attached to serverSession went away; when it was
// the last, the reconnect window starts. A session that has ended meanwhile is
// left alone (the user's newer session is not this page's).
func (s *slots) detach(serverSession string, now time.Time) {
	s.sweep(now)
	user := s.byServerSession[serverSession]
	h, ok := s.users[user]
	if !ok || !h.session || h.serverSession != serverSession {
		return
	}
	if h.clients > 0 {
		h.clients--
	}
	if h.clients == 0 && !h.runWithoutClient && h.disconnectedAt.IsZero() {
		h.disconnectedAt = now
		s.noteDeadline(now.Add(s.reconnectWindow))
	}
}

// state is the view of one pool, or of all of them.
func (s *slots) state(now time.Time, project string, all bool) State {
	s.sweep(now)
	st := State{Total: s.total(project, all), Locked: []string{}, Sessions: []string{}}
	for _, c := range s.cleaning {
		if all || c.project == project {
			st.Cleaning++
		}
	}
	for id, h := range s.users {
		if !all && h.project != project {
			continue
		}
		if h.session {
			st.Sessions = append(st.Sessions, id)
		} else {
			st.Locked = append(st.Locked, id)
		}
	}
	sort.Strings(st.Locked)
	sort.Strings(st.Sessions)
	st.Running = s.running(project, all)
	st.Idle = s.idle(project, all)
	return st
}
