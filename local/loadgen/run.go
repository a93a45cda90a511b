package loadgen

import (
	"context"
	crand "crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
	"sync"
	"time"
)

// ErrViolations is returned (wrapped) by Run when the Report lists violations.
var ErrViolations = errors.New("loadgen: the system broke a promise of the contract")

// Run drives the system at cfg.BaseURL with cfg.Users simulated users and checks it. The
// Report is filled whenever the run got going; the error is a configuration or connection
// problem, or wraps ErrViolations when Report.Violations is not empty.
func Run(ctx context.Context, cfg Config) (Report, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return Report{}, fmt.Errorf("loadgen config: %w", err)
	}
	seed := cfg.Seed
	if seed == 0 {
		var b [8]byte
		_, _ = crand.Read(b[:])
		seed = binary.LittleEndian.Uint64(b[:]) | 1
	}
	prefix := cfg.UserPrefix
	if prefix == "" {
		var b [4]byte
		_, _ = crand.Read(b[:])
		prefix = "lg" + hex.EncodeToString(b[:])
	}
	m := newMetrics()
	c := &client{bases: append([]string{cfg.BaseURL}, cfg.MoreURLs...), emu: cfg.EmulatorURL, token: cfg.AdminToken,
		http: cfg.HTTPClient, m: m, maxDelay: cfg.MaxRetryDelay}
	s := &sampler{c: c}
	if err := probe(ctx, c); err != nil {
		return Report{}, err
	}
	users := makeUsers(cfg, seed, prefix, c)

	sampCtx, stopSampler := context.WithCancel(ctx)
	var sampWG sync.WaitGroup
	sampWG.Add(1)
	go func() { defer sampWG.Done(); s.loop(sampCtx, cfg.SampleInterval) }()
	defer func() { stopSampler(); sampWG.Wait() }()

	begin := time.Now()
	runCtx, cancelRun := context.WithTimeout(ctx, cfg.Timeout)
	var wg sync.WaitGroup
	for i, u := range users {
		a, err := u.start(runCtx)
		if err != nil {
			u.fail(err)
			continue
		}
		wg.Add(1)
		go func() { defer wg.Done(); u.run(runCtx, a) }()
		if (i+1)%100 == 0 {
			cfg.Logf("loadgen: %d/%d users started", i+1, len(users))
		}
		sleep(runCtx, cfg.Stagger)
	}
	cfg.Logf("loadgen: all %d users started after %s; waiting for them to finish", len(users), time.Since(begin).Round(time.Millisecond))
	wg.Wait()
	cancelRun()
	usersDone := time.Now()

	cfg.Logf("loadgen: users done after %s; waiting for the reaper and the emulator's clean-up", usersDone.Sub(begin).Round(time.Millisecond))
	var violations []string
	drained, left := drain(ctx, s, cfg.DrainTimeout)
	if !drained {
		violations = append(violations, fmt.Sprintf("leak: not drained %s after the last user finished: %s", cfg.DrainTimeout, left))
	}
	end := time.Now()
	finals(ctx, users)
	stopSampler()
	sampWG.Wait()

	r := buildReport(cfg, users, s, m, begin, usersDone, end, drained)
	r.Violations = append(r.Violations, violations...)
	if len(r.Violations) > 0 {
		return r, fmt.Errorf("%d violations: %w", len(r.Violations), ErrViolations)
	}
	return r, nil
}

// probe checks the base URL answers the contract and the admin token is accepted.
func probe(ctx context.Context, c *client) error {
	var env struct{ Data stats }
	if c.token != "" {
		if code, err := c.get(ctx, "stats", true, &env); err != nil {
			if code == http.StatusUnauthorized {
				return fmt.Errorf("loadgen: /stats rejected the admin token: %w", err)
			}
			return fmt.Errorf("loadgen: %v does not answer /stats: %w", c.bases, err)
		}
		if env.Data.Capacity <= 0 {
			return fmt.Errorf("loadgen: /stats at %v shows no Capacity", c.bases)
		}
	}
	return nil
}

// makeUsers assigns roles (a seeded shuffle, so a seed repeats a run's cast) and play times.
func makeUsers(cfg Config, seed uint64, prefix string, c *client) []*user {
	n := cfg.Users
	rnd := rand.New(rand.NewPCG(seed, 0))
	roles := make([]role, n)
	k := 0
	for _, rc := range []struct {
		r role
		f float64
	}{{roleVanish, cfg.Vanish}, {roleReconnect, cfg.Reconnect}, {roleQuitQueued, cfg.QuitQueued}} {
		for j := 0; j < int(rc.f*float64(n)+0.5) && k < n; j++ {
			roles[k] = rc.r
			k++
		}
	}
	for ; k < n; k++ {
		roles[k] = rolePlay
	}
	rnd.Shuffle(n, func(i, j int) { roles[i], roles[j] = roles[j], roles[i] })
	users := make([]*user, n)
	vanishers := 0
	for i := range users {
		u := &user{
			id: fmt.Sprintf("%s-%d", prefix, i), cs: fmt.Sprintf("cs-%s-%d", prefix, i), idx: i, role: roles[i],
			play:     cfg.Play/2 + time.Duration(rnd.Int64N(int64(cfg.Play)+1)),
			quitPoll: 1 + rnd.IntN(3),
			rnd:      rand.New(rand.NewPCG(seed, uint64(i)+1)),
			c:        c, cfg: cfg,
		}
		if u.role == roleVanish {
			u.atOnce = vanishers%2 == 0
			vanishers++
		}
		users[i] = u
	}
	return users
}

// drain samples until the system is empty or the timeout passes.
func drain(ctx context.Context, s *sampler, timeout time.Duration) (bool, string) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	for {
		s.sample(ctx)
		ok, left := s.drained()
		if ok && ctx.Err() == nil {
			return true, ""
		}
		if !sleep(ctx, 200*time.Millisecond) {
			return false, left
		}
	}
}

// finals asks the server about every user, a few at a time.
func finals(ctx context.Context, users []*user) {
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	work := make(chan *user)
	var wg sync.WaitGroup
	for range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for u := range work {
				u.final(ctx)
			}
		}()
	}
	for _, u := range users {
		work <- u
	}
	close(work)
	wg.Wait()
}
