package datachannel

import (
	"bytes"
	"fmt"
	"sync/atomic"
	"time"
)

// Reassembly defaults and bounds.
const (
	DefaultMaxMessageSize = 1 << 20
	DefaultMaxPartial     = 16
	DefaultTimeout        = 10 * time.Second

	maxMessageSizeLimit  = 1 << 30
	maxPartialLimit      = 1024
	maxPendingBytesLimit = 1 << 31
	maxTimeoutLimit      = 10 * time.Minute
	deadIDs              = 256 // ids of dropped messages remembered, each for Timeout
)

// Limits bound one peer's reassembly. A zero field takes its default.
type Limits struct {
	MaxMessageSize  int           // largest message accepted (its header's total); default 1 MiB
	MaxPartial      int           // messages being reassembled at once; default 16
	MaxPendingBytes int           // bytes they reserve together; default 4 × MaxMessageSize
	Timeout         time.Duration // from a message's first fragment to its last; default 10 s
}

func (l Limits) resolve() (Limits, error) {
	if l.MaxMessageSize == 0 {
		l.MaxMessageSize = DefaultMaxMessageSize
	}
	if l.MaxMessageSize < 1 || l.MaxMessageSize > maxMessageSizeLimit {
		return l, fmt.Errorf("datachannel: MaxMessageSize %d: must be 1–%d bytes", l.MaxMessageSize, maxMessageSizeLimit)
	}
	if l.MaxPartial == 0 {
		l.MaxPartial = DefaultMaxPartial
	}
	if l.MaxPartial < 1 || l.MaxPartial > maxPartialLimit {
		return l, fmt.Errorf("datachannel: MaxPartial %d: must be 1–%d messages", l.MaxPartial, maxPartialLimit)
	}
	if l.MaxPendingBytes == 0 {
		l.MaxPendingBytes = min(4*l.MaxMessageSize, maxPendingBytesLimit)
	}
	if l.MaxPendingBytes < l.MaxMessageSize || l.MaxPendingBytes > maxPendingBytesLimit {
		return l, fmt.Errorf("datachannel: MaxPendingBytes %d: must be %d (MaxMessageSize)–%d bytes", l.MaxPendingBytes, l.MaxMessageSize, maxPendingBytesLimit)
	}
	if l.Timeout == 0 {
		l.Timeout = DefaultTimeout
	}
	if l.Timeout < 0 || l.Timeout > maxTimeoutLimit {
		return l, fmt.Errorf("datachannel: ReassemblyTimeout %v: must be above 0 and at most %v", l.Timeout, maxTimeoutLimit)
	}
	return l, nil
}

// A Reassembler turns one peer's datagrams into messages (FRAMING.md), within its Limits. It is
// what the Server uses; a Go client of a data channel (a test, a relay) can use it too. Add,
// Reset and InFlight must not be called concurrently; Stats may be, at any time.
type Reassembler struct {
	protocol Protocol
	limits   Limits
	now      func() time.Time

	partials map[uint32]*partial
	pending  int      // bytes reserved by partials
	dead     []deadID // ids of dropped messages, oldest first
	c        counters
}

type partial struct {
	h       Header // the first fragment's (its Index is of no use)
	buf     []byte
	have    []uint64 // one bit per fragment received
	got     int
	started time.Time
}

type deadID struct {
	id    uint32
	until time.Time
}

type counters struct {
	datagrams, messages, handled, sent, sentDatagrams, peerChanges, stale  atomic.Uint64
	malformed, tooLarge, overflow, expired, abandoned, duplicates, dropped atomic.Uint64
	undelivered, panics                                                    atomic.Uint64
}

// Stats are counters since the start. The Reassembler fills Messages and the reassembly
// counters; the Server all of them.
type Stats struct {
	Datagrams     uint64 // datagrams read (Server)
	Messages      uint64 // complete messages: assembled (Reassembler), handed to the handler (Server)
	Sent          uint64 // messages sent, replies and Send (Server)
	SentDatagrams uint64 // datagrams they took (Server)
	PeerChanges   uint64 // times a new source address became the peer (Server)
	Stale         uint64 // datagrams from a superseded source address, dropped unanswered (Server)

	Malformed        uint64 // framed datagrams with a bad header, or disagreeing with their message's first fragment
	TooLarge         uint64 // messages announced over MaxMessageSize, dropped
	Overflow         uint64 // messages refused: MaxPartial messages or MaxPendingBytes bytes already in flight
	Expired          uint64 // messages not complete within the reassembly timeout, dropped
	Abandoned        uint64 // messages being reassembled when a new peer took over (or Reset), dropped
	Duplicates       uint64 // fragments received twice, ignored
	DroppedFragments uint64 // fragments discarded because their message was dropped or refused

	Undelivered uint64 // complete messages not handed to the handler because the server was closing (Server)
	Panics      uint64 // handler panics recovered (Server)
}

// NewReassembler returns a reassembler for a channel of the given protocol (the kind of its
// plain datagrams), within the limits (zero fields take defaults), timing out on now's clock
// (nil: time.Now).
func NewReassembler(p Protocol, l Limits, now func() time.Time) (*Reassembler, error) {
	if p != Text && p != Binary {
		return nil, fmt.Errorf("datachannel: protocol %v: must be Text or Binary", p)
	}
	l, err := l.resolve()
	if err != nil {
		return nil, err
	}
	if now == nil {
		now = time.Now
	}
	return &Reassembler{protocol: p, limits: l, now: now, partials: map[uint32]*partial{}}, nil
}

// Limits are the reassembler's limits, defaults filled in.
func (r *Reassembler) Limits() Limits { return r.limits }

// Add takes one datagram (it is not kept: the caller may reuse it) and returns the message it
// completes, if any: Data, Binary, ReceivedAt (now) and Fragments are set, From is left to the
// caller. Partial messages past the timeout are dropped first.
func (r *Reassembler) Add(datagram []byte) (*Message, bool) {
	now := r.now()
	r.expire(now)
	if !IsFramed(datagram) {
		r.c.messages.Add(1)
		return &Message{Data: bytes.Clone(datagram), Binary: r.protocol == Binary, ReceivedAt: now, Fragments: 1}, true
	}
	h, payload, err := ParseFrame(datagram)
	if err != nil {
		r.c.malformed.Add(1)
		return nil, false
	}
	if h.Count == 1 {
		if int64(h.Total) > int64(r.limits.MaxMessageSize) {
			r.c.tooLarge.Add(1)
			r.c.dropped.Add(1)
			return nil, false
		}
		r.c.messages.Add(1)
		return &Message{Data: bytes.Clone(payload), Binary: h.Binary, ReceivedAt: now, Fragments: 1}, true
	}
	p := r.partials[h.ID]
	if p == nil {
		switch {
		case r.isDead(h.ID, now):
			r.c.dropped.Add(1)
			return nil, false
		case int64(h.Total) > int64(r.limits.MaxMessageSize):
			r.drop(h.ID, now, &r.c.tooLarge)
			return nil, false
		case len(r.partials) >= r.limits.MaxPartial || r.pending+int(h.Total) > r.limits.MaxPendingBytes:
			r.drop(h.ID, now, &r.c.overflow)
			return nil, false
		}
		p = &partial{h: h, buf: make([]byte, h.Total), have: make([]uint64, (int(h.Count)+63)/64), started: now}
		r.partials[h.ID] = p
		r.pending += int(h.Total)
	} else if p.h.Binary != h.Binary || p.h.Total != h.Total || p.h.Count != h.Count {
		r.c.malformed.Add(1)
		return nil, false
	}
	word, bit := h.Index/64, uint64(1)<<(h.Index%64)
	if p.have[word]&bit != 0 {
		r.c.duplicates.Add(1)
		return nil, false
	}
	p.have[word] |= bit
	off, _ := h.Span()
	copy(p.buf[off:], payload)
	if p.got++; p.got < int(h.Count) {
		return nil, false
	}
	delete(r.partials, h.ID)
	r.pending -= int(h.Total)
	r.c.messages.Add(1)
	return &Message{Data: p.buf, Binary: h.Binary, ReceivedAt: now, Fragments: int(h.Count)}, true
}

// drop refuses a new message (its first fragment seen), counting it under reason.
func (r *Reassembler) drop(id uint32, now time.Time, reason *atomic.Uint64) {
	reason.Add(1)
	r.c.dropped.Add(1)
	r.markDead(id, now)
}

func (r *Reassembler) expire(now time.Time) {
	for id, p := range r.partials {
		if now.Sub(p.started) >= r.limits.Timeout {
			delete(r.partials, id)
			r.pending -= int(p.h.Total)
			r.c.expired.Add(1)
			r.markDead(id, now)
		}
	}
}

func (r *Reassembler) markDead(id uint32, now time.Time) {
	live := r.dead[:0]
	for _, d := range r.dead {
		if d.until.After(now) && d.id != id {
			live = append(live, d)
		}
	}
	if len(live) == deadIDs {
		live = append(live[:0], live[1:]...)
	}
	r.dead = append(live, deadID{id: id, until: now.Add(r.limits.Timeout)})
}

func (r *Reassembler) isDead(id uint32, now time.Time) bool {
	for _, d := range r.dead {
		if d.id == id && d.until.After(now) {
			return true
		}
	}
	return false
}

// Reset drops every message being reassembled (counted as Abandoned) and forgets the dropped
// ids: the peer changed.
func (r *Reassembler) Reset() {
	r.c.abandoned.Add(uint64(len(r.partials)))
	clear(r.partials)
	r.pending = 0
	r.dead = r.dead[:0]
}

// InFlight is how many messages are being reassembled and the bytes they reserve.
func (r *Reassembler) InFlight() (messages, bytes int) { return len(r.partials), r.pending }

// Stats returns the reassembly counters (and Messages).
func (r *Reassembler) Stats() Stats { return r.c.stats() }

func (c *counters) stats() Stats {
	return Stats{
		Datagrams:        c.datagrams.Load(),
		Messages:         c.messages.Load(),
		Sent:             c.sent.Load(),
		SentDatagrams:    c.sentDatagrams.Load(),
		PeerChanges:      c.peerChanges.Load(),
		Stale:            c.stale.Load(),
		Malformed:        c.malformed.Load(),
		TooLarge:         c.tooLarge.Load(),
		Overflow:         c.overflow.Load(),
		Expired:          c.expired.Load(),
		Abandoned:        c.abandoned.Load(),
		Duplicates:       c.duplicates.Load(),
		DroppedFragments: c.dropped.Load(),
		Undelivered:      c.undelivered.Load(),
		Panics:           c.panics.Load(),
	}
}
