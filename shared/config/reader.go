package config

import (
	"fmt"
	"log/slog"
	"net"
	neturl "net/url"
	"strconv"
	"strings"
	"time"
)

// reader collects one error per bad variable so FromEnv can report them all at once.
type reader struct {
	getenv func(string) string
	local  bool
	errs   []error
	// optional are required variables that are not required here (QUEUES names the
	// projects and capacities).
	optional map[string]bool
}

// VarError is one bad variable, or one broken relation between two. FromEnv joins them
// (errors.Join); Variables lists their names.
type VarError struct {
	Name    string
	Other   string // the other variable of a broken relation (see Rules); "" for a bad value
	Problem string // never contains a secret value
}

func (e *VarError) Error() string { return e.Name + ": " + e.Problem }

// Variables returns the names of the variables an error from FromEnv complains about (both
// of a broken relation), each once, for a message that must not echo values (e.g. an HTTP
// answer).
func Variables(err error) []string {
	var out []string
	seen := map[string]bool{}
	note := func(name string) {
		if name != "" && !seen[name] {
			seen[name] = true
			out = append(out, name)
		}
	}
	var walk func(error)
	walk = func(err error) {
		if ve, ok := err.(*VarError); ok {
			note(ve.Name)
			note(ve.Other)
			return
		}
		switch u := err.(type) {
		case interface{ Unwrap() []error }:
			for _, e := range u.Unwrap() {
				walk(e)
			}
		case interface{ Unwrap() error }:
			if e := u.Unwrap(); e != nil {
				walk(e)
			}
		}
	}
	if err != nil {
		walk(err)
	}
	return out
}

func (r *reader) add(name, problem string) {
	r.errs = append(r.errs, &VarError{Name: name, Problem: problem})
}

func (r *reader) fail(name, format string, args ...any) {
	r.add(name, "want "+fmt.Sprintf(format, args...))
}

func (r *reader) failGot(name, got, format string, args ...any) {
	r.add(name, fmt.Sprintf("got %q, want %s", got, fmt.Sprintf(format, args...)))
}

func lookupVar(name string) (Var, bool) {
	for _, v := range Vars {
		if v.Name == name {
			return v, true
		}
	}
	return Var{}, false
}

// raw returns the variable's value, else its (local) default from Vars; ok is false when a
// required variable is missing (the error is recorded).
func (r *reader) raw(name string) (string, bool) {
	v, known := lookupVar(name)
	if !known {
		r.add(name, "read but not listed in config.Vars (a bug)")
		return "", false
	}
	s := strings.TrimSpace(r.getenv(name))
	if s == "" && r.local && v.Local != "" {
		s = v.Local
	}
	if s == "" {
		s = v.Default
	}
	if s == "" && v.Required && !r.local && !r.optional[name] {
		r.add(name, "required but not set ("+v.Meaning+")")
		return "", false
	}
	return s, true
}

// isSet reports whether the environment sets name (a default does not count): a derived
// value is computed only when its variable is not set.
func (r *reader) isSet(name string) bool {
	return strings.TrimSpace(r.getenv(name)) != ""
}

func (r *reader) str(name string) string {
	s, _ := r.raw(name)
	return s
}

// secret is str that never echoes the value in an error.
func (r *reader) secret(name string) string {
	s, ok := r.raw(name)
	if ok && s != "" && len(s) < 16 {
		r.fail(name, "at least 16 characters (got %d)", len(s))
		return ""
	}
	return s
}

func (r *reader) intRange(name string, lo, hi int) int {
	s, ok := r.raw(name)
	if !ok || s == "" {
		return 0
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < lo || n > hi {
		r.failGot(name, s, "an integer %d–%d", lo, hi)
		return 0
	}
	return n
}

// gcPercent reads Go's GOGC: a percentage, 10–10000, or off (-1).
func (r *reader) gcPercent(name string) int {
	s, ok := r.raw(name)
	if !ok || s == "" {
		return 0
	}
	if s == "off" {
		return -1
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 10 || n > 10_000 {
		r.failGot(name, s, "an integer 10–10000 or off")
		return 0
	}
	return n
}

func (r *reader) duration(name string, min time.Duration) time.Duration {
	s, ok := r.raw(name)
	if !ok || s == "" {
		return 0
	}
	d, err := time.ParseDuration(s)
	if err != nil || d < min {
		r.failGot(name, s, "a Go duration of at least %s (e.g. 30s, 1m30s)", min)
		return 0
	}
	return d
}

// zeroOrDuration is duration where 0 means "none".
func (r *reader) zeroOrDuration(name string, min time.Duration) time.Duration {
	if s, _ := r.raw(name); s == "0" {
		return 0
	}
	return r.duration(name, min)
}

// optDuration is duration where empty means "derive it" (0).
func (r *reader) optDuration(name string, min time.Duration) time.Duration {
	return r.duration(name, min)
}

func (r *reader) oneOf(name string, allowed ...string) string {
	s, ok := r.raw(name)
	if !ok {
		return ""
	}
	for _, a := range allowed {
		if strings.EqualFold(s, a) {
			return a
		}
	}
	r.failGot(name, s, "one of %s", strings.Join(allowed, ", "))
	return ""
}

// id accepts an empty optional value or 1–max of [A-Za-z0-9_.:-]; braces would break the
// Redis hash tag, so they are rejected too.
func (r *reader) id(name string, max int, form string) string {
	s, ok := r.raw(name)
	if !ok || s == "" {
		return s
	}
	if len(s) > max || !idChars(s) {
		r.failGot(name, s, "%s", form)
		return ""
	}
	return s
}

func idChars(s string) bool {
	for _, c := range s {
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9', c == '_', c == '.', c == ':', c == '-':
		default:
			return false
		}
	}
	return true
}

func (r *reader) hostPort(name string) string {
	s, ok := r.raw(name)
	if !ok || s == "" {
		return s
	}
	if r.checkHostPort(name, s, "") {
		return s
	}
	return ""
}

// hostPorts reads a comma-separated list of host[:port] (one or more), giving each address
// without a port defaultPort. It returns the raw value (trimmed) and the addresses.
func (r *reader) hostPorts(name, defaultPort string) (string, []string) {
	s, ok := r.raw(name)
	if !ok || s == "" {
		return s, nil
	}
	if strings.Contains(s, "@") {
		// Checked on the whole value first so that no part of a password is echoed.
		r.checkHostPort(name, s, "")
		return "", nil
	}
	parts := strings.Split(s, ",")
	var out []string
	for i, p := range parts {
		p = strings.TrimSpace(p)
		where := ""
		if len(parts) > 1 {
			where = fmt.Sprintf(" (address %d of %d)", i+1, len(parts))
		}
		if p == "" {
			r.failGot(name, s, "comma-separated host[:port] without empty items")
			return "", nil
		}
		if !r.checkHostPort(name, p, where) {
			return "", nil
		}
		if _, _, err := net.SplitHostPort(p); err != nil {
			p = net.JoinHostPort(strings.Trim(p, "[]"), defaultPort)
		}
		out = append(out, p)
	}
	return s, out
}

// checkHostPort records an error when s is not host[:port]; where says which item of a list
// it is. A value with credentials is never echoed.
func (r *reader) checkHostPort(name, s, where string) bool {
	if strings.Contains(s, "@") {
		// A URL with credentials (redis://user:password@host): the value must not be echoed.
		r.fail(name, "host[:port] without scheme, credentials or path (the value is not shown: it may hold a password)")
		return false
	}
	if strings.Contains(s, "://") || strings.ContainsAny(s, "/ ,") {
		r.failGot(name, s, "host[:port] without scheme or path%s", where)
		return false
	}
	if strings.Contains(s, ":") && !strings.HasSuffix(s, "]") {
		if _, port, err := net.SplitHostPort(s); err != nil || port == "" {
			r.failGot(name, s, "host[:port]%s", where)
			return false
		} else if p, err := strconv.Atoi(port); err != nil || p < 1 || p > 65535 {
			r.failGot(name, s, "host[:port] with a port 1–65535%s", where)
			return false
		}
	}
	return true
}

// rates parses "Action=rate,Action=rate".
func (r *reader) rates(name string) map[string]float64 {
	s, ok := r.raw(name)
	if !ok || s == "" {
		return nil
	}
	out := map[string]float64{}
	for _, part := range strings.Split(s, ",") {
		action, val, found := strings.Cut(strings.TrimSpace(part), "=")
		f, err := strconv.ParseFloat(strings.TrimSpace(val), 64)
		action = strings.TrimSpace(action)
		if !found || action == "" || !idChars(action) || err != nil || f <= 0 {
			r.failGot(name, s, "Action=rate[,Action=rate...] with rates > 0 per second")
			return nil
		}
		out[action] = f
	}
	return out
}

func (r *reader) logLevel(name string) slog.Level {
	s, ok := r.raw(name)
	if !ok {
		return slog.LevelInfo
	}
	var l slog.Level
	if err := l.UnmarshalText([]byte(s)); err != nil {
		r.failGot(name, s, "debug, info, warn or error")
		return slog.LevelInfo
	}
	return l
}

// lanes reads `name=weight,...`: names 1–32 of [a-z0-9_-], each once, weights 1–100 summing to
// at most 100 (the admission cycle), "default" among them. Empty: no lanes.
func (r *reader) lanes(name string) []Lane {
	s := r.str(name)
	if s == "" {
		return nil
	}
	const form = "name=weight,... with names 1–32 of [a-z0-9_-], each once, weights 1–100 summing to at most 100, and `default` among them"
	var out []Lane
	seen := map[string]bool{}
	sum := 0
	for _, part := range strings.Split(s, ",") {
		n, w, ok := strings.Cut(strings.TrimSpace(part), "=")
		weight, err := strconv.Atoi(w)
		if !ok || err != nil || weight < 1 || weight > 100 || !laneName(n) || seen[n] {
			r.failGot(name, s, form)
			return nil
		}
		seen[n] = true
		sum += weight
		out = append(out, Lane{Name: n, Weight: weight})
	}
	if !seen["default"] || sum > 100 {
		r.failGot(name, s, form)
		return nil
	}
	return out
}

func laneName(s string) bool {
	if len(s) < 1 || len(s) > 32 {
		return false
	}
	for _, c := range s {
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}

// timestamp reads an RFC 3339 time; zero when empty.
func (r *reader) timestamp(name string) time.Time {
	s := r.str(name)
	if s == "" {
		return time.Time{}
	}
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		r.failGot(name, s, "an RFC 3339 time such as 2026-12-24T20:00:00+08:00")
		return time.Time{}
	}
	return t
}

// url reads an absolute http or https URL; "" when empty.
func (r *reader) url(name string) string {
	s := r.str(name)
	if s == "" {
		return ""
	}
	u, err := neturl.Parse(s)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || len(s) > 2048 {
		r.fail(name, "an absolute http:// or https:// URL of at most 2048 characters")
		return ""
	}
	return s
}
