// Command chaos runs the whole system through the faults an operator meets, and checks from
// the outside that nobody lost a place: simulated users (local/loadgen: play and stop, vanish,
// reconnect, quit while queued, each request to one of two instances at random) against two
// harness instances (`go run ./local`, built once) that share one redis-server (AOF on) and one
// CAR emulator (served here, with its faults under this command's control), the reaper of
// each instance ticking every 200 ms so runs overlap. Meanwhile it injects, on a schedule:
//
//	redis-restart   redis-server stopped (SIGTERM) and started again on its AOF
//	redis-down      redis-server down longer than QUEUE_IDLE_TIMEOUT and HEARTBEAT_TIMEOUT
//	instance-kill   one instance killed with SIGKILL, started again
//	car-down        every CAR action failing (InternalError)
//
// The checks are the load test's, which know only what clients were told and what the
// emulator holds: capacity never exceeded, nobody dropped while it kept polling or
// heartbeating, every departure with the reason its behaviour implies, no slot leaked at the
// end, FIFO within the admission width, 5xx counted by route. It prints the fault timeline and
// the report, and exits 1 on any violation.
//
//	go run ./scripts/chaos -short                         # CI: 200 users, a 30 s Redis outage, one kill (~2.5 min)
//	go run ./scripts/chaos -users 2000 -capacity 40 -redis-down 2m -car-down 1m   # RELIABILITY.md
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"time"

	"github.com/carqueue/carqueue/local/caremu"
	"github.com/carqueue/carqueue/local/loadgen"
)

// Timeouts of the harnesses: short, so a fault longer than them happens within minutes.
const (
	idleTimeout      = 10 * time.Second
	heartbeatTimeout = 8 * time.Second
	readyTimeout     = 8 * time.Second
	adminToken       = "chaos-admin-token-0123"
)

type options struct {
	users, capacity          int
	play, stagger            time.Duration
	redisRestartAt           time.Duration
	redisDownAt, redisDown   time.Duration
	killAt                   time.Duration
	carDownAt, carDown       time.Duration
	timeout, drain           time.Duration
	seed                     uint64
	vanish, reconnect, quitQ float64
	carFaults                float64
}

// longRun is the default run (RELIABILITY.md scales it up with flags).
func longRun() options {
	return options{users: 600, capacity: 12, play: 4 * time.Second, stagger: 60 * time.Millisecond,
		redisRestartAt: 15 * time.Second, redisDownAt: 35 * time.Second, redisDown: 30 * time.Second,
		killAt: 90 * time.Second, carDownAt: 110 * time.Second, carDown: 30 * time.Second, carFaults: 0.05,
		timeout: 15 * time.Minute, drain: 90 * time.Second, seed: 1, vanish: 0.1, reconnect: 0.1, quitQ: 0.1}
}

// shortRun is CI's run: about two and a half minutes on a 2-core machine.
func shortRun() options {
	o := longRun()
	o.users, o.capacity, o.play, o.stagger = 200, 12, 3*time.Second, 150*time.Millisecond
	o.redisRestartAt, o.redisDownAt, o.redisDown = 10*time.Second, 25*time.Second, 30*time.Second
	o.killAt, o.carDownAt, o.carDown = 65*time.Second, 75*time.Second, 15*time.Second
	o.timeout, o.drain = 6*time.Minute, 60*time.Second
	return o
}

func main() {
	o := longRun()
	short := flag.Bool("short", false, "the CI preset: 200 users on 12 slots, a restart, a 30 s Redis outage, one kill, a 15 s CAR outage (other flags ignored)")
	flag.IntVar(&o.users, "users", o.users, "simulated users")
	flag.IntVar(&o.capacity, "capacity", o.capacity, "CAR slots (and CAPACITY)")
	flag.DurationVar(&o.play, "play", o.play, "mean play time")
	flag.DurationVar(&o.stagger, "stagger", o.stagger, "pause between users' first /start")
	flag.DurationVar(&o.redisRestartAt, "redis-restart-at", o.redisRestartAt, "when redis-server restarts on its AOF (0: never)")
	flag.DurationVar(&o.redisDownAt, "redis-down-at", o.redisDownAt, "when redis-server goes down for -redis-down (0: never)")
	flag.DurationVar(&o.redisDown, "redis-down", o.redisDown, "how long redis-server stays down (longer than the idle and heartbeat timeouts)")
	flag.DurationVar(&o.killAt, "kill-at", o.killAt, "when instance 2 is killed with SIGKILL and started again (0: never)")
	flag.DurationVar(&o.carDownAt, "car-down-at", o.carDownAt, "when every CAR action starts failing (0: never)")
	flag.DurationVar(&o.carDown, "car-down", o.carDown, "how long CAR stays down")
	flag.Float64Var(&o.carFaults, "car-faults", o.carFaults, "rate of transient CAR errors the rest of the time")
	flag.DurationVar(&o.timeout, "timeout", o.timeout, "time limit of the users' run")
	flag.DurationVar(&o.drain, "drain", o.drain, "time to wait afterwards for the reaper and the emulator's clean-up")
	flag.Uint64Var(&o.seed, "seed", o.seed, "seed of roles and play times")
	flag.Float64Var(&o.vanish, "vanish", o.vanish, "fraction that go silent after Ready")
	flag.Float64Var(&o.reconnect, "reconnect", o.reconnect, "fraction that drop once and /reconnect")
	flag.Float64Var(&o.quitQ, "quit-queued", o.quitQ, "fraction that /stop while queued")
	flag.Parse()
	if *short {
		o = shortRun()
	}
	rep, err := run(context.Background(), o)
	if err != nil {
		fmt.Fprintln(os.Stderr, "chaos:", err)
		os.Exit(2)
	}
	if len(rep.Violations) > 0 {
		os.Exit(1)
	}
}

// timeline records what was injected when, relative to the start.
type timeline struct {
	start time.Time
	mu    sync.Mutex
	lines []string
}

func (t *timeline) add(format string, args ...any) {
	t.mu.Lock()
	defer t.mu.Unlock()
	line := fmt.Sprintf("%7s  ", time.Since(t.start).Round(100*time.Millisecond)) + fmt.Sprintf(format, args...)
	t.lines = append(t.lines, line)
	fmt.Println("chaos:", line)
}

func run(ctx context.Context, o options) (loadgen.Report, error) {
	tmp, err := os.MkdirTemp("", "carqueue-chaos-")
	if err != nil {
		return loadgen.Report{}, err
	}
	keep := false // the harness logs stay when a promise was broken
	defer func() {
		if !keep {
			_ = os.RemoveAll(tmp)
		}
	}()
	tl := &timeline{start: time.Now()}

	// The harness, built once (both instances run the same binary).
	bin := filepath.Join(tmp, "local")
	build := exec.CommandContext(ctx, "go", "build", "-o", bin, "./local")
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		return loadgen.Report{}, fmt.Errorf("build ./local: %w", err)
	}

	rds, err := startRedis(ctx, filepath.Join(tmp, "redis"))
	if err != nil {
		return loadgen.Report{}, err
	}
	defer rds.stop(syscall.SIGKILL)

	emu, err := caremu.New(caremu.Options{Slots: o.capacity, CleanupDelay: 200 * time.Millisecond,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		return loadgen.Report{}, err
	}
	setCARFaults(emu, o.carFaults)
	eln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return loadgen.Report{}, err
	}
	mux := http.NewServeMux()
	mux.Handle("GET /emulator/state", emu.StateHandler())
	mux.Handle("/", emu)
	esrv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = esrv.Serve(eln) }()
	defer esrv.Close()

	env := append(os.Environ(),
		"REDIS_ADDR="+rds.addr, "QUEUE_ID=chaos-"+strconv.FormatInt(time.Now().UnixNano()%1e9, 36),
		"CAR_ENDPOINT="+eln.Addr().String(), "CAR_SCHEME=http", "CAPACITY="+strconv.Itoa(o.capacity),
		"TENCENTCLOUD_SECRETID="+caremu.LocalSecretID, "TENCENTCLOUD_SECRETKEY="+caremu.LocalSecretKey,
		"TICKET_SECRET=chaos-ticket-secret-0123456789", "ADMIN_TOKEN="+adminToken, "LOG_LEVEL=warn",
		"QUEUE_IDLE_TIMEOUT="+idleTimeout.String(), "HEARTBEAT_TIMEOUT="+heartbeatTimeout.String(),
		"READY_TIMEOUT="+readyTimeout.String(), "POLL_MAX_INTERVAL=2s", "RELEASE_RETRY_MAX=5s")
	var insts []*instance
	for i := range 2 {
		in := &instance{name: fmt.Sprintf("instance-%d", i+1), bin: bin, env: env, log: filepath.Join(tmp, fmt.Sprintf("harness-%d.log", i+1))}
		if err := in.start(ctx); err != nil {
			return loadgen.Report{}, err
		}
		defer in.stop(syscall.SIGKILL)
		insts = append(insts, in)
	}
	tl.add("up: redis-server %s (AOF), CAR emulator %s (%d slots, %.0f%% transient faults), %s and %s (reaper every 200ms)",
		rds.addr, eln.Addr(), o.capacity, 100*o.carFaults, insts[0].base, insts[1].base)

	// The faults, on their schedule, while the users run.
	fctx, stopFaults := context.WithCancel(ctx)
	defer stopFaults()
	var faults sync.WaitGroup
	at := func(d time.Duration, f func()) {
		if d <= 0 {
			return
		}
		faults.Go(func() {
			select {
			case <-time.After(time.Until(tl.start.Add(d))):
				f()
			case <-fctx.Done():
			}
		})
	}
	at(o.redisRestartAt, func() {
		tl.add("redis-restart: SIGTERM")
		rds.stop(syscall.SIGTERM)
		if err := rds.start(ctx); err != nil {
			tl.add("redis-restart FAILED: %v", err)
			return
		}
		tl.add("redis-restart: up again on its AOF")
	})
	at(o.redisDownAt, func() {
		tl.add("redis-down: SIGTERM, down for %v (idle timeout %v, heartbeat timeout %v)", o.redisDown, idleTimeout, heartbeatTimeout)
		rds.stop(syscall.SIGTERM)
		time.Sleep(o.redisDown)
		if err := rds.start(ctx); err != nil {
			tl.add("redis-down: restart FAILED: %v", err)
			return
		}
		tl.add("redis-down: up again")
	})
	at(o.killAt, func() {
		tl.add("instance-kill: SIGKILL %s", insts[1].name)
		insts[1].stop(syscall.SIGKILL)
		time.Sleep(3 * time.Second)
		if err := insts[1].start(ctx); err != nil {
			tl.add("instance-kill: restart FAILED: %v", err)
			return
		}
		tl.add("instance-kill: %s serving again", insts[1].name)
	})
	at(o.carDownAt, func() {
		tl.add("car-down: every CAR action fails for %v", o.carDown)
		emu.SetErrorRate("*", "InternalError", 1)
		time.Sleep(o.carDown)
		setCARFaults(emu, o.carFaults)
		tl.add("car-down: CAR answers again")
	})

	cfg := loadgen.Config{
		BaseURL: insts[0].base, MoreURLs: []string{insts[1].base}, EmulatorURL: "http://" + eln.Addr().String(),
		AdminToken: adminToken, Users: o.users, Vanish: o.vanish, Reconnect: o.reconnect, QuitQueued: o.quitQ,
		Play: o.play, Stagger: o.stagger, HeartbeatTimeout: heartbeatTimeout, ReadyTimeout: readyTimeout,
		Timeout: o.timeout, DrainTimeout: o.drain, Seed: o.seed, MaxRetryDelay: time.Second,
		Logf: func(format string, args ...any) { fmt.Printf("loadgen: "+format+"\n", args...) },
	}
	rep, err := loadgen.Run(ctx, cfg)
	stopFaults()
	faults.Wait()
	fmt.Println("\nfault timeline:")
	for _, l := range tl.lines {
		fmt.Println("  " + l)
	}
	fmt.Println()
	if rep.Users == 0 { // the run did not happen: nothing to report
		return rep, err
	}
	rep.WriteTable(os.Stdout)
	if len(rep.Violations) > 0 {
		keep = true
		for _, in := range insts {
			fmt.Printf("\n%s's log: %s\n", in.name, in.log)
		}
	}
	return rep, nil
}

func setCARFaults(emu *caremu.Emulator, rate float64) {
	emu.ResetFaults()
	if rate > 0 {
		for _, code := range []string{"InternalError", "ResourceUnavailable.Initialization"} {
			emu.SetErrorRate("*", code, rate/2)
		}
	}
}

// process is a child the command starts, stops and starts again.
type process struct {
	mu     sync.Mutex
	cmd    *exec.Cmd
	exited chan struct{}
}

// run starts cmd; onExit runs once it has exited (closing its log).
func (p *process) run(cmd *exec.Cmd, onExit func()) error {
	if err := cmd.Start(); err != nil {
		return err
	}
	exited := make(chan struct{})
	go func() {
		_ = cmd.Wait()
		if onExit != nil {
			onExit()
		}
		close(exited)
	}()
	p.mu.Lock()
	p.cmd, p.exited = cmd, exited
	p.mu.Unlock()
	return nil
}

// stop sends sig and waits for the exit, killing the process after grace.
func (p *process) stop(sig syscall.Signal, grace time.Duration) {
	p.mu.Lock()
	cmd, exited := p.cmd, p.exited
	p.mu.Unlock()
	if cmd == nil || cmd.Process == nil {
		return
	}
	_ = cmd.Process.Signal(sig)
	select {
	case <-exited:
	case <-time.After(grace):
		_ = cmd.Process.Kill()
		<-exited
	}
}

// redis is the redis-server the instances share, restartable on its AOF.
type redis struct {
	process
	dir, addr string
}

func startRedis(ctx context.Context, dir string) (*redis, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	addr, err := freeAddr()
	if err != nil {
		return nil, err
	}
	r := &redis{dir: dir, addr: addr}
	return r, r.start(ctx)
}

func (r *redis) start(ctx context.Context) error {
	_, port, _ := net.SplitHostPort(r.addr)
	cmd := exec.Command("redis-server", "--port", port, "--bind", "127.0.0.1", "--dir", r.dir,
		"--appendonly", "yes", "--appendfsync", "always", "--save", "", "--logfile", filepath.Join(r.dir, "redis.log"))
	if err := r.run(cmd, nil); err != nil {
		return fmt.Errorf("start redis-server (on PATH?): %w", err)
	}
	return waitTCP(ctx, r.addr, 15*time.Second)
}

func (r *redis) stop(sig syscall.Signal) { r.process.stop(sig, 10*time.Second) }

// instance is one harness process; it keeps its address across restarts.
type instance struct {
	process
	name, bin, log string
	env            []string
	addr, base     string
}

func (in *instance) start(ctx context.Context) error {
	if in.addr == "" {
		addr, err := freeAddr()
		if err != nil {
			return err
		}
		in.addr, in.base = addr, "http://"+addr
	}
	logf, err := os.OpenFile(in.log, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	cmd := exec.Command(in.bin, "-addr", in.addr, "-tick", "200ms", "-cleanup-delay", "200ms")
	cmd.Env, cmd.Stdout, cmd.Stderr = in.env, logf, logf
	if err := in.run(cmd, func() { _ = logf.Close() }); err != nil {
		_ = logf.Close()
		return fmt.Errorf("start %s: %w", in.name, err)
	}
	if err := waitTCP(ctx, in.addr, 60*time.Second); err != nil {
		return fmt.Errorf("%s did not listen (log %s): %w", in.name, in.log, err)
	}
	return nil
}

func (in *instance) stop(sig syscall.Signal) { in.process.stop(sig, 15*time.Second) }

// freeAddr is a 127.0.0.1 address whose port was free a moment ago.
func freeAddr() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer l.Close()
	return l.Addr().String(), nil
}

// waitTCP waits until addr accepts connections.
func waitTCP(ctx context.Context, addr string, within time.Duration) error {
	end := time.Now().Add(within)
	for {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			_ = c.Close()
			return nil
		}
		if time.Now().After(end) {
			return errors.New("not accepting connections at " + addr)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
}
