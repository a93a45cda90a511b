package main

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"regexp"
	"strings"
)

// envName is what a .env line may set: a shell-style variable name.
var envName = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

// dotenv is a parsed .env file: its values and the order they came in.
type dotenv struct {
	values map[string]string
	names  []string
}

// parseDotenv reads KEY=VALUE lines literally. The value is everything after the first '=',
// kept exactly as written: a '$', a quote, a '#', a space is part of it, because nothing
// evaluates the file (sourcing it in a shell would expand "$x" and strip quotes, so a secret
// containing them would deploy changed). Blank lines and lines starting with '#' are skipped;
// a trailing CR (a file saved on Windows) ends the line, it is not part of the value. Errors
// give the line number and the name, never the value (the file holds secrets).
func parseDotenv(r io.Reader) (dotenv, error) {
	d := dotenv{values: map[string]string{}}
	seen := map[string]int{}
	var errs []error
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64*1024), 1<<20)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSuffix(sc.Text(), "\r")
		trimmed := strings.TrimSpace(line)
		if trimmed == "" || strings.HasPrefix(trimmed, "#") {
			continue
		}
		name, value, found := strings.Cut(line, "=")
		switch {
		case !found:
			errs = append(errs, fmt.Errorf("line %d: want KEY=VALUE, found no '='", n))
			continue
		case strings.HasPrefix(name, "export "):
			errs = append(errs, fmt.Errorf("line %d: drop the 'export ' (the file is read as KEY=VALUE lines, not run by a shell)", n))
			continue
		case !envName.MatchString(name):
			errs = append(errs, fmt.Errorf("line %d: the name before '=' must be [A-Za-z_][A-Za-z0-9_]*, with no spaces around '='", n))
			continue
		}
		if first, dup := seen[name]; dup {
			errs = append(errs, fmt.Errorf("line %d: %s is already set on line %d", n, name, first))
			continue
		}
		seen[name] = n
		d.values[name] = value
		d.names = append(d.names, name)
	}
	if err := sc.Err(); err != nil {
		errs = append(errs, fmt.Errorf("read: %w", err))
	}
	if len(errs) > 0 {
		return dotenv{}, errors.Join(errs...)
	}
	return d, nil
}
