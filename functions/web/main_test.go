package main

import (
	"context"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/carqueue/carqueue/local/caremu"
	"github.com/carqueue/carqueue/local/caremu/caremutest"
	"github.com/carqueue/carqueue/shared/testkit"
)

// TestBadSettings: each server-mode setting is checked before anything starts, and the error
// names the variable.
func TestBadSettings(t *testing.T) {
	for name, val := range map[string]string{"PORT": "70000", "REAPER_TICK": "-1s", "REDIS_POOL_SIZE": "0"} {
		env := map[string]string{name: val}
		err := run(context.Background(), func(k string) string { return env[k] })
		if err == nil || !strings.Contains(err.Error(), name) {
			t.Errorf("%s=%s: got %v, want an error naming %s", name, val, err, name)
		}
	}
}

// TestGracefulShutdown: a stop signal (ctx) while a request is in flight lets that request
// finish with its real answer, then run returns without error and the port is closed.
func TestGracefulShutdown(t *testing.T) {
	emu, car := caremutest.Server(t, caremu.Options{Slots: 1})
	emu.SetLatency("ApplyConcurrent", 800*time.Millisecond, 0) // the /start in flight when the stop comes
	mr := miniredis.RunT(t)
	port := testkit.FreePort(t)
	env := map[string]string{
		"PORT": strconv.Itoa(port), "REDIS_ADDR": mr.Addr(), "CAR_ENDPOINT": strings.TrimPrefix(car.URL, "http://"),
		"CAR_SCHEME": "http", "CAR_PROJECT_ID": "cap-local", "CAPACITY": "1", "TICKET_SECRET": "web-test-secret-0123456",
		"TENCENTCLOUD_SECRETID": caremu.LocalSecretID, "TENCENTCLOUD_SECRETKEY": caremu.LocalSecretKey, "LOG_LEVEL": "error",
	}
	ctx, stop := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- run(ctx, func(k string) string { return env[k] }) }()
	base := "http://127.0.0.1:" + strconv.Itoa(port)
	for deadline := time.Now().Add(10 * time.Second); ; {
		if c, err := net.Dial("tcp", "127.0.0.1:"+strconv.Itoa(port)); err == nil {
			c.Close()
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the server did not start listening")
		}
		time.Sleep(20 * time.Millisecond)
	}
	answered := make(chan string, 1)
	go func() {
		resp, err := http.Post(base+"/start", "text/plain", strings.NewReader(`{"UserId":"u1","ClientSession":"cs"}`))
		if err != nil {
			answered <- "error: " + err.Error()
			return
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		answered <- string(b)
	}()
	// Stop once the request is in its CAR call.
	for deadline := time.Now().Add(5 * time.Second); len(emu.State().InFlight) == 0; {
		if time.Now().After(deadline) {
			t.Fatal("the /start never reached CAR")
		}
		time.Sleep(10 * time.Millisecond)
	}
	stop()
	if got := <-answered; !strings.Contains(got, `"Status":"Ready"`) {
		t.Fatalf("the request in flight at the stop got %s, want its Ready", got)
	}
	if err := <-done; err != nil {
		t.Fatalf("run after the stop: %v", err)
	}
	if _, err := net.Dial("tcp", "127.0.0.1:"+strconv.Itoa(port)); err == nil {
		t.Fatal("still listening after the stop")
	}
}
