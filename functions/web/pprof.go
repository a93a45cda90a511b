//go:build pprof

package main

import (
	"net/http"
	_ "net/http/pprof" // the profiles on DefaultServeMux
	"os"
)

// With -tags pprof (profiling builds only, never deployed), the profiles are served on
// PPROF_ADDR (127.0.0.1:6060 by default): go tool pprof http://127.0.0.1:6060/debug/pprof/profile
func init() {
	addr := os.Getenv("PPROF_ADDR")
	if addr == "" {
		addr = "127.0.0.1:6060"
	}
	go func() { _ = http.ListenAndServe(addr, nil) }()
}
