package ticket

import (
	"encoding/base64"
	"strings"
	"testing"
	"time"
)

func issue(t *testing.T, s *Signer, queue, user, join string) string {
	t.Helper()
	tk, err := s.Issue(queue, user, join)
	if err != nil {
		t.Fatal(err)
	}
	return tk
}

// respell gives another base64url spelling of the same bytes where one exists: the last
// character with different (non-zero) trailing bits. A strict decoder must refuse it.
func respell(tk string) string {
	b := []byte(tk)
	last := b[len(b)-1]
	i := strings.IndexByte("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_", last)
	b[len(b)-1] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"[i^1]
	return string(b)
}

func TestVerify(t *testing.T) {
	s, err := New("current-secret-0123456789", "")
	if err != nil {
		t.Fatal(err)
	}
	tk := issue(t, s, "q1", "alice", "42")
	if !strings.HasPrefix(tk, "v2.") || strings.ContainsAny(tk, "+/=") {
		t.Fatalf("ticket %q must be v2. + unpadded base64url", tk)
	}
	if again := issue(t, s, "q1", "alice", "42"); again == tk {
		t.Fatal("every ticket must be fresh (random bytes)")
	}
	other := issue(t, s, "q1", "bob", "42")
	forged := []byte(tk)
	mid := len(forged) / 2
	if forged[mid] == 'A' {
		forged[mid] = 'B'
	} else {
		forged[mid] = 'A'
	}
	cases := []struct {
		name        string
		queue, user string
		ticket      string
		want        bool
	}{
		{"own ticket", "q1", "alice", tk, true},
		{"another user's ticket", "q1", "alice", other, false},
		{"own ticket used for another user", "q1", "bob", tk, false},
		{"other queue", "q2", "alice", tk, false},
		{"forged byte", "q1", "alice", string(forged), false},
		{"another spelling of the last character", "q1", "alice", respell(tk), false},
		{"padded", "q1", "alice", tk + "=", false},
		{"standard alphabet", "q1", "alice", "v2." + base64.RawStdEncoding.EncodeToString(make([]byte, bodyLen)), false},
		{"line break", "q1", "alice", tk[:20] + "\n" + tk[20:], false},
		{"empty", "q1", "alice", "", false},
		{"v1", "q1", "alice", "v1." + strings.TrimPrefix(tk, "v2."), false},
		{"no prefix", "q1", "alice", strings.TrimPrefix(tk, "v2."), false},
		{"truncated", "q1", "alice", tk[:len(tk)-1], false},
		{"extended", "q1", "alice", tk + "A", false},
		{"not base64", "q1", "alice", "v2." + strings.Repeat("!", len(tk)-3), false},
		{"id boundary shift", "q1a", "lice", tk, false},
	}
	for _, tc := range cases {
		join, ok := s.Verify(tc.queue, tc.user, tc.ticket)
		if ok != tc.want || (ok && join != "42") {
			t.Errorf("%s: Verify = %q, %v; want ok %v (join 42)", tc.name, join, ok, tc.want)
		}
	}
	if _, err := s.Issue("q", "u", "not-a-number"); err == nil {
		t.Error("a join id that is not a number was accepted")
	}
}

func TestOtherSecretRejected(t *testing.T) {
	a, _ := New("secret-a-0123456789", "")
	b, _ := New("secret-b-0123456789", "")
	if _, ok := b.Verify("q", "u", issue(t, a, "q", "u", "1")); ok {
		t.Fatal("a ticket of another secret was accepted")
	}
}

func TestRotation(t *testing.T) {
	old, _ := New("old-secret-0123456789", "")
	oldTicket := issue(t, old, "q", "u", "7")
	rotating, _ := New("new-secret-0123456789", "old-secret-0123456789")
	if j, ok := rotating.Verify("q", "u", oldTicket); !ok || j != "7" {
		t.Fatal("a ticket of the previous secret must be accepted while rotating")
	}
	newTicket := issue(t, rotating, "q", "u", "7")
	if _, ok := rotating.Verify("q", "other", oldTicket); ok {
		t.Fatal("previous-secret ticket accepted for another user")
	}
	done, _ := New("new-secret-0123456789", "")
	if _, ok := done.Verify("q", "u", oldTicket); ok {
		t.Fatal("after rotation the old ticket must be rejected")
	}
	if _, ok := done.Verify("q", "u", newTicket); !ok {
		t.Fatal("after rotation the new ticket must still be accepted")
	}
}

func TestEmptySecret(t *testing.T) {
	if _, err := New("", ""); err == nil {
		t.Fatal("empty secret accepted")
	}
}

func TestGrants(t *testing.T) {
	const secret = "grant-secret-0123456789"
	now := time.Unix(1_800_000_000, 0)
	v := NewGrants(secret)
	good := Sign(secret, Grant{UserID: "alice", Lane: "vip", Exp: now.Add(time.Minute)})
	g, err := v.Verify(good, "alice", now)
	if err != nil || g.Lane != "vip" || g.UserID != "alice" {
		t.Fatalf("good grant: %+v %v", g, err)
	}
	sig := good[strings.IndexByte(good, '.')+1:]
	cases := []struct{ name, grant, user, why string }{
		{"expired", Sign(secret, Grant{UserID: "alice", Exp: now}), "alice", "expired"},
		{"foreign user", good, "bob", "another UserId"},
		{"other secret", Sign("other-secret-0123456789", Grant{UserID: "alice", Exp: now.Add(time.Minute)}), "alice", "signature"},
		{"respelled signature", good[:len(good)-len(sig)] + respell(sig), "alice", "base64url"},
		{"padded", good + "=", "alice", "base64url"},
		{"no dot", strings.Replace(good, ".", "", 1), "alice", "base64url(payload)"},
		{"two dots", good + ".x", "alice", "base64url(payload)"},
		{"not json", strict.EncodeToString([]byte("x")) + "." + sig, "alice", "signature"},
		{"too long", strings.Repeat("a", MaxGrant+1), "alice", "longer"},
	}
	for _, c := range cases {
		_, err := v.Verify(c.grant, c.user, now)
		if err == nil || !strings.Contains(err.Error(), c.why) {
			t.Errorf("%s: err %v, want one saying %q", c.name, err, c.why)
		}
	}
	if _, err := NewGrants("").Verify(good, "alice", now); err == nil {
		t.Error("a server without GRANT_SECRET accepted a grant")
	}
}
