package main

import (
	"context"
	"encoding/json"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/carqueue/carqueue/shared/datachannel"
	"github.com/carqueue/carqueue/shared/testkit"
)

const waitFor = 5 * time.Second

// startApp runs the app in-process on a free port and stops it (gracefully) at cleanup.
func startApp(t *testing.T, args ...string) (netip.AddrPort, *testkit.SyncBuffer) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	logs := &testkit.SyncBuffer{}
	addrc, done := make(chan netip.AddrPort, 1), make(chan error, 1)
	go func() {
		done <- run(ctx, append([]string{"-port", "0"}, args...), logs, func(a netip.AddrPort) { addrc <- a })
	}()
	var addr netip.AddrPort
	select {
	case addr = <-addrc:
	case err := <-done:
		t.Fatalf("run: %v\n%s", err, logs)
	case <-time.After(waitFor):
		t.Fatal("the app did not listen")
	}
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("run after cancel: %v", err)
			}
		case <-time.After(waitFor):
			t.Errorf("the app did not stop within %v", waitFor)
		}
		if t.Failed() {
			t.Logf("the app's log:\n%s", logs)
		}
	})
	return addr, logs
}

type peer struct {
	t    *testing.T
	conn *net.UDPConn
	app  netip.AddrPort
	ra   *datachannel.Reassembler
}

func newPeer(t *testing.T, app netip.AddrPort) *peer {
	conn, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	ra, _ := datachannel.NewReassembler(datachannel.Text, datachannel.Limits{}, nil)
	return &peer{t, conn, app, ra}
}

func (p *peer) send(s string) {
	p.t.Helper()
	if _, err := p.conn.WriteToUDPAddrPort([]byte(s), p.app); err != nil {
		p.t.Fatal(err)
	}
}

// next returns the next message from the app (reassembled when framed).
func (p *peer) next() *datachannel.Message {
	p.t.Helper()
	buf := make([]byte, 65536)
	_ = p.conn.SetReadDeadline(time.Now().Add(waitFor))
	for {
		n, _, err := p.conn.ReadFromUDPAddrPort(buf)
		if err != nil {
			p.t.Fatalf("nothing from the app within %v: %v", waitFor, err)
		}
		if m, ok := p.ra.Add(buf[:n]); ok {
			return m
		}
	}
}

// TestEchoAndTick: the app echoes text with "echo: ", splits a long echo, and ticks.
func TestEchoAndTick(t *testing.T) {
	app, logs := startApp(t, "-tick", "50ms")
	p := newPeer(t, app)
	p.send("ready?")
	var echoed, ticked bool
	for !echoed || !ticked {
		m := p.next()
		switch text := m.Text(); {
		case text == "echo: ready?":
			echoed = true
		case strings.HasPrefix(text, `{"tick":`):
			var tick struct {
				Tick int
				Time time.Time
			}
			if err := json.Unmarshal(m.Data, &tick); err != nil || tick.Tick < 1 || tick.Time.IsZero() {
				t.Fatalf("a tick %q: %v", text, err)
			}
			ticked = true
		default:
			t.Fatalf("unexpected %q", text)
		}
	}

	// A message of 1,199 bytes fits one datagram; its echo (1,205) does not, and comes framed.
	long := strings.Repeat("0123456789", 119) + "012345678"
	p.send(long)
	for {
		m := p.next()
		if strings.HasPrefix(m.Text(), "echo: ") {
			if m.Text() != "echo: "+long || m.Fragments != 2 || m.Binary {
				t.Fatalf("the long echo: %d bytes in %d fragments, binary=%v", len(m.Data), m.Fragments, m.Binary)
			}
			break
		}
	}
	if l := logs.String(); !strings.Contains(l, `prefix=ready?`) || !strings.Contains(l, `prefix=012345678901234567890123…`) || strings.Contains(l, long) {
		t.Errorf("the log should show a short prefix of each message, not more:\n%s", l)
	}
}

func TestFlags(t *testing.T) {
	for args, want := range map[string]string{
		"-port 80":            "must be 1024–65535",
		"-port 70000":         "must be 1024–65535",
		"-tick -1s":           "-tick -1s: must be 0 or more",
		"-protocol json":      `protocol "json": must be text or binary`,
		"-port 15000 surplus": "unexpected arguments",
	} {
		err := run(context.Background(), strings.Fields(args), &testkit.SyncBuffer{}, nil)
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: %v, want %q", args, err, want)
		}
	}
}
