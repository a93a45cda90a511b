package main

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// The secrets of the test environments: none may ever be printed.
const (
	ticketSecret = `t1cket-$ecret "with" spaces`
	adminToken   = "adm1n-t0ken-value"
	redisPass    = "redis-pa55word"
)

// goodEnv is a complete deployment environment, as KEY=VALUE lines.
func goodEnv() map[string]string {
	return map[string]string{
		"REDIS_ADDR": "10.0.0.12:6379", "REDIS_PASSWORD": redisPass, "CAR_PROJECT_ID": "cap-abc",
		"CAPACITY": "20", "TICKET_SECRET": ticketSecret, "ADMIN_TOKEN": adminToken,
		"VPC_ID": "vpc-1", "SUBNET_ID": "subnet-1", "SCF_ROLE": "carqueue-role",
	}
}

// repo makes a directory with the repository's serverless.yml and, when dotenv is non-nil, a
// .env holding it.
func repo(t *testing.T, dotenv map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	yml, err := os.ReadFile(filepath.Join(root, "serverless.yml"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "serverless.yml"), yml, 0o600); err != nil {
		t.Fatal(err)
	}
	if dotenv != nil {
		var b strings.Builder
		b.WriteString("# deployment settings\n\n")
		for k, v := range dotenv {
			b.WriteString(k + "=" + v + "\n")
		}
		if err := os.WriteFile(filepath.Join(dir, ".env"), []byte(b.String()), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func environ(m map[string]string) []string {
	var out []string
	for k, v := range m {
		out = append(out, k+"="+v)
	}
	return out
}

func runCheck(t *testing.T, args []string, env []string) (code int, stdout, stderr string) {
	t.Helper()
	var o, e bytes.Buffer
	code = run(args, env, &o, &e)
	all := o.String() + e.String()
	for _, s := range []string{ticketSecret, adminToken, redisPass} {
		if strings.Contains(all, s) {
			t.Errorf("output shows a secret value:\n%s", all)
		}
	}
	return code, o.String(), e.String()
}

func TestCheckAcceptsAGoodConfiguration(t *testing.T) {
	// From .env alone, and from the environment alone.
	code, out, errOut := runCheck(t, []string{"-root", repo(t, goodEnv()), "check"}, nil)
	if code != 0 || !strings.Contains(out, "configuration checked") || !strings.Contains(out, "9 variables from .env") {
		t.Fatalf("exit %d\n%s%s", code, out, errOut)
	}
	code, out, errOut = runCheck(t, []string{"-root", repo(t, nil), "check"}, environ(goodEnv()))
	if code != 0 {
		t.Fatalf("exit %d\n%s%s", code, out, errOut)
	}
}

// Every problem is named, at once, with exit status 2 and no value of a secret.
func TestCheckNamesWhatIsWrong(t *testing.T) {
	for _, tc := range []struct {
		name   string
		change map[string]string // "" deletes
		want   []string
	}{
		{"deployment variables", map[string]string{"VPC_ID": "", "SCF_ROLE": "", "ADMIN_TOKEN": ""},
			[]string{"VPC_ID: required at deploy time", "SCF_ROLE: required at deploy time", "ADMIN_TOKEN: required at deploy time"}},
		{"required by the functions", map[string]string{"CAR_PROJECT_ID": "", "CAPACITY": "-1"},
			[]string{"CAR_PROJECT_ID: required but not set", `CAPACITY: got "-1"`}},
		{"short secret", map[string]string{"TICKET_SECRET": "$hort"},
			[]string{"TICKET_SECRET: want at least 16 characters (got 5)"}},
		{"the issue: idle timeout with an explicit poll cap", map[string]string{"QUEUE_IDLE_TIMEOUT": "60s", "POLL_MAX_INTERVAL": "30s"},
			[]string{"POLL_MAX_INTERVAL: got 30s, want at most QUEUE_IDLE_TIMEOUT/2.4 (25s)"}},
		{"a rule", map[string]string{"CLAIM_LEASE": "10s"},
			[]string{"CLAIM_LEASE: got 10s, want at least CAR_LOCK_TTL (30s)"}},
		{"reaper run against serverless.yml's reaper timeout", map[string]string{"REAPER_RUN_TIME": "56s"},
			[]string{"REAPER_RUN_TIME: got 56s, want at most the reaper function timeout 1m0s (serverless.yml (reaper-cron)) − 5s = 55s"}},
		{"admission against serverless.yml's HTTP timeout", map[string]string{"CAR_LOCK_TTL": "40s", "CLAIM_LEASE": "40s"},
			[]string{"CAR_LOCK_TTL: got 40s, want at most (the HTTP function timeout 30s, serverless.yml (start), − 5s) × 6/5 = 30s"}},
		{"dry run value", map[string]string{"DRY_RUN": "yes"},
			[]string{`DRY_RUN: got "yes", want 1`}},
		{"stage", map[string]string{"STAGE": "prod env"},
			[]string{`STAGE: got "prod env"`}},
		{"password in the address", map[string]string{"REDIS_ADDR": "redis://:" + redisPass + "@10.0.0.12:6379"},
			[]string{"REDIS_ADDR: want host[:port]"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			env := goodEnv()
			for k, v := range tc.change {
				if v == "" {
					delete(env, k)
				} else {
					env[k] = v
				}
			}
			code, out, errOut := runCheck(t, []string{"-root", repo(t, env), "check"}, nil)
			if code != 2 {
				t.Fatalf("exit %d, want 2\n%s%s", code, out, errOut)
			}
			for _, w := range tc.want {
				if !strings.Contains(errOut, w) {
					t.Errorf("stderr lacks %q:\n%s", w, errOut)
				}
			}
		})
	}
}

// A .env with a broken line stops everything, naming the line and not its value.
func TestCheckBadDotenv(t *testing.T) {
	dir := repo(t, nil)
	if err := os.WriteFile(filepath.Join(dir, ".env"), []byte("TICKET_SECRET = "+ticketSecret+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	code, _, errOut := runCheck(t, []string{"-root", dir, "check"}, environ(goodEnv()))
	if code != 2 || !strings.Contains(errOut, ".env: line 1: the name before '='") {
		t.Fatalf("exit %d\n%s", code, errOut)
	}
}

// .env wins over the environment, and says which names it overrides (never the values).
func TestDotenvOverridesTheEnvironment(t *testing.T) {
	env := goodEnv()
	env["REDIS_ADDR"] = "127.0.0.1:6379" // exported for the tests, say
	code, out, errOut := runCheck(t, []string{"-root", repo(t, map[string]string{"REDIS_ADDR": "10.0.0.99:6379"}), "check"}, environ(env))
	if code != 0 || !strings.Contains(out, ".env overrides the environment for REDIS_ADDR") || strings.Contains(out, "10.0.0.99") {
		t.Fatalf("exit %d\n%s%s", code, out, errOut)
	}
}

// deploy runs the command with exactly the checked environment: .env values literally, the
// deployment defaults, and every ${env:NAME} of serverless.yml defined.
func TestDeployRunsTheCommandWithTheCheckedEnvironment(t *testing.T) {
	if _, err := exec.LookPath("sh"); err != nil {
		t.Skip("no sh")
	}
	dir := repo(t, goodEnv())
	out := filepath.Join(t.TempDir(), "env")
	script := `{ printf '%s\n' "$TICKET_SECRET" "$STAGE" "$REGION" "${CAR_RUN_MODE-undefined}" "${REAPER_MAX_BATCHES-undefined}"; } > "$0"`
	code, stdout, stderr := runCheck(t, []string{"-root", dir, "deploy", "sh", "-c", script, out}, []string{"PATH=" + os.Getenv("PATH")})
	if code != 0 {
		t.Fatalf("exit %d\n%s%s", code, stdout, stderr)
	}
	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	if want := ticketSecret + "\nprod\nap-guangzhou\n\n\n"; string(b) != want {
		t.Errorf("the command saw %q, want %q", b, want)
	}
	// Its exit status is deploy's.
	code, _, _ = runCheck(t, []string{"-root", dir, "deploy", "sh", "-c", "exit 7"}, []string{"PATH=" + os.Getenv("PATH")})
	if code != 7 {
		t.Errorf("exit %d, want the command's 7", code)
	}
}

func TestDryRun(t *testing.T) {
	for _, tc := range []struct {
		value  string
		deploy bool
	}{{"1", false}, {"0", true}, {"", true}} {
		env := goodEnv()
		env["DRY_RUN"] = tc.value
		marker := filepath.Join(t.TempDir(), "deployed")
		code, out, errOut := runCheck(t, []string{"-root", repo(t, env), "deploy", "sh", "-c", `touch "$0"`, marker}, []string{"PATH=" + os.Getenv("PATH")})
		if code != 0 {
			t.Fatalf("DRY_RUN=%q: exit %d\n%s%s", tc.value, code, out, errOut)
		}
		_, err := os.Stat(marker)
		if deployed := err == nil; deployed != tc.deploy {
			t.Errorf("DRY_RUN=%q: deployed %v, want %v\n%s", tc.value, deployed, tc.deploy, out)
		}
		if !tc.deploy && !strings.Contains(out, "DRY_RUN=1: checked and built, not deploying") {
			t.Errorf("DRY_RUN=1 does not say so:\n%s", out)
		}
	}
}

func TestFunctionTimeouts(t *testing.T) {
	got, err := functionTimeouts(read(t, "serverless.yml"))
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range httpFunctions {
		if got[f] != 30*time.Second {
			t.Errorf("%s: timeout %s, want serverless.yml's 30s", f, got[f])
		}
	}
	if got[reaperFunction] != 60*time.Second {
		t.Errorf("reaper-cron: timeout %s, want 60s", got[reaperFunction])
	}
	// A function without its own timeout takes the inputs' one, else SCF's default.
	yml := "app: x\ninputs:\n  timeout: 20\n  functions:\n    start:\n      name: a\n      timeout: 9\n    poll:\n      name: b\n"
	got, err = functionTimeouts(yml)
	if err != nil || got["start"] != 9*time.Second || got["poll"] != 20*time.Second {
		t.Errorf("%v %v", got, err)
	}
	got, _ = functionTimeouts("inputs:\n  functions:\n    start:\n      name: a\n")
	if got["stop"] != scfDefaultTimeout {
		t.Errorf("default %s", got["stop"])
	}
	if _, err := functionTimeouts("inputs:\n  timeout: 30s\n"); err == nil || !strings.Contains(err.Error(), "line 2") {
		t.Errorf("bad timeout: %v", err)
	}
}

// scripts/deploy.sh itself: a bad configuration stops it before anything is built, naming the
// variable; a dry run checks and builds everything and deploys nothing.
func TestDeployScript(t *testing.T) {
	if _, err := exec.LookPath("bash"); err != nil {
		t.Skip("no bash")
	}
	script, err := filepath.Abs(filepath.Join(root, "scripts", "deploy.sh"))
	if err != nil {
		t.Fatal(err)
	}
	envFile := filepath.Join(t.TempDir(), "test.env")
	deploy := func(env map[string]string) (int, string) {
		var b strings.Builder
		for k, v := range env {
			b.WriteString(k + "=" + v + "\n")
		}
		if err := os.WriteFile(envFile, []byte(b.String()), 0o600); err != nil {
			t.Fatal(err)
		}
		cmd := exec.Command("bash", script)
		// A minimal environment: nothing of the developer's (a REDIS_ADDR, a DRY_RUN) leaks in,
		// and SLS=false makes sure no real CLI could ever run.
		cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + os.Getenv("HOME"),
			"GOCACHE=" + goEnv(t, "GOCACHE"), "GOMODCACHE=" + goEnv(t, "GOMODCACHE"),
			"DIST=" + filepath.Join(t.TempDir(), "dist"), "ENV_FILE=" + envFile, "SLS=false"}
		out, _ := cmd.CombinedOutput()
		return cmd.ProcessState.ExitCode(), string(out)
	}

	bad := goodEnv()
	bad["QUEUE_IDLE_TIMEOUT"] = "60s"
	bad["POLL_MAX_INTERVAL"] = "30s"
	code, out := deploy(bad)
	if code != 2 || !strings.Contains(out, "POLL_MAX_INTERVAL: got 30s, want at most QUEUE_IDLE_TIMEOUT/2.4 (25s)") || strings.Contains(out, "built ") {
		t.Fatalf("bad configuration: exit %d, want 2 before any build:\n%s", code, out)
	}
	if strings.Contains(out, ticketSecret) || strings.Contains(out, adminToken) {
		t.Fatalf("deploy.sh printed a secret:\n%s", out)
	}

	if testing.Short() {
		t.Skip("the dry run builds all seven functions")
	}
	dry := goodEnv()
	dry["DRY_RUN"] = "1"
	code, out = deploy(dry)
	if code != 0 || !strings.Contains(out, "DRY_RUN=1: checked and built, not deploying") || !strings.Contains(out, "built ") {
		t.Fatalf("dry run: exit %d:\n%s", code, out)
	}
	// Not a dry run, deploycheck runs the CLI: TestDryRun covers it without building again.
}

func goEnv(t *testing.T, name string) string {
	t.Helper()
	out, err := exec.Command("go", "env", name).Output()
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(out))
}
