package caremu

import (
	"errors"
	"sync"
)

// The Go API for what CAR does beside its HTTP API: the client side of a
// session. A page's TCGSDK connects to the session CreateSession made for its
// ClientSession (Attach); CAR tells nobody when a session ends, but the page
// is disconnected, which is what Subscribe lets a harness (local/relay) do.

// SessionInfo is a session made by CreateSession.
type SessionInfo struct {
	UserID           string
	ServerSession    string
	ClientSession    string // as given to CreateSession
	RunWithoutClient bool
}

// EndReason says why a session ended.
type EndReason string

// Why sessions end.
const (
	EndDestroyed EndReason = "destroyed" // DestroySession for its UserId
	EndReplaced  EndReason = "replaced"  // a newer CreateSession for its UserId
	EndReclaimed EndReason = "reclaimed" // its client stayed away past ReconnectWindow
)

// SessionEvent is a session created (Ended empty) or ended.
type SessionEvent struct {
	Session SessionInfo
	Ended   EndReason
}

// Errors of Attach.
var (
	// ErrUnknownSession: no live session has this ServerSession (never issued,
	// or ended: destroyed, replaced or reclaimed).
	ErrUnknownSession = errors.New("no live session has this ServerSession")
	// ErrClientMismatch: the session was created for another ClientSession
	// (or runs without a client), as a real SDP answer only fits its own offer.
	ErrClientMismatch = errors.New("the session was created for another ClientSession")
)

// subscriber is one Subscribe callback.
type subscriber struct {
	id int
	fn func(SessionEvent)
}

// Subscribe calls fn for every session created or ended from now on, in the
// order the emulator made the changes: for one session, its creation before
// its end. fn runs after the change, outside the emulator's lock, in whichever
// goroutine is delivering (often the caller of the CAR action, maybe after
// that call returned); it must not block for long, and it may call the
// Emulator. The returned cancel stops the calls (a delivery already under way
// may still make one).
func (e *Emulator) Subscribe(fn func(SessionEvent)) (cancel func()) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.nextSub++
	id := e.nextSub
	e.subs = append(e.subs, subscriber{id: id, fn: fn})
	return func() {
		e.mu.Lock()
		defer e.mu.Unlock()
		for i, s := range e.subs {
			if s.id == id {
				e.subs = append(e.subs[:i:i], e.subs[i+1:]...)
				return
			}
		}
	}
}

// Attach connects a page to the live session with serverSession, which must
// have been created for clientSession (else ErrUnknownSession or
// ErrClientMismatch). While a page is attached the session is connected: a
// reconnect window that was running stops. detach (idempotent) says the page
// went away; when the last one goes, the reconnect window starts, as when a
// real client disconnects (see Disconnect). detach after the session ended
// does nothing.
func (e *Emulator) Attach(serverSession, clientSession string) (_ SessionInfo, detach func(), _ error) {
	defer e.deliver()
	e.mu.Lock()
	defer e.mu.Unlock()
	info, err := e.slots.attach(serverSession, clientSession, e.now())
	if err != nil {
		return SessionInfo{}, nil, err
	}
	var once sync.Once
	return info, func() {
		once.Do(func() {
			defer e.deliver()
			e.mu.Lock()
			defer e.mu.Unlock()
			e.slots.detach(serverSession, e.now())
		})
	}, nil
}

// deliver hands the recorded session events to the subscribers. One goroutine
// delivers at a time, taking every event recorded so far, so the order holds;
// a caller that finds a delivery under way leaves its events to it (which
// also makes a callback that calls the Emulator safe).
func (e *Emulator) deliver() {
	for {
		if !e.delivering.TryLock() {
			return
		}
		e.mu.Lock()
		evs := e.slots.takeEvents()
		subs := e.subs // never modified in place: Subscribe and cancel copy
		e.mu.Unlock()
		for _, ev := range evs {
			for _, s := range subs {
				s.fn(ev)
			}
		}
		e.delivering.Unlock()
		e.mu.Lock()
		more := len(e.slots.events) > 0
		e.mu.Unlock()
		if !more {
			return
		}
	}
}
