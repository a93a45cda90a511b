// Package scfrpc drives built SCF Go function binaries the way the SCF Go runtime does: it
// starts the binary with _LAMBDA_SERVER_PORT set, and calls the net/rpc methods Function.Ping and
// Function.Invoke that scf-go-lib's cloudfunction.Start serves. `scf invoke local` cannot run Go,
// so this is how the real binaries are tested before deployment.
package scfrpc

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/rpc"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"time"

	"github.com/tencentyun/scf-go-lib/cloudfunction/messages"
)

// startTimeout bounds how long Start waits for the binary to answer Function.Ping.
const startTimeout = 15 * time.Second

// Build compiles ./functions/<name> of the module at moduleDir for the host, statically
// (CGO_ENABLED=0) as for SCF, into outDir/<name>, in one go build. It returns name → path.
func Build(ctx context.Context, moduleDir, outDir string, names ...string) (map[string]string, error) {
	if len(names) == 0 {
		return nil, errors.New("scfrpc build: no function names")
	}
	absOut, err := filepath.Abs(outDir)
	if err != nil {
		return nil, fmt.Errorf("scfrpc build: %w", err)
	}
	if err := os.MkdirAll(absOut, 0o755); err != nil {
		return nil, fmt.Errorf("scfrpc build: %w", err)
	}
	args := []string{"build", "-trimpath", "-o", absOut + string(filepath.Separator)}
	out := make(map[string]string, len(names))
	for _, n := range names {
		args = append(args, "./functions/"+n)
		out[n] = filepath.Join(absOut, n)
	}
	cmd := exec.CommandContext(ctx, "go", args...)
	cmd.Dir = moduleDir
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if b, err := cmd.CombinedOutput(); err != nil {
		return nil, fmt.Errorf("scfrpc build %v: %w\n%s", names, err, b)
	}
	return out, nil
}

// Function is one running function binary.
type Function struct {
	// InvokeEnv is sent with every Invoke as InvokeRequest.Environment, the way SCF passes the
	// role's temporary credentials (TENCENTCLOUD_SECRETID, …) per invocation.
	InvokeEnv map[string]string
	// Name is sent as InvokeRequest.FunctionName.
	Name string

	cmd    *exec.Cmd
	client *rpc.Client
	exited chan struct{}
	out    *syncBuffer
	once   sync.Once
}

// errExited: the process ended before answering Ping (e.g. the port was taken meanwhile).
var errExited = errors.New("exited before answering Ping")

// Start runs binary with env (plus _LAMBDA_SERVER_PORT on a free port) and waits, bounded,
// until it answers Function.Ping. The free port is only free when it is picked, so a process
// that exits at once is started again, up to three times, on another port.
func Start(ctx context.Context, binary string, env []string) (*Function, error) {
	var err error
	for range 3 {
		var f *Function
		if f, err = start(ctx, binary, env); !errors.Is(err, errExited) {
			return f, err
		}
	}
	return nil, err
}

func start(ctx context.Context, binary string, env []string) (*Function, error) {
	port, err := freePort()
	if err != nil {
		return nil, fmt.Errorf("scfrpc start %s: %w", binary, err)
	}
	out := &syncBuffer{}
	cmd := exec.Command(binary)
	cmd.Env = append(append([]string{}, env...), "_LAMBDA_SERVER_PORT="+strconv.Itoa(port))
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("scfrpc start %s: %w", binary, err)
	}
	f := &Function{Name: filepath.Base(binary), cmd: cmd, exited: make(chan struct{}), out: out}
	go func() { _ = cmd.Wait(); close(f.exited) }()

	ctx, cancel := context.WithTimeout(ctx, startTimeout)
	defer cancel()
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	for wait := 5 * time.Millisecond; ; wait = min(wait*2, 200*time.Millisecond) {
		if c, err := rpc.Dial("tcp", addr); err == nil {
			if err := c.Call("Function.Ping", &messages.PingRequest{}, &messages.PingResponse{}); err == nil {
				f.client = c
				return f, nil
			}
			_ = c.Close()
		}
		select {
		case <-f.exited:
			return nil, fmt.Errorf("scfrpc start %s: %w: %s", binary, errExited, out.String())
		case <-ctx.Done():
			_ = f.Close()
			return nil, fmt.Errorf("scfrpc start %s: no Ping answer: %w: %s", binary, ctx.Err(), out.String())
		case <-time.After(wait):
		}
	}
}

// InvokeError is the error a function returned (InvokeResponse.Error).
type InvokeError struct {
	Message, Type string
	ShouldExit    bool // the runtime would recycle the instance (a panic)
}

func (e *InvokeError) Error() string {
	return fmt.Sprintf("function error (%s): %s", e.Type, e.Message)
}

// Invoke calls Function.Invoke as the SCF runtime does and returns the handler's JSON answer, or
// an *InvokeError when the handler returned an error or panicked.
func (f *Function) Invoke(ctx context.Context, payload []byte, requestID string, deadline time.Time) ([]byte, error) {
	req := &messages.InvokeRequest{
		Payload:      payload,
		RequestId:    requestID,
		Deadline:     messages.InvokeRequest_Timestamp{Seconds: deadline.Unix(), Nanos: int64(deadline.Nanosecond())},
		FunctionName: f.Name,
	}
	if time.Until(deadline) > 0 {
		req.TimeLimitInMs = int32(time.Until(deadline).Milliseconds())
	}
	if len(f.InvokeEnv) > 0 {
		b, err := json.Marshal(f.InvokeEnv)
		if err != nil {
			return nil, fmt.Errorf("scfrpc invoke %s: environment: %w", f.Name, err)
		}
		req.Environment = string(b)
	}
	var resp messages.InvokeResponse
	call := f.client.Go("Function.Invoke", req, &resp, make(chan *rpc.Call, 1))
	select {
	case <-call.Done:
	case <-ctx.Done():
		return nil, fmt.Errorf("scfrpc invoke %s: %w", f.Name, ctx.Err())
	}
	if call.Error != nil {
		return nil, fmt.Errorf("scfrpc invoke %s: rpc: %w", f.Name, call.Error)
	}
	if resp.Error != nil {
		return nil, &InvokeError{Message: resp.Error.Message, Type: resp.Error.Type, ShouldExit: resp.Error.ShouldExit}
	}
	return resp.Payload, nil
}

// Output returns what the function wrote to stdout and stderr so far (its logs).
func (f *Function) Output() string { return f.out.String() }

// Close kills the process and waits for it to exit.
func (f *Function) Close() error {
	f.once.Do(func() {
		if f.client != nil {
			_ = f.client.Close()
		}
		_ = f.cmd.Process.Kill()
	})
	<-f.exited
	return nil
}

// freePort asks the kernel for a port that is free right now.
func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// syncBuffer collects a process's output; the process writes while tests read.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.buf.Len() > 1<<20 { // keep memory bounded; the start is what explains failures
		return len(p), nil
	}
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
