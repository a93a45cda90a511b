package datachannel

import (
	"bytes"
	"testing"
	"time"
)

// FuzzParseFrame: ParseFrame never panics; what it accepts re-encodes to the same bytes (one
// spelling per frame, reserved flag bits aside), and its payload is exactly the fragment's span.
func FuzzParseFrame(f *testing.F) {
	f.Add([]byte{})
	f.Add([]byte{Magic0, Magic1})
	f.Add(AppendHeader(nil, Header{ID: 1, Total: 3, Index: 0, Count: 1}))
	f.Add(append(AppendHeader(nil, Header{Binary: true, ID: 9, Total: 3, Index: 0, Count: 1}), 'a', 'b', 'c'))
	f.Fuzz(func(t *testing.T, d []byte) {
		h, payload, err := ParseFrame(d)
		if err != nil {
			return
		}
		if _, n := h.Span(); len(payload) != n {
			t.Fatalf("payload %d bytes, span %d", len(payload), n)
		}
		// Reserved flag bits are ignored on receipt (FRAMING.md); every other byte has one spelling.
		want := bytes.Clone(d)
		want[3] &= FlagBinary
		again := append(AppendHeader(nil, h), payload...)
		if !bytes.Equal(again, want) {
			t.Fatalf("accepted %x, re-encodes as %x", d, again)
		}
	})
}

// FuzzReassemblerStream: a stream of arbitrary datagrams (cut from the input) never panics the
// Reassembler, never yields a message above MaxMessageSize, and never keeps more in flight
// than its limits; a message an Encoder made comes back whole (on a fresh Reassembler: junk
// may legitimately share its random id).
func FuzzReassemblerStream(f *testing.F) {
	f.Add([]byte("hello"), []byte{}, uint8(4))
	f.Add(bytes.Repeat([]byte("x"), 300), []byte{Magic0, Magic1, Version, 0, 0, 0, 0, 1}, uint8(7))
	f.Add([]byte{Magic0, Magic1, 'z'}, append(AppendHeader(nil, Header{ID: 5, Total: 100, Index: 0, Count: 4}), bytes.Repeat([]byte{1}, 25)...), uint8(40))
	f.Fuzz(func(t *testing.T, msg, junk []byte, cut uint8) {
		now := time.Unix(0, 0)
		clock := func() time.Time { return now }
		r, err := NewReassembler(Binary, Limits{MaxMessageSize: 4096, MaxPartial: 4}, clock)
		if err != nil {
			t.Fatal(err)
		}
		lim := r.Limits()
		check := func() {
			m, n := r.InFlight()
			if m > lim.MaxPartial || n > lim.MaxPendingBytes {
				t.Fatalf("in flight %d messages, %d bytes over %+v", m, n, lim)
			}
		}
		step := int(cut) + 1
		for i := 0; i < len(junk); i += step {
			if out, ok := r.Add(junk[i:min(i+step, len(junk))]); ok && out != nil && len(out.Data) > lim.MaxMessageSize {
				t.Fatalf("message of %d bytes above the limit", len(out.Data))
			}
			check()
			now = now.Add(time.Millisecond)
		}
		if len(msg) > lim.MaxMessageSize {
			return
		}
		r, _ = NewReassembler(Binary, lim, clock)
		enc := &Encoder{Protocol: Binary, MaxPayload: 64}
		dgs, err := enc.Encode(msg, true)
		if err != nil {
			t.Fatal(err)
		}
		var got *Message
		for _, d := range dgs {
			if out, ok := r.Add(d); ok && out != nil {
				got = out
			}
			check()
		}
		if got == nil || !bytes.Equal(got.Data, msg) {
			t.Fatalf("message of %d bytes not reassembled: %v", len(msg), got)
		}
	})
}
