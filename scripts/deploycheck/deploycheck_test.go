package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/carqueue/carqueue/shared/config"
)

const root = "../.."

func read(t *testing.T, p string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(root, p))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestServerlessYAMLHasEveryVariable(t *testing.T) {
	yml := read(t, "serverless.yml")
	web := read(t, "functions/web/serverless.yml")
	for _, v := range config.Vars {
		if !v.ServerOnly && !strings.Contains(yml, "\n      "+v.Name+": ${env:"+v.Name+"}\n") {
			t.Errorf("serverless.yml does not pass %s to the functions as ${env:%s}", v.Name, v.Name)
		}
		if v.Name != "PORT" && !strings.Contains(web, "\n      "+v.Name+": ${env:"+v.Name+"}\n") {
			t.Errorf("functions/web/serverless.yml does not pass %s to the server as ${env:%s}", v.Name, v.Name)
		}
	}
	// And nothing it passes is unknown to the code (a typo would be silently ignored).
	known := map[string]bool{"STAGE": true, "REGION": true, "VPC_ID": true, "SUBNET_ID": true, "SCF_ROLE": true}
	for _, v := range config.Vars {
		known[v.Name] = true
	}
	var code []string // serverless.yml without its comments
	for _, l := range strings.Split(yml, "\n") {
		if !strings.HasPrefix(strings.TrimSpace(l), "#") {
			code = append(code, l)
		}
	}
	for _, m := range regexp.MustCompile(`\$\{env:([A-Z0-9_]+)\}`).FindAllStringSubmatch(strings.Join(code, "\n"), -1) {
		if !known[m[1]] {
			t.Errorf("serverless.yml references ${env:%s}, which no code reads", m[1])
		}
	}
	if strings.Contains(yml, "TENCENTCLOUD_SECRET") && strings.Contains(yml, "${env:TENCENTCLOUD_SECRET") {
		t.Errorf("serverless.yml sets TENCENTCLOUD_* credentials; SCF injects the role's per invocation")
	}
}

func TestServerlessYAMLFunctionsAndTriggers(t *testing.T) {
	yml := read(t, "serverless.yml")
	for _, want := range []string{
		"\ncomponent: multi-scf\n",
		"\n  runtime: Go1\n",
		"\n    - type: timer\n      function: reaper-cron\n",
		"\n        cronExpression: '*/5 * * * * * *'\n        enable: true\n",
		"\n  vpc: &vpc\n    vpcId: ${env:VPC_ID}\n    subnetId: ${env:SUBNET_ID}\n",
	} {
		if !strings.Contains(yml, want) {
			t.Errorf("serverless.yml lacks %q", want)
		}
	}
	for _, f := range allFunctions {
		want := "\n    " + f + ":\n      name: carqueue-" + f + "-${env:STAGE}\n      src: ./dist/" + f + "\n      handler: main\n"
		if !strings.Contains(yml, want) {
			t.Errorf("serverless.yml: function %s is not deployed from dist/%s with handler main", f, f)
		}
	}
	for _, f := range httpFunctions {
		if !strings.Contains(yml, "\n    - type: http\n      function: "+f+"\n") {
			t.Errorf("serverless.yml: no function URL (http trigger) for %s", f)
		}
	}
	if n := strings.Count(yml, "environment: *env"); n != len(allFunctions) {
		t.Errorf("%d functions carry the shared environment, want %d", n, len(allFunctions))
	}
}

func TestFunctionsMainsAndFixtures(t *testing.T) {
	build := read(t, "scripts/build.sh")
	if !strings.Contains(build, "ALL=("+strings.Join(allFunctions, " ")+")") {
		t.Errorf("scripts/build.sh does not build exactly %v", allFunctions)
	}
	for _, f := range allFunctions {
		main := read(t, "functions/"+f+"/main.go")
		want := `cloudfunction.Start(app.HTTP("` + f + `"))`
		switch f {
		case "reaper-cron":
			want = "cloudfunction.Start(app.Reaper())"
		case "admin": // one function for every /admin/* route: it routes by path
			want = `cloudfunction.Start(app.HTTP(""))`
		}
		if !strings.Contains(main, "func main() { "+want+" }") {
			t.Errorf("functions/%s/main.go does not only wire %s", f, want)
		}
		var ev map[string]any
		if err := json.Unmarshal([]byte(read(t, "functions/"+f+"/event.json")), &ev); err != nil {
			t.Errorf("functions/%s/event.json: %v", f, err)
		}
	}
}

func TestSecretsStayOutOfTheRepository(t *testing.T) {
	ignore := read(t, ".gitignore")
	for _, p := range []string{"/dist/", "/.env"} {
		if !strings.Contains(ignore, p+"\n") {
			t.Errorf(".gitignore does not exclude %s", p)
		}
	}
	deploy := read(t, "scripts/deploy.sh")
	for _, line := range strings.Split(deploy, "\n") {
		l := strings.TrimSpace(line)
		if strings.HasPrefix(l, "#") || !strings.Contains(l, "echo") {
			continue
		}
		if strings.Contains(l, "${!") || regexp.MustCompile(`\$\{?(TICKET_SECRET|REDIS_PASSWORD|ADMIN_TOKEN|TENCENT)`).MatchString(l) {
			t.Errorf("scripts/deploy.sh may print a secret: %s", l)
		}
	}
	if strings.Contains(deploy, "set -x") {
		t.Errorf("scripts/deploy.sh traces commands (set -x), which would print secrets")
	}
}
