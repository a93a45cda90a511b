package caremu

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// signatureWindow is how far X-TC-Timestamp may be from the server's clock.
const signatureWindow = 5 * time.Minute

const tc3Algorithm = "TC3-HMAC-SHA256"

// authorization is a parsed "TC3-HMAC-SHA256 Credential=…, SignedHeaders=…, Signature=…" header.
type authorization struct {
	secretID, date, service string
	signedHeaders           []string
	signature               string
}

func parseAuthorization(h string) (authorization, error) {
	var a authorization
	rest, ok := strings.CutPrefix(h, tc3Algorithm+" ")
	if !ok {
		return a, fmt.Errorf("authorization must start with %s", tc3Algorithm)
	}
	for _, part := range strings.Split(rest, ",") {
		k, v, ok := strings.Cut(strings.TrimSpace(part), "=")
		if !ok {
			return a, fmt.Errorf("malformed authorization element %q", part)
		}
		switch k {
		case "Credential":
			f := strings.Split(v, "/")
			if len(f) != 4 || f[3] != "tc3_request" {
				return a, fmt.Errorf("credential must be SecretId/date/service/tc3_request")
			}
			a.secretID, a.date, a.service = f[0], f[1], f[2]
		case "SignedHeaders":
			a.signedHeaders = strings.Split(v, ";")
		case "Signature":
			a.signature = v
		}
	}
	if a.secretID == "" || len(a.signedHeaders) == 0 || a.signature == "" {
		return a, fmt.Errorf("authorization needs Credential, SignedHeaders and Signature")
	}
	return a, nil
}

// verifyTC3 checks a TC3-HMAC-SHA256 signed request, using the request's own
// headers as sent (so "application/json" and "application/json;
// charset=utf-8" both verify). It returns a CAR error code and message, or
// "" when the request is authentic.
func (e *Emulator) verifyTC3(r *http.Request, body []byte, now time.Time) (code, msg string) {
	raw := r.Header.Get("Authorization")
	if raw == "" {
		return "AuthFailure.InvalidAuthorization", "Authorization header is missing"
	}
	a, err := parseAuthorization(raw)
	if err != nil {
		return "AuthFailure.InvalidAuthorization", err.Error()
	}
	if a.service != "car" {
		return "AuthFailure.InvalidAuthorization", fmt.Sprintf("credential scope service %q is not car", a.service)
	}
	ts, err := strconv.ParseInt(r.Header.Get("X-TC-Timestamp"), 10, 64)
	if err != nil {
		return "MissingParameter", "X-TC-Timestamp is missing or not a Unix time"
	}
	signedAt := time.Unix(ts, 0).UTC()
	if d := now.Sub(signedAt); d > signatureWindow || d < -signatureWindow {
		return "AuthFailure.SignatureExpire", "the request signature has expired (X-TC-Timestamp more than 5 minutes off)"
	}
	if a.date != signedAt.Format("2006-01-02") {
		return "AuthFailure.InvalidAuthorization", "credential date does not match X-TC-Timestamp"
	}
	if a.secretID != e.opts.SecretID {
		return "AuthFailure.SecretIdNotFound", "the SecretId is not found"
	}
	if !contains(a.signedHeaders, "content-type") || !contains(a.signedHeaders, "host") {
		return "AuthFailure.InvalidAuthorization", "SignedHeaders must include content-type and host"
	}
	payloadHash := sha256hex(body)
	if r.Header.Get("X-TC-Content-SHA256") == "UNSIGNED-PAYLOAD" {
		payloadHash = sha256hex([]byte("UNSIGNED-PAYLOAD"))
	}
	for _, lower := range []bool{false, true} {
		canonical := canonicalRequest(r, a.signedHeaders, payloadHash, lower)
		want := signTC3(e.opts.SecretKey, a.date, a.service, strconv.FormatInt(ts, 10), canonical)
		if hmac.Equal([]byte(want), []byte(a.signature)) {
			return "", ""
		}
	}
	return "AuthFailure.SignatureFailure", "the request signature does not match"
}

// canonicalRequest builds TC3's canonical request: method, "/", the query,
// the signed headers "name:value\n" in the order listed, their names, and the
// payload hash. lowerValues applies the spec's lower-casing of header values,
// which the Go SDK skips; both forms are accepted.
func canonicalRequest(r *http.Request, signed []string, payloadHash string, lowerValues bool) string {
	var hdrs strings.Builder
	for _, name := range signed {
		name = strings.ToLower(strings.TrimSpace(name))
		var v string
		if name == "host" {
			v = r.Host
		} else {
			v = r.Header.Get(name)
		}
		v = strings.TrimSpace(v)
		if lowerValues {
			v = strings.ToLower(v)
		}
		hdrs.WriteString(name + ":" + v + "\n")
	}
	return strings.Join([]string{r.Method, "/", r.URL.RawQuery, hdrs.String(), strings.Join(signed, ";"), payloadHash}, "\n")
}

// signTC3 computes the hex signature of a canonical request.
func signTC3(secretKey, date, service, timestamp, canonical string) string {
	scope := date + "/" + service + "/tc3_request"
	toSign := strings.Join([]string{tc3Algorithm, timestamp, scope, sha256hex([]byte(canonical))}, "\n")
	k := hmacSHA256([]byte("TC3"+secretKey), date)
	k = hmacSHA256(k, service)
	k = hmacSHA256(k, "tc3_request")
	return hex.EncodeToString(hmacSHA256(k, toSign))
}

func hmacSHA256(key []byte, msg string) []byte {
	m := hmac.New(sha256.New, key)
	m.Write([]byte(msg))
	return m.Sum(nil)
}

func sha256hex(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if strings.EqualFold(strings.TrimSpace(x), s) {
			return true
		}
	}
	return false
}
