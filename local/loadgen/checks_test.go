package loadgen

import (
	"strings"
	"testing"
	"time"
)

var t0 = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)

func at(ms int) time.Time { return t0.Add(time.Duration(ms) * time.Millisecond) }

// line builds users in start order; claims[i] is user i's first claim (ms; -1: never).
func line(claims ...int) []*user {
	us := make([]*user, len(claims))
	for i, c := range claims {
		us[i] = &user{id: string(rune('a' + i)), idx: i, role: rolePlay}
		if c >= 0 {
			us[i].claimAt, us[i].readyAt = at(c), at(c)
		}
	}
	return us
}

func TestCheckFIFO(t *testing.T) {
	tests := []struct {
		name       string
		users      func() []*user
		violations int
		inversions int
	}{
		{"in order", func() []*user {
			us := line(100, 200, 300)
			us[2].waits = []waitObs{{at(50), 2}, {at(150), 1}}
			return us
		}, 0, 0},
		{"overtaken far back", func() []*user {
			us := line(900, 100)
			// b was admitted at 100 while a was still at Position 5 > capacity at 300.
			us[0].waits = []waitObs{{at(50), 1}, {at(300), 5}}
			return us
		}, 1, 1},
		{"requeued to the front after a CAR fault", func() []*user {
			us := line(900, 100)
			us[0].waits = []waitObs{{at(300), 1}} // back at the front: allowed
			return us
		}, 0, 1},
		{"far back only before the later user's claim", func() []*user {
			us := line(900, 500)
			us[0].waits = []waitObs{{at(300), 9}}
			return us
		}, 0, 1},
		{"quit while queued, never claimed", func() []*user {
			us := line(-1, 100, 200)
			us[0].waits = []waitObs{{at(50), 1}}
			return us
		}, 0, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v, inv, _ := checkFIFO(tt.users(), 4)
			if len(v) != tt.violations || inv != tt.inversions {
				t.Errorf("violations %q, inversions %d; want %d violations, %d inversions", v, inv, tt.violations, tt.inversions)
			}
		})
	}
}

func TestCheckFinal(t *testing.T) {
	const retention = time.Minute
	tests := []struct {
		outcome       string
		beats         int
		status, why   string
		leftAgo       time.Duration // before the final /poll
		wantViolation bool
		wantForgotten bool
	}{
		{outStopped, 3, "Expired", "stopped", time.Second, false, false},
		{outQuit, 0, "Expired", "stopped", time.Second, false, false},
		{outVanished, 2, "Expired", "heartbeat_timeout", time.Second, false, false},
		{outVanished, 0, "Expired", "never_started", time.Second, false, false},
		{outVanished, 2, "Expired", "never_started", time.Second, true, false},
		{outVanished, 0, "Ready", "", time.Second, true, false}, // never reclaimed
		{outStopped, 3, "Expired", "heartbeat_timeout", time.Second, true, false},
		{outStopped, 3, "Queued", "", time.Second, true, false},
		{outStopped, 3, "Expired", "", time.Second, true, false},     // reason lost too early
		{outStopped, 3, "Expired", "", 2 * time.Minute, false, true}, // forgotten after GONE_RETENTION
		{outVanished, 3, "Ready", "", 2 * time.Minute, true, false},  // still held: never forgiven
		{outLost, 1, "Expired", "idle", time.Second, false, false},   // reported by the user itself already
	}
	for _, tt := range tests {
		u := &user{id: "u", started: true, outcome: tt.outcome, beats: tt.beats, finalStatus: tt.status, finalReason: tt.why,
			leftAt: t0, finalSent: t0.Add(tt.leftAgo)}
		got, forgotten := checkFinal(u, retention)
		if (len(got) > 0) != tt.wantViolation || forgotten != tt.wantForgotten {
			t.Errorf("%s (%d beats) %s ago, final %s/%s: violations %q forgotten %v, want violation %v forgotten %v",
				tt.outcome, tt.beats, tt.leftAgo, tt.status, tt.why, got, forgotten, tt.wantViolation, tt.wantForgotten)
		}
	}
}

func TestSummarize(t *testing.T) {
	var ds []time.Duration
	for i := 100; i >= 1; i-- {
		ds = append(ds, time.Duration(i)*time.Millisecond)
	}
	got := summarize(ds)
	want := Latency{N: 100, P50: 50 * time.Millisecond, P90: 90 * time.Millisecond, P95: 95 * time.Millisecond, P99: 99 * time.Millisecond, Max: 100 * time.Millisecond}
	if got != want {
		t.Errorf("summarize = %+v, want %+v", got, want)
	}
	if got := summarize(nil); got != (Latency{}) {
		t.Errorf("summarize(nil) = %+v, want zero", got)
	}
}

func TestMakeUsersCastsRoles(t *testing.T) {
	cfg, err := Config{BaseURL: "http://x", Users: 100, Vanish: 0.1, Reconnect: 0.2, QuitQueued: 0.05, Play: time.Second}.withDefaults()
	if err != nil {
		t.Fatal(err)
	}
	us := makeUsers(cfg, 7, "p", nil)
	count := map[role]int{}
	atOnce := 0
	for i, u := range us {
		count[u.role]++
		if u.idx != i || u.play < cfg.Play/2 || u.play > cfg.Play*3/2 {
			t.Errorf("user %d: idx %d play %s, want idx %d and play in [Play/2, 3·Play/2]", i, u.idx, u.play, i)
		}
		if u.atOnce {
			atOnce++
		}
	}
	if count[roleVanish] != 10 || count[roleReconnect] != 20 || count[roleQuitQueued] != 5 || count[rolePlay] != 65 || atOnce != 5 {
		t.Errorf("roles %v, %d vanish at once; want 10/20/5/65 and half the vanishers at once", count, atOnce)
	}
	again := makeUsers(cfg, 7, "p", nil)
	for i := range us {
		if us[i].role != again[i].role || us[i].play != again[i].play {
			t.Fatalf("same seed cast user %d differently", i)
		}
	}
}

func TestConfigValidation(t *testing.T) {
	_, err := Config{BaseURL: "localhost:8080", Users: -1, Vanish: 0.7, Reconnect: 0.5, Play: -time.Second}.withDefaults()
	if err == nil {
		t.Fatal("want an error")
	}
	for _, want := range []string{"BaseURL", "Users", "Vanish+Reconnect+QuitQueued", "Play"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not name %s", err, want)
		}
	}
}
