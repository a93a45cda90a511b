package queue

import (
	"fmt"
	"strings"
	"unicode"
	"unicode/utf8"
)

// A user's Client is stored as one hash field value, "<ip>|<session>", not as two fields: a
// second field per queued user would cost a second dict entry (about 50 B at a million users),
// and the two always change together. The IP never contains '|' (checkClient refuses it), so
// the first '|' splits the value and the ClientSession after it is kept byte for byte, '|'
// and all. The scripts never look inside: they store and return the string.

// encodeClient is the value stored for c; "" (keep the stored one) when c carries no
// ClientSession, since a request without one must not erase what admission will need.
func encodeClient(c Client) string {
	if c.Session == "" {
		return ""
	}
	return c.IP + "|" + c.Session
}

// decodeClient reads a stored value back. A value without '|' (none is written so) reads as
// a ClientSession without IP rather than failing, so no stored value can block an admission.
func decodeClient(v string) Client {
	ip, session, ok := strings.Cut(v, "|")
	if !ok {
		return Client{Session: v}
	}
	return Client{IP: ip, Session: session}
}

// checkClient enforces the limits of Client's fields, naming the field the caller must fix.
func checkClient(c Client) error {
	if len(c.IP) > MaxIP {
		return fmt.Errorf("client IP has %d bytes, at most %d allowed: %w", len(c.IP), MaxIP, ErrInvalid)
	}
	if i := strings.IndexFunc(c.IP, func(r rune) bool { return r == '|' || unicode.IsControl(r) }); i >= 0 {
		r, _ := utf8.DecodeRuneInString(c.IP[i:])
		return fmt.Errorf("client IP %q has %q at byte %d; control characters and '|' are not allowed: %w", c.IP, r, i, ErrInvalid)
	}
	if n := utf8.RuneCountInString(c.Session); n > MaxClientSession {
		return fmt.Errorf("ClientSession has %d chars, at most %d allowed: %w", n, MaxClientSession, ErrInvalid)
	}
	return nil
}
