package httpapi

import (
	"bytes"
	"encoding/base64"
	"net"
	"strings"

	"github.com/tencentyun/scf-go-lib/events"
)

// MaxBody is the largest body accepted (after base64 decoding): 16 KiB.
const MaxBody = 16 << 10

// headers returns the request headers with lower-case names: API gateway and function URLs
// do not agree on case, and HTTP header names are case-insensitive anyway.
func headers(ev events.APIGatewayRequest) map[string]string {
	h := make(map[string]string, len(ev.Headers))
	for k, v := range ev.Headers {
		h[strings.ToLower(k)] = v
	}
	return h
}

// body returns the request body, decoded when it arrived base64-encoded, or errTooLarge.
//
// The scf-go-lib event type drops the gateway's isBase64Encoded flag, so an encoded body is
// recognised by its content instead: a JSON object starts with '{' (after blanks), which is
// not a base64 character, so a body that does not, but decodes as base64 to one that does, was
// encoded. Nothing that would have been accepted as JSON is ever decoded.
func body(raw string) ([]byte, *apiError) {
	if len(raw) > MaxBody*4/3+4 {
		return nil, tooLarge()
	}
	b := bytes.TrimPrefix([]byte(raw), []byte("\xef\xbb\xbf")) // a UTF-8 BOM some tools add
	trimmed := bytes.TrimLeft(b, " \t\r\n")
	if len(trimmed) > 0 && trimmed[0] != '{' {
		if dec, ok := decodeBase64(strings.TrimSpace(raw)); ok {
			if t := bytes.TrimLeft(dec, " \t\r\n"); len(t) > 0 && t[0] == '{' {
				b = dec
			}
		}
	}
	if len(b) > MaxBody {
		return nil, tooLarge()
	}
	return b, nil
}

func decodeBase64(s string) ([]byte, bool) {
	for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.RawStdEncoding, base64.URLEncoding, base64.RawURLEncoding} {
		if b, err := enc.DecodeString(s); err == nil {
			return b, true
		}
	}
	return nil, false
}

func tooLarge() *apiError {
	return &apiError{status: 413, code: CodeTooLarge, msg: "body: at most 16384 bytes (16 KiB)"}
}

// clientIP finds the caller's address: the API gateway's requestContext.sourceIp, else the
// function URL's x-scf-remote-addr header, else the first X-Forwarded-For entry (a header the
// client can set, so only a last resort). "" when none holds an IP address.
func clientIP(ev events.APIGatewayRequest, h map[string]string) string {
	if ip := parseIP(ev.Context.SourceIP); ip != "" {
		return ip
	}
	if ip := parseIP(h["x-scf-remote-addr"]); ip != "" {
		return ip
	}
	first, _, _ := strings.Cut(h["x-forwarded-for"], ",")
	return parseIP(first)
}

// parseIP accepts "ip" or "ip:port" / "[ip]:port" and returns the canonical IP, else "".
func parseIP(s string) string {
	s = strings.TrimSpace(s)
	if s == "" {
		return ""
	}
	if ip := net.ParseIP(s); ip != nil {
		return ip.String()
	}
	if host, _, err := net.SplitHostPort(s); err == nil {
		if ip := net.ParseIP(host); ip != nil {
			return ip.String()
		}
	}
	return ""
}

// routeOf returns the route a path names: its last segment ("/release/start/" → "start").
func routeOf(path string) string {
	if r, ok := adminPath(path); ok {
		return r
	}
	path = strings.TrimRight(path, "/")
	if i := strings.LastIndexByte(path, '/'); i >= 0 {
		return path[i+1:]
	}
	return path
}
