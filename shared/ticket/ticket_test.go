package ticket

import (
	"strings"
	"testing"
)

func TestVerify(t *testing.T) {
	s, err := New("current-secret-0123456789", "")
	if err != nil {
		t.Fatal(err)
	}
	tk := s.Issue("q1", "alice")
	if !strings.HasPrefix(tk, "v1.") || strings.ContainsAny(tk, "+/=") {
		t.Fatalf("ticket %q must be v1. + unpadded base64url", tk)
	}
	if tk != s.Issue("q1", "alice") {
		t.Fatal("a ticket must be stable for the same queue and user")
	}
	other := s.Issue("q1", "bob")
	forged := []byte(tk)
	last := len(forged) - 2
	if forged[last] == 'A' {
		forged[last] = 'B'
	} else {
		forged[last] = 'A'
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
		{"empty", "q1", "alice", "", false},
		{"no prefix", "q1", "alice", strings.TrimPrefix(tk, "v1."), false},
		{"truncated", "q1", "alice", tk[:len(tk)-1], false},
		{"extended", "q1", "alice", tk + "A", false},
		{"not base64", "q1", "alice", "v1." + strings.Repeat("!", len(tk)-3), false},
		{"id boundary shift", "q1a", "lice", tk, false},
	}
	for _, tc := range cases {
		if got := s.Verify(tc.queue, tc.user, tc.ticket); got != tc.want {
			t.Errorf("%s: Verify = %v, want %v", tc.name, got, tc.want)
		}
	}
}

func TestOtherSecretRejected(t *testing.T) {
	a, _ := New("secret-a-0123456789", "")
	b, _ := New("secret-b-0123456789", "")
	if b.Verify("q", "u", a.Issue("q", "u")) {
		t.Fatal("a ticket of another secret was accepted")
	}
}

func TestRotation(t *testing.T) {
	old, _ := New("old-secret-0123456789", "")
	oldTicket := old.Issue("q", "u")
	rotating, _ := New("new-secret-0123456789", "old-secret-0123456789")
	if !rotating.Verify("q", "u", oldTicket) {
		t.Fatal("a ticket of the previous secret must be accepted while rotating")
	}
	newTicket := rotating.Issue("q", "u")
	if newTicket == oldTicket {
		t.Fatal("new tickets must be signed with the new secret")
	}
	if !rotating.Verify("q", "u", newTicket) {
		t.Fatal("new ticket rejected")
	}
	if rotating.Verify("q", "other", oldTicket) {
		t.Fatal("previous-secret ticket accepted for another user")
	}
	done, _ := New("new-secret-0123456789", "")
	if done.Verify("q", "u", oldTicket) {
		t.Fatal("after rotation the old ticket must be rejected")
	}
	if !done.Verify("q", "u", newTicket) {
		t.Fatal("after rotation the new ticket must still be accepted")
	}
}

func TestEmptySecret(t *testing.T) {
	if _, err := New("", ""); err == nil {
		t.Fatal("empty secret accepted")
	}
}
