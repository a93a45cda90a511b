package admission

import (
	"strings"
	"testing"

	"pgregory.net/rapid"
)

func TestPackUnpack(t *testing.T) {
	tests := []struct {
		ip, cs       string
		packed       string
		wantIP, want string
	}{
		{ip: "203.0.113.7", cs: "abc", packed: "v1|203.0.113.7|abc", wantIP: "203.0.113.7", want: "abc"},
		{ip: "2001:db8::1", cs: "a|b|c", packed: "v1|2001:db8::1|a|b|c", wantIP: "2001:db8::1", want: "a|b|c"},
		{ip: "", cs: "x", packed: "v1||x", wantIP: "", want: "x"},
		{ip: "1.2|3.4", cs: "v1|9.9.9.9|y", packed: "v1|1.23.4|v1|9.9.9.9|y", wantIP: "1.23.4", want: "v1|9.9.9.9|y"},
		{ip: "1.2.3.4", cs: "", packed: "", wantIP: "", want: ""},
		{ip: strings.Repeat("1", MaxIPLen+1), cs: "x", packed: "v1||x", wantIP: "", want: "x"},
	}
	for _, tt := range tests {
		got := Pack(tt.ip, tt.cs)
		if got != tt.packed {
			t.Errorf("Pack(%q,%q) = %q, want %q", tt.ip, tt.cs, got, tt.packed)
		}
		ip, cs := Unpack(got)
		if ip != tt.wantIP || cs != tt.want {
			t.Errorf("Unpack(%q) = %q,%q want %q,%q", got, ip, cs, tt.wantIP, tt.want)
		}
	}
}

func TestUnpackForeignValues(t *testing.T) {
	for _, s := range []string{"", "raw-session", "v1|no-second-bar", "v2|1.1.1.1|x", "V1|a|b"} {
		ip, cs := Unpack(s)
		if ip != "" || cs != s {
			t.Errorf("Unpack(%q) = %q,%q; want \"\",%q", s, ip, cs, s)
		}
	}
}

// Any bytes a client may send as ClientSession survive the round trip, and any IP without '|'.
func TestPackRoundTripProperty(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		ip := rapid.String().Draw(t, "ip")
		cs := rapid.StringN(1, 200, -1).Draw(t, "cs")
		gotIP, gotCS := Unpack(Pack(ip, cs))
		wantIP := strings.ReplaceAll(ip, "|", "")
		if len(wantIP) > MaxIPLen {
			wantIP = ""
		}
		if gotCS != cs || gotIP != wantIP {
			t.Fatalf("round trip of %q,%q gave %q,%q", ip, cs, gotIP, gotCS)
		}
	})
}
