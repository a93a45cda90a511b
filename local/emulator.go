package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/carqueue/carqueue/local/caremu"
	"github.com/carqueue/carqueue/shared/config"
)

// emulatorServer is the CAR emulator listening on its own address, as the real CAR API is a
// separate host the functions reach over the network (CAR_ENDPOINT).
type emulatorServer struct {
	emu  *caremu.Emulator
	addr string
	srv  *http.Server
	done chan error
}

// startEmulator serves a new emulator on ln with the given credentials, which are those the
// functions sign with. With several queues it hosts each queue's project (emulatedProjects).
func startEmulator(ln net.Listener, s settings, cfg config.Config, secretID, secretKey string, log *slog.Logger) (*emulatorServer, error) {
	emu, err := caremu.New(caremu.Options{
		Slots:        s.capacity,
		Projects:     emulatedProjects(s, cfg),
		SecretID:     secretID,
		SecretKey:    secretKey,
		CleanupDelay: s.cleanupDelay,
		Faults:       s.emulatorFaults,
		Logger:       log.With("component", "caremu"),
	})
	if err != nil {
		return nil, fmt.Errorf("start CAR emulator: %w", err)
	}
	mux := http.NewServeMux()
	mux.Handle("GET /emulator/state", emu.StateHandler())
	mux.Handle("/", emu)
	e := &emulatorServer{
		emu:  emu,
		addr: ln.Addr().String(),
		srv:  &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second},
		done: make(chan error, 1),
	}
	go func() { e.done <- e.srv.Serve(ln) }()
	return e, nil
}

// emulatedProjects are the projects the emulator hosts for a configuration of several queues
// (QUEUES), each with its queue's Capacity in slots (-capacity for a queue that follows CAR's
// Total; the sum where queues of one project differ by application). nil with one queue: then
// every ProjectId gets the -capacity slots, as before.
func emulatedProjects(s settings, cfg config.Config) map[string]int {
	if len(cfg.Queues) < 2 {
		return nil
	}
	out := map[string]int{}
	for _, q := range cfg.Queues {
		n := q.Capacity
		if n == 0 {
			n = s.capacity
		}
		out[q.ProjectID] += n
	}
	return out
}

// close stops the emulator's server, waiting up to the context's deadline for calls in flight.
func (e *emulatorServer) close(ctx context.Context) error {
	err := e.srv.Shutdown(ctx)
	if serveErr := <-e.done; serveErr != nil && !errors.Is(serveErr, http.ErrServerClosed) {
		err = errors.Join(err, serveErr)
	}
	if err != nil {
		return fmt.Errorf("stop CAR emulator: %w", err)
	}
	return nil
}
