package main

import (
	"context"
	"log/slog"
	"net/http"

	"github.com/carqueue/carqueue/local/relay"
)

// The data channel of the TCGSDK stand-in (/tcgsdk-local.js, in local/web): a page's session
// socket at /tcgsdk/ws and one socket per data channel at /tcgsdk/channel, relayed to UDP on
// 127.0.0.1 by local/relay for the emulator's sessions.
const (
	sessionSocketPath = "/tcgsdk/ws"
	channelSocketPath = "/tcgsdk/channel"
)

// startRelay relays the data channels of the emulator's sessions; nil without an emulator.
func startRelay(emu *emulatorServer, log *slog.Logger) *relay.Relay {
	if emu == nil {
		return nil
	}
	return relay.New(emu.emu, relay.Options{Logger: log.With("component", "relay")})
}

// mountRelay serves the stand-in's sockets on mux. Without a relay (a real CAR through
// CAR_ENDPOINT) a start is refused with a reason the stand-in passes to onConnectFail.
func mountRelay(mux *http.ServeMux, r *relay.Relay) {
	if r == nil {
		mux.HandleFunc("GET "+sessionSocketPath, func(w http.ResponseWriter, req *http.Request) {
			relay.Refuse(w, req, relay.StatusNoEmulator, "this harness uses a real CAR (CAR_ENDPOINT): no emulated sessions to connect")
		})
		mux.HandleFunc("GET "+channelSocketPath, func(w http.ResponseWriter, req *http.Request) {
			http.Error(w, "no emulated sessions (CAR_ENDPOINT is set)", http.StatusNotFound)
		})
		return
	}
	mux.HandleFunc("GET "+sessionSocketPath, r.ServeSession)
	mux.HandleFunc("GET "+channelSocketPath, r.ServeChannel)
}

// closeRelay disconnects every page (close code 1001) before the HTTP server stops.
func closeRelay(ctx context.Context, r *relay.Relay, log *slog.Logger) {
	if r == nil {
		return
	}
	if err := r.Close(ctx); err != nil {
		log.Warn("stop data channel relay", "err", err)
	}
}
