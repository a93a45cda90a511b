package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/carqueue/carqueue/local/scfrpc"
	"github.com/tencentyun/scf-go-lib/events"
)

// binaries drives the built function binaries over the SCF Go runtime protocol (net/rpc
// Function.Invoke), the way SCF runs them: the test of the real artefacts.
type binaries struct {
	fns           map[string]*scfrpc.Function
	timeout       time.Duration // of an HTTP invocation
	reaperTimeout time.Duration // of a reaper invocation
	dir           string
}

// startBinaries builds functions/<name> for every function into a temporary directory and
// starts each with env.
// The cloud credentials also go with every invocation, as SCF passes a role's temporary ones.
func startBinaries(ctx context.Context, moduleDir string, vars []envVar, timeout, reaperTimeout time.Duration, progress io.Writer) (*binaries, error) {
	env := environ(vars)
	invokeEnv := map[string]string{}
	for _, v := range vars {
		if strings.HasPrefix(v.Name, "TENCENTCLOUD_") {
			invokeEnv[v.Name] = v.Value
		}
	}
	if moduleDir == "" {
		var err error
		if moduleDir, err = findModuleDir(); err != nil {
			return nil, err
		}
	}
	dir, err := os.MkdirTemp("", "carqueue-functions-")
	if err != nil {
		return nil, fmt.Errorf("function binaries dir: %w", err)
	}
	b := &binaries{fns: map[string]*scfrpc.Function{}, timeout: timeout, reaperTimeout: reaperTimeout, dir: dir}
	names := append(append([]string(nil), routes...), reaperFunction)
	fmt.Fprintf(progress, "building %d function binaries from %s …\n", len(names), moduleDir)
	paths, err := scfrpc.Build(ctx, moduleDir, dir, names...)
	if err != nil {
		b.Close()
		return nil, fmt.Errorf("build function binaries: %w", err)
	}
	for _, name := range names {
		path, ok := paths[name]
		if !ok {
			b.Close()
			return nil, fmt.Errorf("build function binaries: no binary for %s", name)
		}
		fn, err := scfrpc.Start(ctx, path, env)
		if err != nil {
			b.Close()
			return nil, fmt.Errorf("start function %s: %w", name, err)
		}
		fn.Name = name
		fn.InvokeEnv = invokeEnv
		b.fns[name] = fn
	}
	return b, nil
}

func (b *binaries) HTTP(ctx context.Context, route, requestID string, ev events.APIGatewayRequest) (events.APIGatewayResponse, error) {
	var resp events.APIGatewayResponse
	if route == "" {
		// Any function answers a path that is not its own with the contract's 404.
		route = "start"
	}
	fn, ok := b.fns[route]
	if !ok {
		return resp, fmt.Errorf("no function %q", route)
	}
	payload, err := functionURLPayload(ev)
	if err != nil {
		return resp, err
	}
	out, err := fn.Invoke(ctx, payload, requestID, time.Now().Add(b.timeout))
	if err != nil {
		return resp, fmt.Errorf("invoke %s: %w; its output ends: %s", route, err, tail(fn.Output(), 2000))
	}
	if err := json.Unmarshal(out, &resp); err != nil {
		return resp, fmt.Errorf("invoke %s: decode response: %w", route, err)
	}
	return resp, nil
}

func (b *binaries) Timer(ctx context.Context, requestID string, ev events.TimerEvent) error {
	payload, err := json.Marshal(ev)
	if err != nil {
		return fmt.Errorf("encode timer event: %w", err)
	}
	if _, err := b.fns[reaperFunction].Invoke(ctx, payload, requestID, time.Now().Add(b.reaperTimeout)); err != nil {
		return fmt.Errorf("invoke %s: %w", reaperFunction, err)
	}
	return nil
}

// Close stops every started function and removes the binaries.
func (b *binaries) Close() error {
	var errs []error
	for name, fn := range b.fns {
		if err := fn.Close(); err != nil {
			errs = append(errs, fmt.Errorf("stop function %s: %w", name, err))
		}
	}
	b.fns = nil
	if err := os.RemoveAll(b.dir); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// functionURLPayload is the JSON a function URL sends: the APIGatewayRequest fields plus
// isBase64Encoded, which the Go struct has no field for.
func functionURLPayload(ev events.APIGatewayRequest) ([]byte, error) {
	b, err := json.Marshal(ev)
	if err != nil {
		return nil, fmt.Errorf("encode event: %w", err)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, fmt.Errorf("encode event: %w", err)
	}
	// A function URL event has no requestContext (the client IP is in x-scf-remote-addr).
	delete(m, "requestContext")
	m["isBase64Encoded"] = false
	return json.Marshal(m)
}

// findModuleDir walks up from the working directory to this module's go.mod.
func findModuleDir() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", fmt.Errorf("find module: %w", err)
	}
	for {
		b, err := os.ReadFile(filepath.Join(dir, "go.mod"))
		if err == nil && strings.Contains(string(b), "module github.com/carqueue/carqueue\n") {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("find module: no go.mod of github.com/carqueue/carqueue above the working directory; pass -module-dir")
		}
		dir = parent
	}
}
