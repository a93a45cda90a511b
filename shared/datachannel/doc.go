// Package datachannel is the cloud application's side of the Tencent Cloud CAR data channel
// (数据通道), in the style of net/http.
//
// # The channel
//
// The cloud application listens on a UDP port of 127.0.0.1 (CAR suggests 10000–20000; this
// package accepts 1024–65535). The page calls TCGSDK.createCustomDataChannel({destPort,
// onMessage, protocol}) and sendMessage(data); each message reaches the application as one UDP
// datagram whose source address is CAR's local proxy port; the application's datagrams sent back
// to that address reach onMessage. The proxy port changes on every reconnect, so the application
// always answers the newest source address:
//
//	srv, err := datachannel.Listen("127.0.0.1:15000", datachannel.HandlerFunc(
//		func(w datachannel.ReplyWriter, m *datachannel.Message) {
//			w.WriteText("echo: " + m.Text())
//		}))
//	if err != nil { … }
//	go srv.Serve()
//	…
//	srv.Send([]byte(`{"tick":1}`)) // later, to whoever is the peer now
//	…
//	srv.Shutdown(ctx)
//
// # The peer
//
// The peer is the newest source address: the most recent address the server had not heard from
// before. Every reply ([ReplyWriter]) and every [Server.Send] goes to the peer at the moment it is
// sent — not necessarily the [Message.From] being answered, when the client reconnected
// meanwhile. A datagram from an address superseded less than [WithStaleWindow] ago (default one
// minute) is dropped unanswered and counted as [Stats.Stale]: that is CAR's old proxy port. A
// new peer also drops every message still being reassembled from the old one.
//
// One peer at a time: this is one page's channel, as CAR gives a cloud application one user.
//
// # Framing
//
// Messages that do not fit one datagram are split. The framing (version 1) is specified in
// FRAMING.md next to this file, for the browser helper that implements the page's side; in
// short:
//
// A datagram whose first two bytes are 0xFF 0xDC is framed; any other datagram is plain and is a
// whole message of the channel's kind: the protocol the page declared ("text", TCGSDK's default,
// or "binary"), which the application is told by [WithProtocol]. A framed datagram is a 16-byte
// header, big-endian, then a fragment's payload:
//
//	offset size field
//	0      2    magic 0xFF 0xDC
//	2      1    version 0x01
//	3      1    flags: bit 0 = binary (0: UTF-8 text); bits 1–7 reserved (send 0, ignore)
//	4      4    message id (uint32; a counter starting at a random value)
//	8      4    total: the whole message's length in bytes (uint32)
//	12     2    index of this fragment, 0-based (uint16)
//	14     2    count of fragments, ≥ 1 (uint16)
//	16     …    payload
//
// With S = ceil(total/count), fragment index carries the message's bytes [index×S,
// min((index+1)×S, total)), exactly, and no fragment is empty (except the empty message: total 0,
// count 1). A sender frames a message when it is longer than the payload limit P (default 1,200,
// [WithMaxPayload]), or of the other kind than the channel's, or starts with the magic itself;
// then count = max(1, ceil(total/P)). Small messages of the channel's kind go as plain datagrams,
// so a page that never splits still works. Framed datagrams are binary: a page reads and writes
// them on a channel opened with protocol 'binary' (a 'text' page keeps its messages within one
// datagram).
//
// # Bounded memory
//
// Reassembly keeps, for the current peer only, at most [WithMaxPartial] messages (default 16)
// and [WithMaxPendingBytes] bytes (default 4 × the largest message) in flight, each message
// reserving its announced total at its first fragment; a message larger than
// [WithMaxMessageSize] (default 1 MiB) is dropped, one that would go over the caps is refused,
// one not complete [WithReassemblyTimeout] after its first fragment (default 10 s, measured on
// the [WithClock] clock, checked whenever a datagram arrives) is dropped. Later fragments of a
// dropped message are discarded. Everything dropped is counted in [Stats].
//
// # Handlers
//
// Handlers are called one at a time, in the order their messages completed, on one goroutine of
// the server's: the reading goes on meanwhile (so the peer can change while a handler runs), and
// up to 64 complete messages wait. A handler that has long work to do hands it off and answers
// later with [Server.Send]. A panicking handler is logged and counted; the server goes on.
package datachannel
