// Package ticket issues and verifies the identity tokens of the contract: the tickets that
// prove a caller owns a UserId's current join in one queue, and the grants a business's own
// backend signs to vouch for a UserId (grant.go).
//
// A ticket names the join it was issued for (the queue's join id) and carries fresh random
// bytes, under an HMAC-SHA256 of (queue, UserId, join id, random) with the server secret: any
// function instance can reject a forged one without Redis, and the queue rejects a genuine one
// whose join has ended or was re-issued (queue.Proof). A previous secret stays valid while
// the secret is rotated. Every token decodes strictly: one spelling per value.
package ticket

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"hash"
	"strconv"
	"strings"
	"sync"
)

// prefix versions the format. v1 tickets (an HMAC of queue and UserId alone, valid for every
// join) are no longer accepted: they could not be revoked.
const prefix = "v2."

// A ticket's body: join id (8 bytes, big-endian), random (8), HMAC-SHA256 (32).
const (
	joinLen = 8
	randLen = 8
	bodyLen = joinLen + randLen + sha256.Size
)

// strict is unpadded base64url that refuses every spelling but the canonical one (trailing
// bits must be zero, no padding, no line breaks).
var strict = base64.RawURLEncoding.Strict()

var encodedLen = strict.EncodedLen(bodyLen)

// Signer issues tickets with the current secret and accepts the current or previous one.
type Signer struct {
	current, previous *keyed
}

// keyed is one secret with its HMACs recycled: hmac.New derives the padded key and two
// SHA-256 states every time, which was most of verifying a ticket on every poll; a used HMAC
// only needs Reset.
type keyed struct {
	pool sync.Pool // of *macState under this secret
}

// macState is an HMAC-SHA256 under one secret and the buffer its message is assembled in.
type macState struct {
	h   hash.Hash
	msg []byte
}

func newKeyed(secret string) *keyed {
	k := []byte(secret)
	return &keyed{pool: sync.Pool{New: func() any { return &macState{h: hmac.New(sha256.New, k)} }}}
}

// New returns a Signer. previous is the secret being rotated out ("" for none).
func New(current, previous string) (*Signer, error) {
	if current == "" {
		return nil, errors.New("ticket: empty secret")
	}
	s := &Signer{current: newKeyed(current)}
	if previous != "" {
		s.previous = newKeyed(previous)
	}
	return s, nil
}

// Issue returns a new ticket for userID's join joinID in queueID (the queue's decimal join
// id). Every call gives a different ticket; all of one join are valid while the join lasts.
func (s *Signer) Issue(queueID, userID, joinID string) (string, error) {
	n, err := strconv.ParseUint(joinID, 10, 64)
	if err != nil {
		return "", errors.New("ticket: join id must be a decimal number")
	}
	body := make([]byte, joinLen+randLen, bodyLen)
	binary.BigEndian.PutUint64(body, n)
	if _, err := rand.Read(body[joinLen:]); err != nil {
		return "", err
	}
	var sum [sha256.Size]byte
	body = append(body, s.current.mac(&sum, queueID, userID, body)...)
	return prefix + strict.EncodeToString(body), nil
}

// Verify returns the join id a ticket names when it was issued for userID in queueID under
// the current or the previous secret; ok is false for anything else. Comparisons are
// constant-time.
func (s *Signer) Verify(queueID, userID, ticket string) (joinID string, ok bool) {
	rest, found := strings.CutPrefix(ticket, prefix)
	if !found || len(rest) != encodedLen {
		return "", false
	}
	body, err := strict.DecodeString(rest)
	if err != nil || len(body) != bodyLen {
		return "", false
	}
	payload, got := body[:joinLen+randLen], body[joinLen+randLen:]
	var sum [sha256.Size]byte
	okCurrent := hmac.Equal(got, s.current.mac(&sum, queueID, userID, payload))
	okPrevious := s.previous != nil && hmac.Equal(got, s.previous.mac(&sum, queueID, userID, payload))
	if !okCurrent && !okPrevious {
		return "", false
	}
	return strconv.FormatUint(binary.BigEndian.Uint64(payload), 10), true
}

// mac binds both ids with a length prefix each, so ("ab","c") and ("a","bc") differ, and the
// payload (join id and random). The sum is written into sum and the message assembled in a
// recycled buffer: nothing here allocates once the pool is warm.
func (k *keyed) mac(sum *[sha256.Size]byte, queueID, userID string, payload []byte) []byte {
	m := k.pool.Get().(*macState)
	defer k.pool.Put(m)
	m.h.Reset()
	msg := append(m.msg[:0], "carqueue-ticket-v2"...)
	for _, s := range []string{queueID, userID} {
		n := len(s)
		msg = append(msg, byte(n>>24), byte(n>>16), byte(n>>8), byte(n))
		msg = append(msg, s...)
	}
	msg = append(msg, payload...)
	m.msg = msg
	m.h.Write(msg)
	return m.h.Sum(sum[:0])
}
