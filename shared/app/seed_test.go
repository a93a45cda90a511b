package app

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"testing"
	"time"
)

// TestShuffleSeed: every instance derives the same seed from TICKET_SECRET, the queue and the
// opening (whatever zone OPENS_AT was written in), and it changes with each of them.
func TestShuffleSeed(t *testing.T) {
	at := time.Date(2026, 12, 24, 20, 0, 0, 0, time.FixedZone("CST", 8*3600))
	m := hmac.New(sha256.New, []byte("0123456789abcdef0123"))
	m.Write([]byte("shuffle|q1|2026-12-24T12:00:00Z"))
	want := hex.EncodeToString(m.Sum(nil)[:16])

	got := ShuffleSeed("0123456789abcdef0123", "q1", at)
	if got != want || len(got) != 32 {
		t.Fatalf("seed %q, want %q (32 hex digits)", got, want)
	}
	if ShuffleSeed("0123456789abcdef0123", "q1", at.UTC()) != got {
		t.Fatal("the same instant written in another zone gave another seed")
	}
	for name, other := range map[string]string{
		"secret":  ShuffleSeed("another-secret-012345", "q1", at),
		"queue":   ShuffleSeed("0123456789abcdef0123", "q2", at),
		"opening": ShuffleSeed("0123456789abcdef0123", "q1", at.Add(time.Minute)),
	} {
		if other == got {
			t.Errorf("another %s gave the same seed", name)
		}
	}
}
