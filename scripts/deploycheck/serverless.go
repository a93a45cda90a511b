package main

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// Function names, as under functions/ and in serverless.yml.
var (
	httpFunctions  = []string{"start", "poll", "heartbeat", "reconnect", "stop", "stats", "admin"}
	reaperFunction = "reaper-cron"
	allFunctions   = append(append([]string{}, httpFunctions...), reaperFunction)
)

// scfDefaultTimeout is SCF's function timeout when none is configured.
const scfDefaultTimeout = 3 * time.Second

// functionTimeouts reads the timeout of every function from serverless.yml: a function's own
// `timeout:` (seconds) under inputs.functions.<name>, else the `timeout:` of inputs, else SCF's
// default. It reads the file's fixed layout (two-space indentation, as the repository's file
// and its test keep it) rather than YAML in general, which is enough and needs no dependency.
func functionTimeouts(yml string) (map[string]time.Duration, error) {
	var inputs time.Duration
	own := map[string]time.Duration{}
	section, fn := "", "" // the key at indentation 0 and 4 (under inputs.functions)
	inFunctions := false
	for n, line := range strings.Split(yml, "\n") {
		trimmed := strings.TrimSpace(line)
		if trimmed == "" || strings.HasPrefix(trimmed, "#") {
			continue
		}
		indent := len(line) - len(strings.TrimLeft(line, " "))
		key, value, _ := strings.Cut(trimmed, ":")
		value = strings.TrimSpace(value)
		switch indent {
		case 0:
			section, inFunctions = key, false
			continue
		case 2:
			inFunctions = section == "inputs" && key == "functions"
			fn = ""
		case 4:
			if inFunctions {
				fn = key
			}
		}
		if key != "timeout" || section != "inputs" {
			continue
		}
		secs, err := strconv.Atoi(value)
		if err != nil || secs < 1 {
			return nil, fmt.Errorf("serverless.yml line %d: timeout %q: want whole seconds > 0", n+1, value)
		}
		d := time.Duration(secs) * time.Second
		switch {
		case indent == 2:
			inputs = d
		case indent == 6 && inFunctions && fn != "":
			own[fn] = d
		}
	}
	out := map[string]time.Duration{}
	for _, f := range allFunctions {
		switch {
		case own[f] > 0:
			out[f] = own[f]
		case inputs > 0:
			out[f] = inputs
		default:
			out[f] = scfDefaultTimeout
		}
	}
	return out, nil
}

// envRefs lists the ${env:NAME} references of serverless.yml outside comments, each once.
func envRefs(yml string) []string {
	var out []string
	seen := map[string]bool{}
	re := regexp.MustCompile(`\$\{env:([A-Za-z0-9_]+)\}`)
	for _, line := range strings.Split(yml, "\n") {
		if strings.HasPrefix(strings.TrimSpace(line), "#") {
			continue
		}
		for _, m := range re.FindAllStringSubmatch(line, -1) {
			if !seen[m[1]] {
				seen[m[1]] = true
				out = append(out, m[1])
			}
		}
	}
	return out
}
