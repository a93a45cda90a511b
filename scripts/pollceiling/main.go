// Command pollceiling is the ceiling pollload is compared against in the same run: a minimal
// HTTP server that answers /start with the next Position and /poll with the Position of its
// UserId (an in-memory map), in carqueue's JSON envelope, with no Redis, log or ticket. The
// same http.Handler is served by the stack -stack names, so the stacks can be compared on CPU
// per answer, saturation and memory per idle keep-alive connection:
//
//   - nethttp: net/http, a goroutine and its buffers per connection;
//
//   - nbio: github.com/lesismal/nbio's nbhttp, an epoll event loop, a handler goroutine pool and
//     no goroutine or buffer held by an idle connection.
//
//     go run ./scripts/pollceiling -addr 127.0.0.1:18095 -stack nbio &
//     go run ./scripts/pollload -url http://127.0.0.1:18095 -hold=false -users 10000 -pids $!
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"net/http"
	"os"
	"os/signal"
	"strconv"
	"sync"
	"syscall"
	"time"

	"github.com/lesismal/nbio/logging"
	"github.com/lesismal/nbio/nbhttp"
)

func main() {
	addr := flag.String("addr", "127.0.0.1:18095", "listen address")
	stack := flag.String("stack", "nethttp", "HTTP stack: nethttp or nbio")
	flag.IntVar(&nPoller, "npoller", 0, "nbio: event loops (0: nbio's default, NumCPU/4 and at least 1)")
	flag.Parse()
	if err := serve(*addr, *stack, handler()); err != nil {
		fmt.Fprintln(os.Stderr, "pollceiling:", err)
		os.Exit(1)
	}
}

var nPoller int

func handler() http.Handler {
	var mu sync.RWMutex
	pos := map[string]int64{}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var in struct{ UserId string }
		if err := json.NewDecoder(r.Body).Decode(&in); err != nil {
			http.Error(w, "bad body", http.StatusBadRequest)
			return
		}
		mu.RLock()
		p, ok := pos[in.UserId]
		n := len(pos)
		mu.RUnlock()
		if !ok {
			mu.Lock()
			if p, ok = pos[in.UserId]; !ok {
				p = int64(len(pos) + 1)
				pos[in.UserId] = p
			}
			n = len(pos)
			mu.Unlock()
		}
		b := []byte(`{"Code":0,"Msg":"OK","RequestId":"r","Data":{"Status":"Queued","Ticket":"t","Position":` +
			strconv.FormatInt(p, 10) + `,"QueueLength":` + strconv.Itoa(n) + `,"NextPollMs":5000}}`)
		h := w.Header()
		h["Content-Type"] = []string{"application/json"}
		h["Access-Control-Allow-Origin"] = []string{"*"}
		h["Content-Length"] = []string{strconv.Itoa(len(b))}
		_, _ = w.Write(b)
	})
}

func serve(addr, stack string, h http.Handler) error {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	switch stack {
	case "nethttp":
		srv := &http.Server{Addr: addr, Handler: h, ReadHeaderTimeout: 10 * time.Second, IdleTimeout: 2 * time.Minute}
		go func() { <-ctx.Done(); _ = srv.Close() }()
		if err := srv.ListenAndServe(); err != http.ErrServerClosed {
			return err
		}
		return nil
	case "nbio":
		logging.SetLevel(logging.LevelError)
		e := nbhttp.NewEngine(nbhttp.Config{
			Network: "tcp", Addrs: []string{addr}, Handler: h, NPoller: nPoller,
			ReadBufferSize: 4096, MaxHTTPBodySize: 1 << 20, KeepaliveTime: 2 * time.Minute,
		})
		if err := e.Start(); err != nil {
			return err
		}
		<-ctx.Done()
		e.Stop()
		return nil
	default:
		return fmt.Errorf("-stack: %q is not nethttp or nbio", stack)
	}
}
