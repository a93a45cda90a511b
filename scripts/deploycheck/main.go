// Command deploycheck is the configuration gate of scripts/deploy.sh: it checks the functions'
// environment with the functions' own parser (config.FromEnv, production mode) and the rules
// that need the function timeouts against those of serverless.yml, before anything is built or
// deployed, and then runs the Serverless CLI with exactly the environment it checked.
//
//	deploycheck check            check, print the problems (names only, never values); exit 2 on any
//	deploycheck deploy [cmd...]  check, then (unless DRY_RUN=1) run cmd (default: $SLS, sls or scf, with "deploy")
//
// The environment is the process's, overlaid by an untracked .env (flag -env-file) read
// literally as KEY=VALUE lines: nothing evaluates it, so a '$', a quote or a space in a value
// deploys as written. A .env value wins over the process's, so a REDIS_ADDR exported for the
// tests cannot slip into a deployment; the names it overrides are reported.
//
// Its tests also check that the deployment files (serverless.yml, scripts/build.sh,
// scripts/deploy.sh, the function mains and their event fixtures, docs/API.md) agree with the
// code, so a new configuration variable or function cannot be forgotten at deploy time.
package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"time"

	"github.com/carqueue/carqueue/shared/config"
)

// Deployment-level variables: serverless.yml reads them, the functions do not.
var (
	// deployRequired must be set: without them the functions cannot reach Redis (the VPC), run
	// (the role), or be looked at after the deployment (/stats needs ADMIN_TOKEN).
	deployRequired = []struct{ name, what string }{
		{"VPC_ID", "the VPC of the Redis instance"},
		{"SUBNET_ID", "a subnet of that VPC"},
		{"SCF_ROLE", "the functions' execution role (docs/DEPLOY.md, section 2)"},
		{"ADMIN_TOKEN", "the /stats bearer token, which the checks after a deployment need"},
	}
	// deployDefaults apply when neither the environment nor .env sets them.
	deployDefaults = []struct{ name, value string }{{"STAGE", "prod"}, {"REGION", "ap-guangzhou"}}
	stagePattern   = regexp.MustCompile(`^[A-Za-z0-9_-]{1,20}$`)
	regionPattern  = regexp.MustCompile(`^[a-z]{2,}(-[a-z0-9]+)+$`)
)

// secretNames are never printed, even by accident (see redact): the functions' secrets and
// the deployer's own keys, which a .env may hold for the CLI.
var secretNames = []string{
	"TICKET_SECRET", "TICKET_SECRET_PREVIOUS", "ADMIN_TOKEN", "REDIS_PASSWORD", "REDIS_SENTINEL_PASSWORD",
	"TENCENT_SECRET_ID", "TENCENT_SECRET_KEY", "TENCENT_TOKEN",
	"TENCENTCLOUD_SECRETID", "TENCENTCLOUD_SECRETKEY", "TENCENTCLOUD_SESSIONTOKEN",
}

func main() {
	os.Exit(run(os.Args[1:], os.Environ(), os.Stdout, os.Stderr))
}

// environment is what the functions and the CLI get: the process's variables overlaid by .env.
type environment struct {
	values     map[string]string
	fromFile   []string // names .env sets
	overridden []string // of them, names the process also set (the .env value wins)
}

func (e environment) get(name string) string { return e.values[name] }

// list renders the environment for a child process, sorted for a stable order.
func (e environment) list() []string {
	out := make([]string, 0, len(e.values))
	for k, v := range e.values {
		out = append(out, k+"="+v)
	}
	sort.Strings(out)
	return out
}

// run is the command; it returns the exit status: 0 fine, 2 a configuration or usage problem,
// 1 anything else, or the deploy command's own status.
func run(args, environ []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("deploycheck", flag.ContinueOnError)
	fs.SetOutput(stderr)
	root := fs.String("root", ".", "repository root (serverless.yml lives there)")
	envFile := fs.String("env-file", ".env", "the untracked KEY=VALUE file; a missing file is fine")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	mode, rest := fs.Arg(0), fs.Args()[min(1, fs.NArg()):]
	if mode != "check" && mode != "deploy" || (mode == "check" && len(rest) > 0) {
		fmt.Fprintln(stderr, "usage: deploycheck [-root DIR] [-env-file FILE] check | deploy [command args...]")
		return 2
	}
	ymlBytes, err := os.ReadFile(filepath.Join(*root, "serverless.yml"))
	if err != nil {
		fmt.Fprintf(stderr, "deploycheck: %v\n", err)
		return 1
	}
	yml := string(ymlBytes)
	envPath := *envFile
	if !filepath.IsAbs(envPath) {
		envPath = filepath.Join(*root, envPath)
	}
	env, err := load(environ, envPath)
	if err != nil {
		fmt.Fprintf(stderr, "deploycheck: %s: %v\n", *envFile, err)
		return 2
	}
	dryRun, problems := check(env, yml)
	if len(problems) > 0 {
		fmt.Fprintf(stderr, "deploycheck: the functions would refuse this configuration (environment and %s):\n", *envFile)
		for _, p := range problems {
			fmt.Fprintf(stderr, "  %s\n", redact(p, env))
		}
		return 2
	}
	if len(env.overridden) > 0 {
		fmt.Fprintf(stdout, "deploycheck: %s overrides the environment for %s\n", *envFile, strings.Join(env.overridden, ", "))
	}
	fmt.Fprintf(stdout, "deploycheck: configuration checked (config.FromEnv and serverless.yml's timeouts; %d variables from %s)\n",
		len(env.fromFile), *envFile)
	if mode == "check" {
		return 0
	}
	if dryRun {
		fmt.Fprintln(stdout, "deploycheck: DRY_RUN=1: checked and built, not deploying")
		return 0
	}
	return deploy(env, yml, rest, stdout, stderr)
}

// load builds the environment from the process's variables and the .env file, if any.
func load(environ []string, envFile string) (environment, error) {
	e := environment{values: map[string]string{}}
	for _, kv := range environ {
		if k, v, ok := strings.Cut(kv, "="); ok {
			e.values[k] = v
		}
	}
	f, err := os.Open(envFile)
	if errors.Is(err, os.ErrNotExist) {
		return e, nil
	}
	if err != nil {
		return e, err
	}
	defer f.Close()
	d, err := parseDotenv(f)
	if err != nil {
		return e, err
	}
	for _, name := range d.names {
		if _, set := e.values[name]; set {
			e.overridden = append(e.overridden, name)
		}
		e.values[name] = d.values[name]
	}
	e.fromFile = d.names
	return e, nil
}

// check returns whether this is a dry run and every problem, each a line naming its
// variable. Values appear only where shared/config shows them (never a secret's).
func check(env environment, yml string) (dryRun bool, problems []string) {
	switch env.get("DRY_RUN") {
	case "", "0":
	case "1":
		dryRun = true
	default:
		problems = append(problems, fmt.Sprintf("DRY_RUN: got %q, want 1 (check and build only) or 0 / unset (deploy)", env.get("DRY_RUN")))
	}
	for _, v := range deployRequired {
		if strings.TrimSpace(env.get(v.name)) == "" {
			problems = append(problems, fmt.Sprintf("%s: required at deploy time (%s)", v.name, v.what))
		}
	}
	if s := env.get("STAGE"); s != "" && !stagePattern.MatchString(s) {
		problems = append(problems, fmt.Sprintf("STAGE: got %q, want 1–20 of [A-Za-z0-9_-] (it is part of every function name)", s))
	}
	if s := env.get("REGION"); s != "" && !regionPattern.MatchString(s) {
		problems = append(problems, fmt.Sprintf("REGION: got %q, want a region id such as ap-guangzhou", s))
	}

	// The functions' own check, exactly as a cold start runs it on SCF.
	cfg, err := config.FromEnv(env.get, false)
	if err != nil {
		return dryRun, append(problems, lines(err)...)
	}
	timeouts, err := functionTimeouts(yml)
	if err != nil {
		return dryRun, append(problems, err.Error())
	}
	// The strictest HTTP function decides: every one of them may admit (/start, /reconnect) or
	// must at least answer within its own timeout.
	http, httpFrom := time.Duration(0), ""
	for _, f := range httpFunctions {
		if http == 0 || timeouts[f] < http {
			http, httpFrom = timeouts[f], "serverless.yml ("+f+")"
		}
	}
	err = config.CheckTimeouts(cfg, config.FunctionTimeouts{
		HTTP: http, HTTPFrom: httpFrom,
		Reaper: timeouts[reaperFunction], ReaperFrom: "serverless.yml (" + reaperFunction + ")",
	})
	if err != nil {
		problems = append(problems, lines(err)...)
	}
	return dryRun, problems
}

// lines splits a joined error into one problem per line.
func lines(err error) []string {
	return strings.Split(err.Error(), "\n")
}

// redact replaces any secret value that a message might still contain: shared/config never
// echoes one, and this makes sure of it whatever a future message says.
func redact(msg string, env environment) string {
	for _, name := range secretNames {
		if v := strings.TrimSpace(env.get(name)); len(v) >= 4 {
			msg = strings.ReplaceAll(msg, v, "("+name+")")
		}
	}
	return msg
}

// deploy runs the Serverless CLI with the checked environment, plus the deployment defaults
// and an empty value for every ${env:NAME} of serverless.yml left unset (empty means the
// functions' built-in default; an undefined one would stop the CLI).
func deploy(env environment, yml string, command []string, stdout, stderr io.Writer) int {
	for _, d := range deployDefaults {
		if env.get(d.name) == "" {
			env.values[d.name] = d.value
		}
	}
	for _, name := range envRefs(yml) {
		if _, set := env.values[name]; !set {
			env.values[name] = ""
		}
	}
	if len(command) == 0 {
		cli := env.get("SLS")
		for _, c := range []string{"sls", "scf"} {
			if cli != "" {
				break
			}
			if _, err := exec.LookPath(c); err == nil {
				cli = c
			}
		}
		if cli == "" {
			fmt.Fprintln(stderr, "deploycheck: install the Serverless CLI (npm i -g serverless-cloud-framework, or serverless), or set SLS")
			return 2
		}
		command = []string{cli, "deploy"}
	}
	cmd := exec.Command(command[0], command[1:]...)
	cmd.Env = env.list()
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, stdout, stderr
	err := cmd.Run()
	var exit *exec.ExitError
	switch {
	case err == nil:
		return 0
	case errors.As(err, &exit):
		return exit.ExitCode()
	default:
		fmt.Fprintf(stderr, "deploycheck: run %s: %v\n", command[0], err)
		return 1
	}
}
