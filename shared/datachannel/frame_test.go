package datachannel

import (
	"bytes"
	"encoding/hex"
	"errors"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/carqueue/carqueue/shared/testkit"
)

func unhex(t *testing.T, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(strings.ReplaceAll(s, " ", ""))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestFramingExample pins FRAMING.md's examples byte for byte.
func TestFramingExample(t *testing.T) {
	msg := make([]byte, 2500)
	for i := range msg {
		msg[i] = byte(i)
	}
	e := &Encoder{Protocol: Binary}
	e.once.Do(func() {}) // ids from 41, so this message is 42
	e.next.Store(41)
	dgs, err := e.Encode(msg, true)
	if err != nil {
		t.Fatal(err)
	}
	want := []struct {
		header   string
		off, len int
	}{
		{"ff dc 01 01 00 00 00 2a 00 00 09 c4 00 00 00 03", 0, 834},
		{"ff dc 01 01 00 00 00 2a 00 00 09 c4 00 01 00 03", 834, 834},
		{"ff dc 01 01 00 00 00 2a 00 00 09 c4 00 02 00 03", 1668, 832},
	}
	if len(dgs) != len(want) {
		t.Fatalf("%d datagrams, want %d", len(dgs), len(want))
	}
	for i, w := range want {
		if got := dgs[i][:HeaderSize]; !bytes.Equal(got, unhex(t, w.header)) {
			t.Errorf("fragment %d header % x, want %s", i, got, w.header)
		}
		if got := dgs[i][HeaderSize:]; !bytes.Equal(got, msg[w.off:w.off+w.len]) {
			t.Errorf("fragment %d payload: %d bytes, want bytes [%d, %d)", i, len(got), w.off, w.off+w.len)
		}
	}

	e.next.Store(6)
	dgs, err = e.Encode([]byte("hi"), false) // text on a binary channel: framed, one fragment
	if err != nil {
		t.Fatal(err)
	}
	if want := unhex(t, "ff dc 01 00 00 00 00 07 00 00 00 02 00 00 00 01 68 69"); len(dgs) != 1 || !bytes.Equal(dgs[0], want) {
		t.Errorf("text %q on a binary channel: % x, want % x", "hi", dgs, want)
	}
}

// TestEncodeRules: plain exactly when the message fits, is of the channel's kind and does not
// start with the magic.
func TestEncodeRules(t *testing.T) {
	const p = 10
	magic := []byte{Magic0, Magic1, 'x'}
	cases := []struct {
		name    string
		channel Protocol
		data    []byte
		binary  bool
		plain   bool
		frags   int
	}{
		{"text fits", Text, []byte("0123456789"), false, true, 1},
		{"text one over", Text, []byte("0123456789a"), false, false, 2},
		{"empty text", Text, nil, false, true, 1},
		{"binary on text channel", Text, []byte{1, 2}, true, false, 1},
		{"empty binary on text channel", Text, nil, true, false, 1},
		{"text on binary channel", Binary, []byte("hi"), false, false, 1},
		{"binary fits", Binary, []byte{1, 2, 3}, true, true, 1},
		{"binary starting with the magic", Binary, magic, true, false, 1},
		{"a lone 0xFF is plain", Binary, []byte{Magic0}, true, true, 1},
		{"binary 3.5 payloads", Binary, make([]byte, 35), true, false, 4},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			e := &Encoder{Protocol: c.channel, MaxPayload: p}
			dgs, err := e.Encode(c.data, c.binary)
			if err != nil {
				t.Fatal(err)
			}
			if len(dgs) != c.frags {
				t.Fatalf("%d datagrams, want %d", len(dgs), c.frags)
			}
			if plain := !IsFramed(dgs[0]); plain != c.plain {
				t.Fatalf("plain = %v, want %v (% x)", plain, c.plain, dgs[0])
			}
			ra, _ := NewReassembler(c.channel, Limits{}, nil)
			var got *Message
			for _, d := range dgs {
				if len(d) > HeaderSize+p {
					t.Errorf("datagram of %d bytes, over %d", len(d), HeaderSize+p)
				}
				if m, ok := ra.Add(d); ok {
					got = m
				}
			}
			if got == nil || !bytes.Equal(got.Data, c.data) || got.Binary != c.binary || got.Fragments != c.frags {
				t.Fatalf("reassembled %+v, want %q binary=%v in %d", got, c.data, c.binary, c.frags)
			}
		})
	}
}

// TestEncodeSizes round-trips messages of many sizes, fragments shuffled, for several P.
func TestEncodeSizes(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for _, p := range []int{1, 7, 1200, MaxPayloadLimit} {
		e := &Encoder{Protocol: Binary, MaxPayload: p}
		ra, _ := NewReassembler(Binary, Limits{MaxMessageSize: 1 << 20}, nil)
		for _, n := range []int{0, 1, p - 1, p, p + 1, 2*p - 1, 2 * p, 2*p + 1, 64 << 10} {
			if n < 0 || n/p > MaxFragments {
				continue
			}
			data := make([]byte, n)
			for i := range data {
				data[i] = byte(rng.Uint32())
			}
			dgs, err := e.Encode(data, true)
			if err != nil {
				t.Fatalf("P=%d n=%d: %v", p, n, err)
			}
			rng.Shuffle(len(dgs), func(i, j int) { dgs[i], dgs[j] = dgs[j], dgs[i] })
			var got []*Message
			for _, d := range dgs {
				if m, ok := ra.Add(d); ok {
					got = append(got, m)
				}
			}
			if len(got) != 1 || !bytes.Equal(got[0].Data, data) {
				t.Fatalf("P=%d n=%d: %d messages out of %d datagrams", p, n, len(got), len(dgs))
			}
		}
		if st := ra.Stats(); st.Malformed+st.Duplicates+st.DroppedFragments != 0 {
			t.Errorf("P=%d: %+v", p, st)
		}
	}
}

func TestEncodeTooLarge(t *testing.T) {
	e := &Encoder{Protocol: Binary, MaxPayload: 1}
	if _, err := e.Encode(make([]byte, MaxFragments+1), true); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("65,536 fragments: %v, want ErrTooLarge", err)
	}
	if _, err := e.Encode(make([]byte, MaxFragments), true); err != nil {
		t.Fatalf("65,535 fragments: %v", err)
	}
	if _, err := (&Encoder{MaxPayload: MaxPayloadLimit + 1}).Encode(nil, false); err == nil || !strings.Contains(err.Error(), "MaxPayload") {
		t.Fatalf("MaxPayload over the limit: %v", err)
	}
}

func TestParseFrameRejects(t *testing.T) {
	frame := func(h Header, payload int) []byte {
		return append(AppendHeader(nil, h), make([]byte, payload)...)
	}
	ok := Header{ID: 1, Total: 25, Index: 2, Count: 3} // S = 9: 9, 9, 7
	if _, p, err := ParseFrame(frame(ok, 7)); err != nil || len(p) != 7 {
		t.Fatalf("a good last fragment: %v", err)
	}
	badVersion := frame(ok, 7)
	badVersion[2] = 2
	reservedFlags := frame(ok, 7)
	reservedFlags[3] = 0xFE // reserved bits set: ignored, still text
	if h, _, err := ParseFrame(reservedFlags); err != nil || h.Binary {
		t.Errorf("reserved flag bits: %+v %v, want ignored", h, err)
	}
	cases := map[string][]byte{
		"short":               frame(ok, 7)[:HeaderSize-1],
		"version 2":           badVersion,
		"count 0":             frame(Header{Total: 5, Count: 0}, 5),
		"index = count":       frame(Header{Total: 25, Index: 3, Count: 3}, 7),
		"empty in 2":          frame(Header{Total: 0, Count: 2}, 0),
		"empty last fragment": frame(Header{Total: 9, Index: 3, Count: 4}, 0), // S = 3: 3, 3, 3, 0
		"more than total":     frame(Header{Total: 2, Index: 0, Count: 3}, 1),
		"payload too short":   frame(ok, 6),
		"payload too long":    frame(ok, 8),
		"middle fragment":     frame(Header{Total: 25, Index: 1, Count: 3}, 7),
	}
	for name, d := range cases {
		if _, _, err := ParseFrame(d); !errors.Is(err, ErrMalformed) {
			t.Errorf("%s: %v, want ErrMalformed", name, err)
		}
	}
}

func TestReassemblerOutOfOrderDuplicatesMismatch(t *testing.T) {
	ra, _ := NewReassembler(Text, Limits{}, nil)
	e := &Encoder{Protocol: Text, MaxPayload: 4}
	dgs, _ := e.Encode([]byte("hello, world"), false) // 3 fragments of 4
	if m, ok := ra.Add(dgs[2]); ok {
		t.Fatalf("complete after one fragment: %+v", m)
	}
	ra.Add(dgs[2]) // a duplicate
	// A fragment under the same id that disagrees (binary flag): malformed, the message goes on.
	odd := bytes.Clone(dgs[0])
	odd[3] = FlagBinary
	ra.Add(odd)
	ra.Add(dgs[0])
	m, ok := ra.Add(dgs[1])
	if !ok || m.Text() != "hello, world" || m.Binary || m.Fragments != 3 {
		t.Fatalf("got %+v %v", m, ok)
	}
	if n, b := ra.InFlight(); n != 0 || b != 0 {
		t.Errorf("in flight after completion: %d messages, %d bytes", n, b)
	}
	if st := ra.Stats(); st.Duplicates != 1 || st.Malformed != 1 || st.Messages != 1 {
		t.Errorf("stats %+v", st)
	}
}

// TestReassemblerBounds: messages over MaxPartial or MaxPendingBytes are refused, over
// MaxMessageSize dropped; later fragments of both are discarded; the bound holds throughout.
func TestReassemblerBounds(t *testing.T) {
	clock := testkit.NewClock()
	l := Limits{MaxMessageSize: 1000, MaxPartial: 2, MaxPendingBytes: 1500, Timeout: time.Second}
	ra, err := NewReassembler(Binary, l, clock.Now)
	if err != nil {
		t.Fatal(err)
	}
	e := &Encoder{Protocol: Binary, MaxPayload: 100}
	enc := func(n int) [][]byte {
		d, err := e.Encode(make([]byte, n), true)
		if err != nil {
			t.Fatal(err)
		}
		return d
	}
	a, b, c, big, d := enc(900), enc(150), enc(200), enc(1001), enc(700)
	ra.Add(a[0]) // 900 reserved
	ra.Add(b[0]) // 1050, two partials
	ra.Add(c[0]) // a third partial: over MaxPartial (its bytes would fit)
	ra.Add(big[0])
	if st := ra.Stats(); st.Overflow != 1 || st.TooLarge != 1 || st.DroppedFragments != 2 {
		t.Fatalf("after the refusals: %+v", st)
	}
	for _, f := range c[1:] {
		if _, ok := ra.Add(f); ok {
			t.Fatal("a refused message completed")
		}
	}
	for _, f := range b[1:] {
		if m, ok := ra.Add(f); ok && len(m.Data) != 150 {
			t.Fatalf("b: %d bytes", len(m.Data))
		}
	}
	if n, bytes := ra.InFlight(); n != 1 || bytes != 900 {
		t.Fatalf("in flight: %d, %d bytes; want a's 900", n, bytes)
	}
	ra.Add(d[0]) // one partial, but 900 + 700 > 1500
	if st := ra.Stats(); st.Overflow != 2 || st.DroppedFragments != 4 || st.Messages != 1 {
		t.Fatalf("after the bytes overflow: %+v", st)
	}
	// A refused id is remembered for Timeout only: the same id later is a new message.
	clock.Advance(time.Second)
	ra.Add(d[1]) // expires a first, then d[1] starts d afresh (d's id is no longer dead)
	if st := ra.Stats(); st.Expired != 1 {
		t.Fatalf("after the timeout: %+v", st)
	}
	var got *Message
	for _, f := range append([][]byte{d[0]}, d[2:]...) {
		if m, ok := ra.Add(f); ok {
			got = m
		}
	}
	if got == nil || len(got.Data) != 700 {
		t.Fatalf("d after its refusal was forgotten: %+v", got)
	}
}

func TestReassemblerExpiryAndReset(t *testing.T) {
	clock := testkit.NewClock()
	ra, _ := NewReassembler(Text, Limits{Timeout: 10 * time.Second}, clock.Now)
	e := &Encoder{Protocol: Text, MaxPayload: 2}
	slow, _ := e.Encode([]byte("abcdef"), false)
	ra.Add(slow[0])
	clock.Advance(9 * time.Second)
	ra.Add(slow[1])
	clock.Advance(time.Second) // 10 s since its first fragment
	if _, ok := ra.Add(slow[2]); ok {
		t.Fatal("completed after the timeout")
	}
	if st := ra.Stats(); st.Expired != 1 || st.DroppedFragments != 1 {
		t.Fatalf("%+v", st)
	}
	other, _ := e.Encode([]byte("xyz"), false)
	ra.Add(other[0])
	ra.Reset()
	if n, _ := ra.InFlight(); n != 0 || ra.Stats().Abandoned != 1 {
		t.Fatalf("after Reset: %d in flight, %+v", n, ra.Stats())
	}
}

func TestLimitsValidation(t *testing.T) {
	for _, c := range []struct {
		l    Limits
		want string
	}{
		{Limits{MaxMessageSize: -1}, "MaxMessageSize -1: must be 1–1073741824"},
		{Limits{MaxPartial: 1025}, "MaxPartial 1025: must be 1–1024"},
		{Limits{MaxMessageSize: 100, MaxPendingBytes: 99}, "MaxPendingBytes 99: must be 100 (MaxMessageSize)"},
		{Limits{Timeout: -time.Second}, "ReassemblyTimeout -1s"},
	} {
		if _, err := NewReassembler(Text, c.l, nil); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%+v: %v, want %q", c.l, err, c.want)
		}
	}
	ra, _ := NewReassembler(Text, Limits{MaxMessageSize: 10}, nil)
	if l := ra.Limits(); l.MaxPendingBytes != 40 || l.MaxPartial != DefaultMaxPartial || l.Timeout != DefaultTimeout {
		t.Errorf("defaults: %+v", l)
	}
}

// FuzzReassembler: whatever arrives, no panic, and the memory bound holds.
func FuzzReassembler(f *testing.F) {
	e := &Encoder{Protocol: Binary, MaxPayload: 8}
	dgs, _ := e.Encode([]byte("a message of a few fragments"), true)
	for _, d := range dgs {
		f.Add(d)
	}
	f.Add([]byte{Magic0, Magic1})
	f.Add([]byte("plain"))
	l := Limits{MaxMessageSize: 64, MaxPartial: 3, MaxPendingBytes: 100}
	ra, _ := NewReassembler(Binary, l, nil)
	f.Fuzz(func(t *testing.T, d []byte) {
		m, ok := ra.Add(d)
		if ok && IsFramed(d) && len(m.Data) > l.MaxMessageSize {
			t.Fatalf("a message of %d bytes, over %d", len(m.Data), l.MaxMessageSize)
		}
		if n, b := ra.InFlight(); n > l.MaxPartial || b > l.MaxPendingBytes {
			t.Fatalf("in flight %d messages, %d bytes: over the bounds", n, b)
		}
	})
}
