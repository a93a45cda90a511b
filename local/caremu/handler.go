package caremu

import (
	"errors"
	"io"
	"log/slog"
	"mime"
	"net/http"
	"time"
)

// ServeHTTP is the CAR API at POST /. Checks run in the order the real
// service applies them: protocol and headers, signature, rate limit,
// parameters, then the per-UserId serialisation and the slot model.
func (e *Emulator) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	reqID := newRequestID()
	action := r.Header.Get("X-TC-Action")
	var userID, code string
	defer func() {
		lvl := slog.LevelInfo
		if code != "" {
			lvl = slog.LevelWarn
		}
		e.log.LogAttrs(r.Context(), lvl, "car emulator request",
			slog.String("action", action), slog.String("UserId", userID), slog.String("RequestId", reqID),
			slog.String("code", code), slog.Duration("duration", time.Since(start)))
	}()
	fail := func(c, msg string) {
		code = c
		writeError(w, reqID, c, msg)
	}

	if r.Method != http.MethodPost {
		fail("UnsupportedProtocol", "the CAR emulator accepts POST requests only")
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, e.opts.MaxBodyBytes))
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			fail("RequestSizeLimitExceeded", "the request body exceeds the size limit")
		} else {
			fail("InvalidParameter", "cannot read the request body")
		}
		return
	}
	if action == "" {
		fail("MissingParameter", "the header X-TC-Action is missing")
		return
	}
	if mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type")); err != nil || mt != "application/json" {
		fail("InvalidParameter", "Content-Type must be application/json")
		return
	}
	if c, msg := e.verifyTC3(r, body, e.signNow()); c != "" {
		fail(c, msg)
		return
	}
	switch v := r.Header.Get("X-TC-Version"); {
	case v == "":
		fail("MissingParameter", "the header X-TC-Version is missing")
		return
	case v != apiVersion:
		fail("NoSuchVersion", "the API version "+v+" does not exist; use "+apiVersion)
		return
	}
	if !knownAction(action) {
		fail("InvalidAction", "the action "+action+" does not exist")
		return
	}
	if !e.allow(action) {
		fail("RequestLimitExceeded", messageFor("RequestLimitExceeded"))
		return
	}
	params, c, msg := parseParams(action, body)
	if c != "" {
		fail(c, msg)
		return
	}
	userID = params["UserId"]
	if action == actionCreate {
		switch params["RunMode"] {
		case "", "RunWithoutClient":
		default:
			fail("InvalidParameterValue", "RunMode must be empty or RunWithoutClient")
			return
		}
		if params["RunMode"] == "" && params["ClientSession"] == "" {
			fail("MissingParameter", "the parameter `ClientSession` is missing")
			return
		}
	}

	if userID != "" {
		if !e.enter(userID) {
			fail(codeSlowDown, messageFor(codeSlowDown))
			return
		}
		defer e.leave(userID)
	}
	if d := e.latency(action); d > 0 {
		t := time.NewTimer(d)
		select {
		case <-r.Context().Done():
			t.Stop()
			code = "ClientGone"
			return
		case <-t.C:
		}
	}
	fields, c := e.perform(action, params)
	if c != "" {
		fail(c, messageFor(c))
		return
	}
	writeResult(w, reqID, fields)
}

// allow applies the per-action rate limit against the injected clock.
func (e *Emulator) allow(action string) bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	l, ok := e.limiters[action]
	return !ok || l.AllowN(e.now(), 1)
}

// enter marks a request for userID in flight; false if one already is (CAR
// answers FailedOperation.SlowDown to concurrent calls for one UserId).
func (e *Emulator) enter(userID string) bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.inflight[userID] {
		return false
	}
	e.inflight[userID] = true
	return true
}

func (e *Emulator) leave(userID string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	delete(e.inflight, userID)
}

func (e *Emulator) latency(action string) time.Duration {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.faults.latency(action).draw()
}

// perform answers an injected fault, or runs the action on the slot model.
func (e *Emulator) perform(action string, p map[string]string) (map[string]any, string) {
	defer e.deliver() // sessions may have been created or ended
	e.mu.Lock()
	defer e.mu.Unlock()
	if c := e.faults.nextCode(action); c != "" {
		return nil, c
	}
	now := e.now()
	switch action {
	case actionApply:
		return nil, e.slots.apply(p["UserId"], p["ProjectId"], now)
	case actionCreate:
		ss := newServerSession()
		if c := e.slots.create(p["UserId"], ss, p["ClientSession"], p["RunMode"] == "RunWithoutClient", now); c != "" {
			return nil, c
		}
		return map[string]any{"ServerSession": ss, "RoleNumber": "", "Role": p["Role"]}, ""
	case actionDestroy:
		return nil, e.slots.destroy(p["UserId"], now)
	case actionDescribe:
		e.slots.sweep(now)
		project, ok := e.slots.pool(p["ProjectId"])
		if !ok {
			return nil, codeInvalidProject
		}
		return map[string]any{"Total": e.slots.total(project, false), "Running": e.slots.running(project, false)}, ""
	}
	return nil, "InvalidAction"
}
