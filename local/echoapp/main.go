// Command echoapp is an example cloud application for the CAR data channel, built on
// shared/datachannel: it listens on 127.0.0.1:<port>, echoes every message (text with the prefix
// "echo: ", binary as is), and pushes a tick, {"tick":N,"time":"…"}, to the current peer every
// -tick so that messages the application starts show too. It logs one line per message.
//
//	go run ./local/echoapp -port 15000
//
// With the local harness (go run ./local), the demo page opens a channel to it through the
// TCGSDK stand-in; against the real CAR, it is what a cloud application's side looks like.
// SIGINT or SIGTERM stops it gracefully.
package main

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"os/signal"
	"strconv"
	"syscall"
	"time"

	"github.com/carqueue/carqueue/shared/datachannel"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stderr, nil); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			os.Exit(2)
		}
		fmt.Fprintln(os.Stderr, "echoapp:", err)
		os.Exit(1)
	}
}

// run is the whole program: it serves until ctx ends, then shuts down gracefully. ready, when
// not nil, is told the address once the socket is open.
func run(ctx context.Context, args []string, logw io.Writer, ready func(netip.AddrPort)) error {
	fs := flag.NewFlagSet("echoapp", flag.ContinueOnError)
	fs.SetOutput(logw)
	port := fs.Int("port", 15000, "UDP `port` on 127.0.0.1: 1024–65535 (CAR suggests 10000–20000; 0 picks a free one)")
	tick := fs.Duration("tick", 3*time.Second, "push a tick to the current peer this often (0: never)")
	proto := fs.String("protocol", "text", "the channel's protocol, as the page opens it: text or binary")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments: %q", fs.Args())
	}
	if *tick < 0 {
		return fmt.Errorf("-tick %v: must be 0 or more", *tick)
	}
	protocol, err := datachannel.ParseProtocol(*proto)
	if err != nil {
		return fmt.Errorf("-protocol: %w", err)
	}
	log := slog.New(slog.NewTextHandler(logw, nil))

	srv, err := datachannel.Listen(net.JoinHostPort("127.0.0.1", strconv.Itoa(*port)), datachannel.HandlerFunc(
		func(w datachannel.ReplyWriter, m *datachannel.Message) {
			logMessage(log, m)
			var err error
			if m.Binary {
				err = w.WriteBinary(m.Data)
			} else {
				err = w.WriteText("echo: " + m.Text())
			}
			if err != nil {
				log.Warn("echo failed", "to", w.Peer(), "err", err)
			}
		}), datachannel.WithProtocol(protocol), datachannel.WithLogger(log))
	if err != nil {
		return err
	}
	log.Info("echoapp listening", "addr", srv.Addr(), "protocol", protocol, "tick", *tick)
	if ready != nil {
		ready(srv.Addr())
	}
	served := make(chan error, 1)
	go func() { served <- srv.Serve() }()

	var ticks <-chan time.Time
	if *tick > 0 {
		t := time.NewTicker(*tick)
		defer t.Stop()
		ticks = t.C
	}
	n := 0
	for {
		select {
		case err := <-served:
			_ = srv.Close()
			return err
		case now := <-ticks:
			n = sendTick(log, srv, n, now)
		case <-ctx.Done():
			sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			err := srv.Shutdown(sctx)
			<-served
			st := srv.Stats()
			log.Info("echoapp stopped", "messages", st.Messages, "sent", st.Sent, "peer_changes", st.PeerChanges,
				"stale", st.Stale, "dropped", st.DroppedFragments, "malformed", st.Malformed)
			return err
		}
	}
}

// sendTick pushes tick n+1 to the current peer, if there is one yet; it returns the ticks sent.
func sendTick(log *slog.Logger, srv *datachannel.Server, n int, now time.Time) int {
	msg, _ := json.Marshal(struct {
		Tick int    `json:"tick"`
		Time string `json:"time"`
	}{n + 1, now.UTC().Format("2006-01-02T15:04:05.000Z07:00")})
	switch err := srv.SendText(string(msg)); {
	case errors.Is(err, datachannel.ErrNoPeer):
		return n // nobody to tick to yet
	case err != nil:
		log.Warn("tick failed", "err", err)
		return n
	}
	peer, _ := srv.Peer()
	log.Debug("tick", "n", n+1, "to", peer)
	return n + 1
}

// logMessage logs one line per message, with no more of it than a short prefix.
func logMessage(log *slog.Logger, m *datachannel.Message) {
	kind, prefix := "text", shortText(m.Data, 24)
	if m.Binary {
		kind, prefix = "binary", hex.EncodeToString(m.Data[:min(len(m.Data), 8)])
	}
	log.Info("message", "from", m.From, "kind", kind, "bytes", len(m.Data), "fragments", m.Fragments, "prefix", prefix)
}

// shortText is the first n runes of b, with "…" when there is more (slog quotes it).
func shortText(b []byte, n int) string {
	for i := range string(b) {
		if n == 0 {
			return string(b[:i]) + "…"
		}
		n--
	}
	return string(b)
}
