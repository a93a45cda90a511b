package main

import (
	"bufio"
	"context"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/carqueue/carqueue/shared/redistest"
	"github.com/redis/go-redis/v9"
)

// serverStats is the part of INFO the benchmark diffs: the server's own CPU and the
// commandstats of EVALSHA (whose usec include the commands the script runs).
type serverStats struct {
	cpu         float64 // used_cpu_user + used_cpu_sys, seconds
	evalCalls   int64
	evalUsec    int64
	usedMemory  int64
	cmdCalls    int64 // all commands
	cmdUsecsAll int64
	perCmd      map[string][2]int64 // command -> calls, usec
}

func readStats(ctx context.Context, c *redis.Client) (serverStats, error) {
	txt, err := c.Info(ctx, "cpu", "commandstats", "memory").Result()
	if err != nil {
		return serverStats{}, fmt.Errorf("info: %w", err)
	}
	s := serverStats{perCmd: map[string][2]int64{}}
	sc := bufio.NewScanner(strings.NewReader(txt))
	for sc.Scan() {
		k, v, ok := strings.Cut(strings.TrimSpace(sc.Text()), ":")
		if !ok {
			continue
		}
		switch {
		case k == "used_cpu_user" || k == "used_cpu_sys":
			f, _ := strconv.ParseFloat(v, 64)
			s.cpu += f
		case k == "used_memory":
			s.usedMemory, _ = strconv.ParseInt(v, 10, 64)
		case strings.HasPrefix(k, "cmdstat_"):
			calls, usec := parseCmdstat(v)
			s.cmdCalls += calls
			s.cmdUsecsAll += usec
			s.perCmd[strings.TrimPrefix(k, "cmdstat_")] = [2]int64{calls, usec}
			if k == "cmdstat_evalsha" {
				s.evalCalls, s.evalUsec = calls, usec
			}
		}
	}
	return s, nil
}

func parseCmdstat(v string) (calls, usec int64) {
	for _, f := range strings.Split(v, ",") {
		k, x, _ := strings.Cut(f, "=")
		switch k {
		case "calls":
			calls, _ = strconv.ParseInt(x, 10, 64)
		case "usec":
			usec, _ = strconv.ParseInt(x, 10, 64)
		}
	}
	return calls, usec
}

// result is one line of the table.
type result struct {
	name       string
	ops        int64
	wall       time.Duration
	roundTrips int64
	evalCalls  int64
	evalUsec   int64
	cpuSec     float64
	maxLatency time.Duration
	errs       int64
	breakdown  string // the commands run in the phase: calls per op and usec per call
}

func (r result) opsPerSec() float64 { return float64(r.ops) / r.wall.Seconds() }

func (r result) row() string {
	usecPerCall := "-"
	if r.evalCalls*2 >= r.ops { // phases that run scripts (others' scripts alone do not count)
		usecPerCall = fmt.Sprintf("%.2f", float64(r.evalUsec)/float64(r.evalCalls))
	}
	return fmt.Sprintf("| %s | %d | %.0f | %.2f | %s | %.2f | %s | %d |", r.name, r.ops, r.opsPerSec(),
		float64(r.roundTrips)/float64(r.ops), usecPerCall, r.cpuSec*1e6/float64(r.ops),
		r.maxLatency.Round(10*time.Microsecond), r.errs)
}

// measure runs op total times over conc goroutines and diffs the server's stats around it.
func measure(ctx context.Context, admin *redis.Client, rt *redistest.RoundTrips, name string, conc, total int, op func(i int) error) (result, error) {
	before, err := readStats(ctx, admin)
	if err != nil {
		return result{}, err
	}
	rt0 := rt.N()
	var next, errs atomic.Int64
	var maxLat atomic.Int64
	var wg sync.WaitGroup
	start := time.Now()
	for range conc {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1)) - 1
				if i >= total {
					return
				}
				t0 := time.Now()
				if err := op(i); err != nil {
					if errs.Add(1) == 1 {
						fmt.Printf("%s: first error: %v\n", name, err)
					}
				}
				d := int64(time.Since(t0))
				for m := maxLat.Load(); d > m && !maxLat.CompareAndSwap(m, d); m = maxLat.Load() {
				}
			}
		}()
	}
	wg.Wait()
	wall := time.Since(start)
	rts := rt.N() - rt0
	after, err := readStats(ctx, admin)
	if err != nil {
		return result{}, err
	}
	var parts []string
	for cmd, a := range after.perCmd {
		b := before.perCmd[cmd]
		if calls := a[0] - b[0]; calls*10 >= int64(total) && cmd != "info" {
			parts = append(parts, fmt.Sprintf("%s %.2f/op %.2f us", cmd, float64(calls)/float64(total), float64(a[1]-b[1])/float64(calls)))
		}
	}
	sort.Strings(parts)
	return result{
		breakdown: strings.Join(parts, ", "),
		name:      name, ops: int64(total), wall: wall, roundTrips: rts,
		evalCalls: after.evalCalls - before.evalCalls, evalUsec: after.evalUsec - before.evalUsec,
		cpuSec: after.cpu - before.cpu, maxLatency: time.Duration(maxLat.Load()), errs: errs.Load(),
	}, nil
}
