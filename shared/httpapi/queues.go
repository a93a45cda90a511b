package httpapi

import (
	"net/http"
)

// Which queue a request is for: API.md's "Many queues in one deployment". The choice is the
// transport's (it reads request fields); what happens in the queue is the session service's.

// MaxQueueID bounds QueueId (the queue package's limit).
const MaxQueueID = 64

// pick returns the queue a request names: by QueueId when given, else by ProjectId (and
// ApplicationId where queues of one project differ by it), else the first queue. A request
// may repeat the chosen queue's CAR ids but not name others; an unknown QueueId or ProjectId
// is a 400 naming the field.
func (a *API) pick(rq *request) (*Queue, error) {
	id, err := rq.f.str("QueueId")
	if err != nil {
		return nil, err
	}
	if id == "" && rq.query != nil {
		id = rq.query["QueueId"]
	}
	project, err := rq.f.str("ProjectId")
	if err != nil {
		return nil, err
	}
	app, err := rq.f.str("ApplicationId")
	if err != nil {
		return nil, err
	}
	// The ids' form first (optionalID against themselves checks only that), so a bad one is
	// named as such rather than as unknown.
	if err := rq.f.optionalID("ProjectId", project); err != nil {
		return nil, err
	}
	if err := rq.f.optionalID("ApplicationId", app); err != nil {
		return nil, err
	}
	var q *Queue
	switch {
	case id != "":
		if len(id) > MaxQueueID || !idChars(id) {
			return nil, invalid("QueueId: 1–%d characters of [A-Za-z0-9_.:-]", MaxQueueID)
		}
		if q = a.byID[id]; q == nil {
			return nil, &apiError{status: http.StatusBadRequest, code: CodeInvalidField,
				msg: "QueueId: no queue " + quote(id) + " here; omit it for the default queue"}
		}
	case project != "":
		if q, err = a.byProject(project, app); err != nil {
			return nil, err
		}
	default:
		q = &a.queues[0]
	}
	for _, c := range []struct{ name, configured string }{
		{"ProjectId", q.ProjectID},
		{"ApplicationId", q.ApplicationID},
		{"ApplicationVersionId", q.ApplicationVersionID},
	} {
		if err := rq.f.optionalID(c.name, c.configured); err != nil {
			return nil, err
		}
	}
	rq.queue = q
	return q, nil
}

// byProject finds the queue of a ProjectId: the only one, else the one whose ApplicationId
// the request names, else the one of that project that names no application.
func (a *API) byProject(project, app string) (*Queue, error) {
	var only, noApp, match *Queue
	n := 0
	for i := range a.queues {
		q := &a.queues[i]
		if q.ProjectID != project {
			continue
		}
		n++
		only = q
		if q.ApplicationID == "" {
			noApp = q
		}
		if app != "" && q.ApplicationID == app {
			match = q
		}
	}
	switch {
	case n == 0:
		return nil, invalid("ProjectId: no queue serves project %s here; omit it for the default queue", quote(project))
	case match != nil:
		return match, nil
	case n == 1:
		return only, nil // optionalID then checks a given ApplicationId against it
	case app == "" && noApp != nil:
		return noApp, nil
	case app == "":
		return nil, invalid("ApplicationId: project %s has several queues; name the application (or send QueueId)", quote(project))
	}
	return nil, invalid("ApplicationId: no queue serves application %s of project %s", quote(app), quote(project))
}

func quote(s string) string { return `"` + truncate(s, 64) + `"` }

func idChars(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; !userIDChar(c) || c == '@' {
			return false
		}
	}
	return true
}
