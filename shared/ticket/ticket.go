// Package ticket issues and verifies the opaque tickets that prove a caller owns a UserId in
// one queue. A ticket is an HMAC-SHA256 of (queue id, UserId) under a server secret, so any
// function instance can verify it without a Redis round trip. A previous secret stays valid
// while the secret is rotated.
package ticket

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"strings"
)

// prefix versions the format so a future layout can be told apart.
const prefix = "v1."

// macLen is the length of an encoded v1 ticket after the prefix (32 bytes, base64url, unpadded).
var macLen = base64.RawURLEncoding.EncodedLen(sha256.Size)

// Signer issues tickets with the current secret and accepts the current or previous one.
type Signer struct {
	current, previous []byte
}

// New returns a Signer. previous is the secret being rotated out ("" for none).
func New(current, previous string) (*Signer, error) {
	if current == "" {
		return nil, errors.New("ticket: empty secret")
	}
	s := &Signer{current: []byte(current)}
	if previous != "" {
		s.previous = []byte(previous)
	}
	return s, nil
}

// Issue returns the ticket of userID in queueID: the same inputs always give the same ticket,
// so a client that calls /start again gets back the ticket it already holds.
func (s *Signer) Issue(queueID, userID string) string {
	return prefix + base64.RawURLEncoding.EncodeToString(mac(s.current, queueID, userID))
}

// Verify reports whether ticket was issued for userID in queueID under the current or the
// previous secret. Comparisons are constant-time.
func (s *Signer) Verify(queueID, userID, ticket string) bool {
	rest, ok := strings.CutPrefix(ticket, prefix)
	if !ok || len(rest) != macLen {
		return false
	}
	got, err := base64.RawURLEncoding.DecodeString(rest)
	if err != nil {
		return false
	}
	okCurrent := hmac.Equal(got, mac(s.current, queueID, userID))
	okPrevious := s.previous != nil && hmac.Equal(got, mac(s.previous, queueID, userID))
	return okCurrent || okPrevious
}

// mac binds both ids with a length prefix each, so ("ab","c") and ("a","bc") differ.
func mac(secret []byte, queueID, userID string) []byte {
	h := hmac.New(sha256.New, secret)
	h.Write([]byte("carqueue-ticket-v1"))
	for _, s := range []string{queueID, userID} {
		n := len(s)
		h.Write([]byte{byte(n >> 24), byte(n >> 16), byte(n >> 8), byte(n)})
		h.Write([]byte(s))
	}
	return h.Sum(nil)
}
