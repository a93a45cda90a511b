package httpapi

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"sync"
	"unicode/utf8"

	"github.com/go-json-experiment/json/jsontext"
)

// Field limits of the contract.
const (
	MaxUserID        = 64
	MaxClientSession = 8192
	MaxTicket        = 256
	MaxRequestID     = 128
	MaxID            = 128 // ProjectId, ApplicationId, ApplicationVersionId
)

// fields is the request body: one JSON object, kept raw so that each field's type and limits
// can be checked with a message naming it.
type fields map[string]json.RawMessage

// bodyDecoder is a body's reader and JSON decoder, recycled: a fresh decoder and its state
// stack were a tenth of what a poll allocated.
type bodyDecoder struct {
	r   bytes.Reader
	dec jsontext.Decoder
}

var decoders = sync.Pool{New: func() any { return new(bodyDecoder) }}

// parseFields decodes b as one JSON object. An empty body is an empty object only where
// allowEmpty (GET /stats). A key given twice is refused: decoders differ on which copy wins
// (encoding/json keeps the last, others the first), so a body must mean one thing.
func parseFields(b []byte, allowEmpty bool) (fields, *apiError) {
	if len(bytes.TrimSpace(b)) == 0 {
		if allowEmpty {
			return fields{}, nil
		}
		return nil, &apiError{status: http.StatusBadRequest, code: CodeInvalidBody, msg: "body: want one JSON object, got an empty body"}
	}
	if !utf8.Valid(b) {
		return nil, &apiError{status: http.StatusBadRequest, code: CodeInvalidBody, msg: "body: want UTF-8 JSON"}
	}
	notObject := &apiError{status: http.StatusBadRequest, code: CodeInvalidBody, msg: "body: want one JSON object"}
	// jsontext reads tokens without encoding/json's per-call allocations (a poll's body is
	// parsed on every request) and refuses a repeated name itself.
	d := decoders.Get().(*bodyDecoder)
	defer decoders.Put(d)
	d.r.Reset(b)
	d.dec.Reset(&d.r)
	dec := &d.dec
	if tok, err := dec.ReadToken(); err != nil || tok.Kind() != '{' {
		return nil, notObject
	}
	f := make(fields, 4)
	for dec.PeekKind() != '}' {
		tok, err := dec.ReadToken()
		if err != nil {
			if serr := (*jsontext.SyntacticError)(nil); errors.As(err, &serr) && serr.Err == jsontext.ErrDuplicateName {
				return nil, &apiError{status: http.StatusBadRequest, code: CodeInvalidBody,
					msg: fmt.Sprintf("body: key %q appears more than once; send each field once", truncate(serr.JSONPointer.LastToken(), 64))}
			}
			return nil, notObject
		}
		key := tok.String() // before the next read voids tok
		raw, err := dec.ReadValue()
		if err != nil {
			return nil, notObject
		}
		f[key] = json.RawMessage(raw.Clone())
	}
	if tok, err := dec.ReadToken(); err != nil || tok.Kind() != '}' {
		return nil, notObject
	}
	if _, err := dec.ReadToken(); err != io.EOF {
		return nil, &apiError{status: http.StatusBadRequest, code: CodeInvalidBody, msg: "body: want one JSON object and nothing after it"}
	}
	return f, nil
}

// truncate shortens s to at most n bytes at a rune boundary, for echoing input in messages.
func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n] + "…"
}

// str returns a string field; "" when absent or null. A value of another type is an error.
func (f fields) str(name string) (string, error) {
	raw, ok := f[name]
	if !ok || string(raw) == "null" {
		return "", nil
	}
	// A string without escapes is its bytes between the quotes (parseFields checked it is
	// valid JSON and UTF-8): the common case, without json.Unmarshal's allocations.
	if n := len(raw); n >= 2 && raw[0] == '"' && bytes.IndexByte(raw[1:n-1], '\\') < 0 {
		return string(raw[1 : n-1]), nil
	}
	var s string
	if err := json.Unmarshal(raw, &s); err != nil {
		return "", invalid("%s: must be a string", name)
	}
	return s, nil
}

// userID validates UserId: required, 1–64 of [A-Za-z0-9_.@:-].
func (f fields) userID() (string, error) {
	s, err := f.str("UserId")
	if err != nil {
		return "", err
	}
	if s == "" {
		return "", invalid("UserId: required, 1–%d characters of [A-Za-z0-9_.@:-]", MaxUserID)
	}
	if len(s) > MaxUserID {
		return "", invalid("UserId: at most %d characters (got %d)", MaxUserID, utf8.RuneCountInString(s))
	}
	for i := 0; i < len(s); i++ {
		if !userIDChar(s[i]) {
			return "", invalid("UserId: only the characters [A-Za-z0-9_.@:-] are allowed")
		}
	}
	return s, nil
}

func userIDChar(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' ||
		c == '_' || c == '.' || c == '@' || c == ':' || c == '-'
}

// clientSession validates ClientSession: 1–8192 characters, no control characters.
func (f fields) clientSession(required bool) (string, error) {
	s, err := f.str("ClientSession")
	if err != nil {
		return "", err
	}
	if s == "" {
		if required {
			return "", invalid("ClientSession: required, 1–%d characters (from TCGSDK.getClientSession())", MaxClientSession)
		}
		return "", nil
	}
	if n := utf8.RuneCountInString(s); n > MaxClientSession {
		return "", invalid("ClientSession: at most %d characters (got %d)", MaxClientSession, n)
	}
	for _, c := range s {
		if c < 0x20 || c == 0x7f {
			return "", invalid("ClientSession: control characters are not allowed")
		}
	}
	return s, nil
}

// ticket returns the Ticket field; missing or not a string is a 401 (the contract's rule for
// tickets), as is one too long to be ours.
func (f fields) ticket() (string, error) {
	s, err := f.str("Ticket")
	if err != nil {
		return "", badTicket("Ticket: must be the string /start returned")
	}
	if s == "" {
		return "", badTicket("Ticket: required (the one /start returned)")
	}
	if len(s) > MaxTicket {
		return "", badTicket("Ticket: invalid")
	}
	return s, nil
}

// optionalID validates ProjectId, ApplicationId, ApplicationVersionId: optional, and, because
// one queue serves one CAR project and application, equal to the configured value when given.
func (f fields) optionalID(name, configured string) error {
	s, err := f.str(name)
	if err != nil || s == "" {
		return err
	}
	if len(s) > MaxID {
		return invalid("%s: at most %d characters (got %d)", name, MaxID, utf8.RuneCountInString(s))
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; !userIDChar(c) || c == '@' {
			return invalid("%s: only the characters [A-Za-z0-9_.:-] are allowed", name)
		}
	}
	if configured == "" {
		return invalid("%s: this queue serves the configured default only; omit %s", name, name)
	}
	if s != configured {
		return invalid("%s: this queue serves %s %q only; omit it or send that value", name, name, configured)
	}
	return nil
}

// requestID returns the caller's RequestId when it is a sane one (1–128 printable ASCII
// characters, no spaces), else "" and the caller's value is replaced by a generated id.
func (f fields) requestID() (string, error) {
	s, err := f.str("RequestId")
	if err != nil {
		return "", invalid("RequestId: must be a string")
	}
	if len(s) > MaxRequestID {
		return "", invalid("RequestId: at most %d characters", MaxRequestID)
	}
	for i := 0; i < len(s); i++ {
		if s[i] <= 0x20 || s[i] >= 0x7f {
			return "", invalid("RequestId: printable ASCII without spaces only")
		}
	}
	return s, nil
}

// boolean returns a boolean field; false when absent or null.
func (f fields) boolean(name string) (bool, error) {
	raw, ok := f[name]
	if !ok || string(raw) == "null" {
		return false, nil
	}
	var b bool
	if err := json.Unmarshal(raw, &b); err != nil {
		return false, invalid("%s: must be true or false", name)
	}
	return b, nil
}

// integer returns a whole-number field within [lo, hi]; ok is false when absent or null.
func (f fields) integer(name string, lo, hi int64) (n int64, ok bool, err error) {
	raw, present := f[name]
	if !present || string(raw) == "null" {
		return 0, false, nil
	}
	if err := json.Unmarshal(raw, &n); err != nil || n < lo || n > hi {
		return 0, false, invalid("%s: must be an integer %d–%d", name, lo, hi)
	}
	return n, true, nil
}
