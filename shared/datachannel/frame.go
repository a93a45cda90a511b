package datachannel

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"sync"
	"sync/atomic"
)

// The framing's constants (FRAMING.md).
const (
	Magic0     byte = 0xFF // first byte of every framed datagram
	Magic1     byte = 0xDC // second byte of every framed datagram
	Version    byte = 1    // the framing version this package speaks
	HeaderSize      = 16   // bytes of a framed datagram's header
	FlagBinary byte = 0x01 // flags bit: the message is binary (clear: UTF-8 text)

	// DefaultMaxPayload is the default payload limit P: the most bytes of a message one datagram
	// carries, so that a framed datagram is at most 1,216 bytes, under CAR's ~1,400.
	DefaultMaxPayload = 1200
	// MaxPayloadLimit is the largest payload limit accepted: a UDP datagram over IPv4 carries
	// at most 65,507 bytes, the header included.
	MaxPayloadLimit = 65507 - HeaderSize
	// MaxFragments is the most fragments one message can have.
	MaxFragments = math.MaxUint16
)

// Protocol is the kind of the channel, as the page declared it to createCustomDataChannel: the
// kind of every plain datagram.
type Protocol uint8

const (
	Text   Protocol = iota // protocol 'text', TCGSDK's default
	Binary                 // protocol 'binary'
)

func (p Protocol) String() string {
	switch p {
	case Text:
		return "text"
	case Binary:
		return "binary"
	}
	return fmt.Sprintf("Protocol(%d)", uint8(p))
}

// ParseProtocol reads a protocol as TCGSDK spells it: "text" or "binary".
func ParseProtocol(s string) (Protocol, error) {
	switch s {
	case "text":
		return Text, nil
	case "binary":
		return Binary, nil
	}
	return 0, fmt.Errorf("datachannel: protocol %q: must be text or binary", s)
}

var (
	// ErrMalformed is wrapped by ParseFrame's errors.
	ErrMalformed = errors.New("datachannel: malformed framed datagram")
	// ErrTooLarge is returned for a message that cannot be sent: more than MaxFragments
	// fragments, or more than 2³²−1 bytes.
	ErrTooLarge = errors.New("datachannel: message too large")
)

// Header is a framed datagram's header, decoded.
type Header struct {
	ID     uint32 // the message's id
	Binary bool   // flags bit 0
	Total  uint32 // the whole message's length
	Index  uint16 // this fragment, 0-based
	Count  uint16 // the message's fragments
}

// FragmentSize is S = ceil(Total/Count): every fragment but the last carries exactly S bytes.
func (h Header) FragmentSize() int {
	if h.Count == 0 {
		return 0
	}
	return int((uint64(h.Total) + uint64(h.Count) - 1) / uint64(h.Count))
}

// Span is where this fragment's payload goes in the message: at offset off, n bytes. Only
// meaningful for a header that passed ParseFrame's checks.
func (h Header) Span() (off, n int) {
	s := h.FragmentSize()
	off = int(h.Index) * s
	return off, min(s, int(h.Total)-off)
}

func (h Header) check() error {
	switch {
	case h.Count == 0:
		return fmt.Errorf("%w: count 0", ErrMalformed)
	case h.Index >= h.Count:
		return fmt.Errorf("%w: index %d not below count %d", ErrMalformed, h.Index, h.Count)
	case h.Total == 0 && h.Count != 1:
		return fmt.Errorf("%w: an empty message in %d fragments", ErrMalformed, h.Count)
	case h.Total > 0 && uint64(h.Count-1)*uint64(h.FragmentSize()) >= uint64(h.Total):
		return fmt.Errorf("%w: %d fragments for %d bytes leave one empty", ErrMalformed, h.Count, h.Total)
	}
	return nil
}

// AppendHeader appends h's 16 bytes to b.
func AppendHeader(b []byte, h Header) []byte {
	var flags byte
	if h.Binary {
		flags |= FlagBinary
	}
	b = append(b, Magic0, Magic1, Version, flags)
	b = binary.BigEndian.AppendUint32(b, h.ID)
	b = binary.BigEndian.AppendUint32(b, h.Total)
	b = binary.BigEndian.AppendUint16(b, h.Index)
	return binary.BigEndian.AppendUint16(b, h.Count)
}

// IsFramed reports whether a datagram is framed: it starts with the magic 0xFF 0xDC.
func IsFramed(datagram []byte) bool {
	return len(datagram) >= 2 && datagram[0] == Magic0 && datagram[1] == Magic1
}

// ParseFrame decodes a framed datagram and checks it: the version, the fields, and that the
// payload is exactly the fragment's span. The payload aliases datagram.
func ParseFrame(datagram []byte) (Header, []byte, error) {
	if !IsFramed(datagram) {
		return Header{}, nil, fmt.Errorf("%w: no magic", ErrMalformed)
	}
	if len(datagram) < HeaderSize {
		return Header{}, nil, fmt.Errorf("%w: %d bytes, shorter than the %d-byte header", ErrMalformed, len(datagram), HeaderSize)
	}
	if v := datagram[2]; v != Version {
		return Header{}, nil, fmt.Errorf("%w: version %d, want %d", ErrMalformed, v, Version)
	}
	h := Header{
		Binary: datagram[3]&FlagBinary != 0,
		ID:     binary.BigEndian.Uint32(datagram[4:]),
		Total:  binary.BigEndian.Uint32(datagram[8:]),
		Index:  binary.BigEndian.Uint16(datagram[12:]),
		Count:  binary.BigEndian.Uint16(datagram[14:]),
	}
	if err := h.check(); err != nil {
		return Header{}, nil, err
	}
	payload := datagram[HeaderSize:]
	if _, n := h.Span(); len(payload) != n {
		return Header{}, nil, fmt.Errorf("%w: fragment %d/%d of %d bytes carries %d, want %d", ErrMalformed, h.Index, h.Count, h.Total, len(payload), n)
	}
	return h, payload, nil
}

// An Encoder turns messages into datagrams as FRAMING.md says: one plain datagram when the
// message fits MaxPayload, is of the channel's kind and does not start with the magic; framed
// fragments otherwise. Its ids are a counter starting at a random value. Safe for concurrent
// use; do not copy an Encoder after first use.
type Encoder struct {
	Protocol   Protocol // the channel's kind
	MaxPayload int      // P; 0 means DefaultMaxPayload

	once sync.Once
	next atomic.Uint32
}

// Encode returns the datagrams of one message of the given kind (binary or text). A plain
// datagram is data itself, not a copy.
func (e *Encoder) Encode(data []byte, binary bool) ([][]byte, error) {
	p := e.MaxPayload
	if p == 0 {
		p = DefaultMaxPayload
	}
	if p < 1 || p > MaxPayloadLimit {
		return nil, fmt.Errorf("datachannel: MaxPayload %d: must be 1–%d", p, MaxPayloadLimit)
	}
	if len(data) <= p && binary == (e.Protocol == Binary) && !IsFramed(data) {
		return [][]byte{data}, nil
	}
	count := max(1, (len(data)+p-1)/p)
	if uint64(len(data)) > math.MaxUint32 || count > MaxFragments {
		return nil, fmt.Errorf("%w: %d bytes would need %d fragments of at most %d bytes; the limit is %d", ErrTooLarge, len(data), count, p, MaxFragments)
	}
	h := Header{ID: e.nextID(), Binary: binary, Total: uint32(len(data)), Count: uint16(count)}
	out := make([][]byte, count)
	for i := range out {
		h.Index = uint16(i)
		off, n := h.Span()
		d := AppendHeader(make([]byte, 0, HeaderSize+n), h)
		out[i] = append(d, data[off:off+n]...)
	}
	return out, nil
}

func (e *Encoder) nextID() uint32 {
	e.once.Do(func() { e.next.Store(rand.Uint32()) })
	return e.next.Add(1)
}
