package scfrpc

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/carqueue/carqueue/local/caremu"
	"github.com/carqueue/carqueue/shared/redistest"
	"github.com/tencentyun/scf-go-lib/events"
)

// functions are the seven SCF functions, each driven here through its built binary.
var functions = []string{"start", "poll", "heartbeat", "reconnect", "stop", "stats", "reaper-cron"}

const moduleDir = "../.."

// built holds the binaries built once for the whole package (name → path).
var built map[string]string

func TestMain(m *testing.M) {
	code := func() int {
		if _, err := os.Stat(filepath.Join(moduleDir, "shared", "app")); err != nil {
			// Without shared/app the functions cannot build; the tests skip (see requireBuilt).
			return m.Run()
		}
		dir, err := os.MkdirTemp("", "scfrpc-test-")
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		defer os.RemoveAll(dir)
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
		defer cancel()
		if built, err = Build(ctx, moduleDir, dir, functions...); err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		return m.Run()
	}()
	os.Exit(code)
}

func requireBuilt(t *testing.T) {
	t.Helper()
	if built == nil {
		t.Skip("shared/app is not in the tree yet, so the functions cannot be built")
	}
}

func fixture(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(moduleDir, "functions", name, "event.json"))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// withTicket returns an HTTP fixture with the placeholder Ticket in its body replaced.
func withTicket(t *testing.T, raw []byte, ticket string) []byte {
	t.Helper()
	var ev events.APIGatewayRequest
	if err := json.Unmarshal(raw, &ev); err != nil {
		t.Fatal(err)
	}
	var body map[string]any
	if err := json.Unmarshal([]byte(ev.Body), &body); err != nil {
		t.Fatal(err)
	}
	body["Ticket"] = ticket
	b, _ := json.Marshal(body)
	ev.Body = string(b)
	out, _ := json.Marshal(ev)
	return out
}

// envelope is the contract's answer body.
type envelope struct {
	Code int
	Msg  string
	Data map[string]any
}

func invokeHTTP(t *testing.T, f *Function, payload []byte) (int, envelope) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out, err := f.Invoke(ctx, payload, "req-"+f.Name, time.Now().Add(20*time.Second))
	if err != nil {
		t.Fatalf("invoke %s: %v\noutput:\n%s", f.Name, err, f.Output())
	}
	var resp events.APIGatewayResponse
	if err := json.Unmarshal(out, &resp); err != nil {
		t.Fatalf("%s answered %s: %v", f.Name, out, err)
	}
	var env envelope
	if err := json.Unmarshal([]byte(resp.Body), &env); err != nil {
		t.Fatalf("%s body %q: %v", f.Name, resp.Body, err)
	}
	return resp.StatusCode, env
}

func TestFunctionsOverTheSCFProtocol(t *testing.T) {
	requireBuilt(t)
	for _, b := range redistest.Backends(t) {
		t.Run(b.Name, func(t *testing.T) {
			emu, err := caremu.New(caremu.Options{Slots: 2, Logger: slog.New(slog.NewJSONHandler(io.Discard, nil))})
			if err != nil {
				t.Fatal(err)
			}
			srv := httptest.NewServer(emu)
			t.Cleanup(srv.Close)
			redisAddr := b.Env()["REDIS_ADDR"]
			env := []string{
				"PATH=" + os.Getenv("PATH"),
				"REDIS_ADDR=" + redisAddr,
				"QUEUE_ID=" + redistest.Prefix(t, b.Client),
				"CAR_ENDPOINT=" + strings.TrimPrefix(srv.URL, "http://"),
				"CAR_SCHEME=http",
				"CAR_PROJECT_ID=cap-test",
				"CARQUEUE_LOCAL=1",
				"CAPACITY=2",
				"TICKET_SECRET=scfrpc-test-ticket-secret-0123456789",
				"ADMIN_TOKEN=local-admin-token",
				"LOG_LEVEL=warn",
			}
			fns := map[string]*Function{}
			for _, name := range functions {
				f, err := Start(context.Background(), built[name], env)
				if err != nil {
					t.Fatalf("start %s: %v", name, err)
				}
				t.Cleanup(func() { _ = f.Close() })
				f.Name = name
				// As SCF does: the role's credentials come with each invocation.
				f.InvokeEnv = map[string]string{"TENCENTCLOUD_SECRETID": caremu.LocalSecretID, "TENCENTCLOUD_SECRETKEY": caremu.LocalSecretKey}
				fns[name] = f
			}

			// /start on an empty queue with a free slot: Ready at once.
			code, start := invokeHTTP(t, fns["start"], fixture(t, "start"))
			if code != 200 || start.Code != 0 || start.Data["Status"] != "Ready" || start.Data["ServerSession"] == "" {
				t.Fatalf("/start: %d %+v", code, start)
			}
			ticket, _ := start.Data["Ticket"].(string)
			if ticket == "" {
				t.Fatalf("/start gave no Ticket: %+v", start)
			}
			if st := emu.State(); len(st.Sessions) != 1 || st.Sessions[0] != "user-1" {
				t.Fatalf("emulator after /start: %+v", st)
			}

			// The fixtures as they are carry a placeholder ticket: 401, as the contract says.
			for _, name := range []string{"poll", "heartbeat", "reconnect", "stop"} {
				if code, env := invokeHTTP(t, fns[name], fixture(t, name)); code != 401 || env.Code == 0 {
					t.Errorf("/%s with the placeholder ticket: %d %+v, want 401", name, code, env)
				}
			}

			if code, env := invokeHTTP(t, fns["poll"], withTicket(t, fixture(t, "poll"), ticket)); code != 200 || env.Data["Status"] != "Ready" {
				t.Fatalf("/poll: %d %+v", code, env)
			}
			if code, env := invokeHTTP(t, fns["heartbeat"], withTicket(t, fixture(t, "heartbeat"), ticket)); code != 200 || env.Data["Status"] != "Active" {
				t.Fatalf("/heartbeat: %d %+v", code, env)
			}
			if code, env := invokeHTTP(t, fns["reconnect"], withTicket(t, fixture(t, "reconnect"), ticket)); code != 200 || env.Data["Status"] != "Ready" {
				t.Fatalf("/reconnect: %d %+v", code, env)
			}
			code, stats := invokeHTTP(t, fns["stats"], fixture(t, "stats"))
			if code != 200 || stats.Code != 0 {
				t.Fatalf("/stats: %d %+v", code, stats)
			}
			for k, want := range map[string]float64{"Capacity": 2, "Queued": 0, "AdmittedTotal": 1} {
				if got, _ := stats.Data[k].(float64); got != want {
					t.Errorf("/stats %s = %v, want %v (%+v)", k, stats.Data[k], want, stats.Data)
				}
			}
			if code, env := invokeHTTP(t, fns["stop"], withTicket(t, fixture(t, "stop"), ticket)); code != 200 || env.Data["Status"] != "Stopped" {
				t.Fatalf("/stop: %d %+v", code, env)
			}

			// The timer function: no error, and the run is idempotent.
			for i := range 2 {
				out, err := fns["reaper-cron"].Invoke(context.Background(), fixture(t, "reaper-cron"), fmt.Sprintf("timer-%d", i), time.Now().Add(30*time.Second))
				if err != nil {
					t.Fatalf("reaper-cron: %v\noutput:\n%s", err, fns["reaper-cron"].Output())
				}
				if string(out) != "null" {
					t.Fatalf("reaper-cron answered %s, want null", out)
				}
			}
			if st := emu.State(); len(st.Sessions)+len(st.Locked) != 0 {
				t.Fatalf("emulator after /stop and the reaper: %+v, want no session", st)
			}
			for _, f := range fns {
				if err := f.Close(); err != nil {
					t.Errorf("close %s: %v", f.Name, err)
				}
			}
		})
	}
}

// A handler error comes back as *InvokeError, like the SCF runtime reports it.
func TestInvokeReturnsFunctionErrors(t *testing.T) {
	requireBuilt(t)
	f, err := Start(context.Background(), built["start"], []string{"PATH=" + os.Getenv("PATH")})
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	_, err = f.Invoke(context.Background(), []byte(`"not an event object"`), "bad", time.Now().Add(5*time.Second))
	var ie *InvokeError
	if !errors.As(err, &ie) || ie.Message == "" {
		t.Fatalf("invoke with a bad event: %v, want *InvokeError", err)
	}
	// The instance survived: the next invocation is answered (503, not configured).
	out, err := f.Invoke(context.Background(), fixture(t, "stats"), "ok", time.Now().Add(5*time.Second))
	if err != nil {
		t.Fatalf("second invoke: %v", err)
	}
	var resp events.APIGatewayResponse
	if err := json.Unmarshal(out, &resp); err != nil || resp.StatusCode != 503 {
		t.Fatalf("second invoke answered %s (%v), want a 503 response", out, err)
	}
}

func TestStartFailsForABinaryThatExits(t *testing.T) {
	if _, err := Start(context.Background(), "/bin/true", nil); err == nil {
		t.Fatal("Start of a binary that exits at once: no error")
	}
}

func TestBuildReportsCompileErrors(t *testing.T) {
	if _, err := Build(context.Background(), moduleDir, t.TempDir(), "no-such-function"); err == nil {
		t.Fatal("Build of a missing function: no error")
	}
}
