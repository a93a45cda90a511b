package httpapi

import (
	"io"
	"net"
	"net/http"
	"strings"

	"github.com/tencentyun/scf-go-lib/events"
)

// Adapt serves an SCF HTTP handler over net/http, as the local harness needs: each request
// becomes the function-URL form of the event (no requestContext; the peer address in
// x-scf-remote-addr), and the handler's answer is written back as is.
func Adapt(h HandlerFunc) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ev, err := EventFromHTTP(r)
		if err != nil {
			http.Error(w, "read body", http.StatusBadRequest)
			return
		}
		resp, err := h(r.Context(), ev)
		if err != nil { // SCF would answer a platform error; mirror that
			http.Error(w, "function error", http.StatusBadGateway)
			return
		}
		WriteResponse(w, resp)
	})
}

// EventFromHTTP builds the function-URL event of r. The body is read up to one byte past the
// 16 KiB limit plus base64 overhead, so the handler still sees that it is too large.
func EventFromHTTP(r *http.Request) (events.APIGatewayRequest, error) {
	b, err := io.ReadAll(io.LimitReader(r.Body, MaxBody*4/3+8))
	if err != nil {
		return events.APIGatewayRequest{}, err
	}
	h := make(map[string]string, len(r.Header)+1)
	for k, v := range r.Header {
		h[strings.ToLower(k)] = strings.Join(v, ", ")
	}
	if host, _, err := net.SplitHostPort(r.RemoteAddr); err == nil {
		h["x-scf-remote-addr"] = host
	}
	q := events.APIGatewayQueryString{}
	for k, v := range r.URL.Query() {
		q[k] = v
	}
	return events.APIGatewayRequest{Headers: h, Method: r.Method, Path: r.URL.Path, QueryString: q, Body: string(b)}, nil
}

// WriteResponse writes an SCF answer to w.
func WriteResponse(w http.ResponseWriter, resp events.APIGatewayResponse) {
	for k, v := range resp.Headers {
		w.Header().Set(k, v)
	}
	status := resp.StatusCode
	if status == 0 {
		status = http.StatusOK
	}
	w.WriteHeader(status)
	_, _ = io.WriteString(w, resp.Body)
}
