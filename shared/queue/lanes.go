package queue

import (
	"fmt"
	"regexp"
	"strings"
)

// Priority lanes (API.md "Priority lanes"). Each lane is a line of its own, ordered by join
// score like the one line of a queue without lanes; the default lane is that line itself, so
// a queue that gains lanes keeps its users and tickets. Admission follows a fixed cycle of
// turns in which each lane has Weight turns, spread evenly (smooth weighted round robin: for
// vip=3,default=1 the cycle is vip vip default vip), from a pointer kept in the cfg hash
// (field lanep). A turn whose lane is empty is skipped and the pointer moves past it.
//
// That makes a position exact and cheap. From the pointer, the user at rank r (0-based) of
// lane L is admitted at L's (r+1)-th turn; before it, every other lane M gets its turns in
// that stretch of the cycle, or as many users as it has if fewer:
//
//	position = 1 + r + Σ_{M≠L} min(len(M), turns of M before L's (r+1)-th turn)
//
// because a lane that runs empty only loses turns, never reorders the others. Nobody joining,
// that is exactly the number admitted before the user, plus one. A poll is still one script:
// a ZRANK per lane until the user's lane is found, a ZCARD per other lane, and arithmetic
// over the cycle (at most MaxLaneTurns turns).

// MaxLaneTurns bounds the sum of a queue's lane weights: the length of the admission cycle
// every position computation walks.
const MaxLaneTurns = 100

var laneNamePattern = regexp.MustCompile(`^[a-z0-9_-]{1,32}$`)

// checkLanes validates a queue's lanes: names unique and well formed, weights 1-100 summing to
// at most MaxLaneTurns, DefaultLane among them.
func checkLanes(lanes []Lane) error {
	if len(lanes) == 0 {
		return nil
	}
	seen := map[string]bool{}
	sum := 0
	for i, l := range lanes {
		if !laneNamePattern.MatchString(l.Name) {
			return fmt.Errorf("lane %d: name %q must be 1-32 chars of [a-z0-9_-]: %w", i+1, l.Name, ErrInvalid)
		}
		if seen[l.Name] {
			return fmt.Errorf("lane %q appears twice: %w", l.Name, ErrInvalid)
		}
		seen[l.Name] = true
		if l.Weight < 1 || l.Weight > 100 {
			return fmt.Errorf("lane %q: weight %d must be 1-100: %w", l.Name, l.Weight, ErrInvalid)
		}
		sum += l.Weight
	}
	if !seen[DefaultLane] {
		return fmt.Errorf("lanes must include %q (users without a grant): %w", DefaultLane, ErrInvalid)
	}
	if sum > MaxLaneTurns {
		return fmt.Errorf("lane weights sum to %d, at most %d allowed: %w", sum, MaxLaneTurns, ErrInvalid)
	}
	return nil
}

// laneOrder puts the default lane first (it is the line, LANES[1] in the scripts) and the
// others in their configured order.
func laneOrder(lanes []Lane) []Lane {
	out := make([]Lane, 0, len(lanes))
	for _, l := range lanes {
		if l.Name == DefaultLane {
			out = append(out, l)
		}
	}
	for _, l := range lanes {
		if l.Name != DefaultLane {
			out = append(out, l)
		}
	}
	return out
}

// laneCycle is the admission cycle of lanes (in laneOrder) as the scripts read it: one byte
// per turn, '1' + the lane's index. Smooth weighted round robin spreads each lane's turns; on
// a tie the heavier lane goes first.
// Without lanes it is "1": every turn the one line's.
func laneCycle(lanes []Lane) string {
	if len(lanes) == 0 {
		return "1"
	}
	total := 0
	for _, l := range lanes {
		total += l.Weight
	}
	cur := make([]int, len(lanes))
	var b strings.Builder
	for range total {
		best := 0
		for i, l := range lanes {
			cur[i] += l.Weight
			if cur[i] > cur[best] || (cur[i] == cur[best] && l.Weight > lanes[best].Weight) {
				best = i
			}
		}
		cur[best] -= total
		b.WriteByte(byte('1' + best))
	}
	return b.String()
}

// laneIndex is the 1-based index of a lane in laneOrder, 1 (default) for "" or a lane the
// queue does not have.
func (q *Queue) laneIndex(name string) int {
	for i, l := range q.lanes {
		if l.Name == name {
			return i + 1
		}
	}
	return 1
}

// HasLane reports whether the queue has a lane of that name (DefaultLane always).
func (q *Queue) HasLane(name string) bool {
	if name == DefaultLane {
		return true
	}
	for _, l := range q.lanes {
		if l.Name == name {
			return true
		}
	}
	return false
}
