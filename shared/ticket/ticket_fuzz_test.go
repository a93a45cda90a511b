package ticket

import (
	"strings"
	"testing"
	"time"
)

// FuzzTicketVerify: Verify accepts a ticket only for the queue and user it was issued to, and
// returns the join id it was issued for; any change to a genuine ticket, and any other input,
// is refused (decoding is strict: one spelling per value).
func FuzzTicketVerify(f *testing.F) {
	f.Add("q", "alice", uint64(1), "v2.AAAAAAAAAAEAAAAAAAAAAA", "q", "alice", 0, byte(0))
	f.Add("default", "u-1", uint64(1<<63), "", "default", "u-2", 5, byte(1))
	f.Add("a", "bc", uint64(7), "v2.", "ab", "c", 60, byte('A'))
	s, _ := New("fuzz-secret-current", "fuzz-secret-previous")
	old, _ := New("fuzz-secret-previous", "")
	other, _ := New("another-secret", "")
	f.Fuzz(func(t *testing.T, queue, user string, join uint64, raw, queue2, user2 string, pos int, b byte) {
		if _, ok := s.Verify(queue, user, raw); ok {
			t.Fatalf("accepted a ticket not issued: %q", raw)
		}
		for _, issuer := range []*Signer{s, old} {
			tk, err := issuer.Issue(queue, user, uintStr(join))
			if err != nil {
				t.Fatal(err)
			}
			got, ok := s.Verify(queue, user, tk)
			if !ok || got != uintStr(join) {
				t.Fatalf("round trip: got %q %v, want %d", got, ok, join)
			}
			if _, ok := s.Verify(queue2, user2, tk); ok && (queue2 != queue || user2 != user) {
				t.Fatalf("ticket for (%q,%q) accepted for (%q,%q)", queue, user, queue2, user2)
			}
			if _, ok := other.Verify(queue, user, tk); ok {
				t.Fatal("accepted under an unrelated secret")
			}
			// One changed byte, or a changed length, is never accepted.
			if len(tk) > 0 {
				i := ((pos % len(tk)) + len(tk)) % len(tk)
				if tk[i] != b {
					mut := tk[:i] + string([]byte{b}) + tk[i+1:]
					if _, ok := s.Verify(queue, user, mut); ok {
						t.Fatalf("accepted %q changed at %d from %q", mut, i, tk)
					}
				}
				for _, mut := range []string{tk + string([]byte{b}), tk[:len(tk)-1], strings.ToUpper(tk), " " + tk} {
					if mut == tk {
						continue
					}
					if _, ok := s.Verify(queue, user, mut); ok {
						t.Fatalf("accepted %q (from %q)", mut, tk)
					}
				}
			}
		}
	})
}

func uintStr(n uint64) string {
	var b [20]byte
	i := len(b)
	for {
		i--
		b[i] = byte('0' + n%10)
		n /= 10
		if n == 0 {
			return string(b[i:])
		}
	}
}

// FuzzGrantVerify: Verify accepts exactly what Sign produced with the same secret for that
// user and not expired; any input never signed, any change of one byte, another user or another
// secret is refused, and an error never echoes the grant.
func FuzzGrantVerify(f *testing.F) {
	f.Add("alice", "", int64(2000000000), "", "alice", 0, byte('x'))
	f.Add("bob", "vip", int64(1), "eyJVc2VySWQiOiJib2IifQ.AAAA", "bob", 3, byte('.'))
	f.Add("u\u2028\"x", "lane\x00", int64(-1), "..", "u", 100, byte('='))
	const secret = "fuzz-grant-secret"
	v := NewGrants(secret)
	now := time.Unix(1_700_000_000, 0)
	f.Fuzz(func(t *testing.T, user, lane string, exp int64, raw, user2 string, pos int, b byte) {
		if g, err := v.Verify(raw, user, now); err == nil {
			t.Fatalf("accepted a grant not signed: %q -> %+v", raw, g)
		} else if len(raw) > 8 && strings.Contains(err.Error(), raw) {
			t.Fatalf("error echoes the grant: %v", err)
		}
		g := Grant{UserID: user, Lane: lane, Exp: time.Unix(exp, 0)}
		tk := Sign(secret, g)
		got, err := v.Verify(tk, user, now)
		// A UserId that is not valid UTF-8 cannot be signed as JSON (it becomes U+FFFD), so
		// such a grant is for another user and must be refused.
		fits := len(tk) <= MaxGrant && now.Before(time.Unix(exp, 0)) && validUTF8(user)
		if fits != (err == nil) {
			t.Fatalf("grant %+v (%d chars): err %v", g, len(tk), err)
		}
		if err == nil {
			// JSON round trip replaces invalid UTF-8; what Verify returns is what was signed then.
			if got.Exp.Unix() != exp || got.UserID != user || (validUTF8(lane) && got.Lane != lane) {
				t.Fatalf("round trip: got %+v, want %+v", got, g)
			}
		}
		if _, err := v.Verify(tk, user2, now); err == nil && user2 != user {
			t.Fatalf("grant for %q accepted for %q", user, user2)
		}
		if _, err := NewGrants(secret+"x").Verify(tk, user, now); err == nil {
			t.Fatal("accepted under another secret")
		}
		if len(tk) > 0 {
			i := ((pos % len(tk)) + len(tk)) % len(tk)
			if tk[i] != b {
				mut := tk[:i] + string([]byte{b}) + tk[i+1:]
				if _, err := v.Verify(mut, user, now); err == nil {
					t.Fatalf("accepted %q changed at %d from %q", mut, i, tk)
				}
			}
		}
	})
}

func validUTF8(s string) bool { return strings.ToValidUTF8(s, "\uFFFD") == s }
