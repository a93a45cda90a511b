package httpapi

import (
	"bytes"
	"context"
	"io"
	"net"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/tencentyun/scf-go-lib/events"
)

// DefaultRequestTimeout bounds one request in the server mode, as serverless.yml's timeout
// bounds one invocation of an HTTP function.
const DefaultRequestTimeout = 30 * time.Second

// bufs recycles request body buffers: a poll's body is ~100 bytes, so one buffer per request
// would be most of what the server allocates for it.
var bufs = sync.Pool{New: func() any { return new(bytes.Buffer) }}

// ServeHTTP serves every route over net/http, for the long-running server mode and the local
// harness: any path and method goes through the same contract as the event functions (the
// route is the path's last segment; anything else is the JSON 404), so no answer leaves the
// envelope. Only the headers the routes read are copied into the event, and the peer address
// is passed as a function URL's x-scf-remote-addr would be. As on SCF, a request runs to its
// end (bounded by DefaultRequestTimeout) even when the client hangs up, so an admission is never
// cut halfway through its CAR calls.
func (a *API) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	buf := bufs.Get().(*bytes.Buffer)
	buf.Reset()
	defer bufs.Put(buf)
	if r.Body != nil {
		lr := io.LimitedReader{R: r.Body, N: MaxBody*4/3 + 8}
		_, _ = buf.ReadFrom(&lr)
	}
	h := make(map[string]string, 3)
	for _, k := range [...]string{"Authorization", "X-Forwarded-For"} {
		if v := r.Header[k]; len(v) > 0 {
			h[lower(k)] = joinHeader(v)
		}
	}
	if host, _, err := net.SplitHostPort(r.RemoteAddr); err == nil {
		h["x-scf-remote-addr"] = host
	}
	ev := events.APIGatewayRequest{Headers: h, Method: r.Method, Path: r.URL.Path, Body: buf.String()}
	if r.URL.RawQuery != "" {
		ev.QueryString = events.APIGatewayQueryString(r.URL.Query()) // /stats?QueueId=
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(r.Context()), DefaultRequestTimeout)
	resp := a.serve(ctx, "", ev, true)
	cancel()
	writeResponse(w, resp)
}

func lower(k string) string {
	switch k {
	case "Authorization":
		return "authorization"
	default:
		return "x-forwarded-for"
	}
}

func joinHeader(v []string) string {
	if len(v) == 1 {
		return v[0]
	}
	n := 0
	for _, s := range v {
		n += len(s) + 2
	}
	b := make([]byte, 0, n)
	for i, s := range v {
		if i > 0 {
			b = append(b, ", "...)
		}
		b = append(b, s...)
	}
	return string(b)
}

// writeResponse writes an answer with a Content-Length, so keep-alive needs no chunking.
// The envelope's header names are already canonical, so they are set without re-canonicalising,
// and the values every answer repeats are shared read-only slices rather than one allocation
// per header per answer.
func writeResponse(w http.ResponseWriter, resp reply) {
	hd := w.Header()
	for k, v := range resp.headers {
		hd[k] = headerValue(v)
	}
	hd["Content-Length"] = contentLength(len(resp.body))
	status := resp.status
	if status == 0 {
		status = http.StatusOK
	}
	w.WriteHeader(status)
	_, _ = w.Write(resp.body)
}

// commonValues are the header values of (nearly) every answer (envelope.go's response).
var commonValues = func() map[string][]string {
	m := map[string][]string{}
	for _, v := range []string{"application/json", "no-store", "nosniff", "*", "Retry-After", "Origin"} {
		m[v] = []string{v}
	}
	return m
}()

func headerValue(v string) []string {
	if s, ok := commonValues[v]; ok {
		return s[:1:1] // a full slice expression: an append by anyone cannot write into the shared array
	}
	return []string{v}
}

// contentLengths are the Content-Length values of bodies up to 2 KiB (every user route's).
var contentLengths = func() [][]string {
	s := make([][]string, 2048)
	for i := range s {
		s[i] = []string{strconv.Itoa(i)}
	}
	return s
}()

func contentLength(n int) []string {
	if n < len(contentLengths) {
		return contentLengths[n][:1:1]
	}
	return []string{strconv.Itoa(n)}
}
