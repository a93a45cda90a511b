package queue

import (
	"flag"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/carqueue/carqueue/shared/redistest"
)

var update = flag.Bool("update", false, "rewrite testdata/<script>.lua from the scripts as assembled")

// TestScriptsGolden keeps testdata/<name>.lua identical to the Lua each script sends to
// Redis, helpers and KEYS names included, so a reviewer reads a change to what Redis runs, not
// only to the fragments lua.go assembles it from. It fails when a script's text changed and
// the golden file was not regenerated, and when a golden file has no script. After reviewing
// the change, regenerate the files and commit them with it:
//
//	go test ./shared/queue -run TestScriptsGolden -update
func TestScriptsGolden(t *testing.T) {
	dir := "testdata"
	want := map[string]bool{}
	for _, sc := range scripts {
		file := sc.name + ".lua"
		if want[file] {
			t.Fatalf("two scripts are named %q", sc.name)
		}
		want[file] = true
		path := filepath.Join(dir, file)
		if *update {
			if err := os.MkdirAll(dir, 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(path, []byte(sc.src), 0o644); err != nil {
				t.Fatal(err)
			}
			continue
		}
		got, err := os.ReadFile(path)
		if err != nil {
			t.Errorf("script %s has no golden file (run with -update after review): %v", sc.name, err)
			continue
		}
		if string(got) != sc.src {
			t.Errorf("script %s differs from %s; review it and run go test ./shared/queue -run TestScriptsGolden -update\n--- as assembled:\n%s", sc.name, path, sc.src)
		}
	}
	files, err := filepath.Glob(filepath.Join(dir, "*.lua"))
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range files {
		if want[filepath.Base(f)] {
			continue
		}
		if *update {
			if err := os.Remove(f); err != nil {
				t.Fatal(err)
			}
			continue
		}
		t.Errorf("%s belongs to no script (run with -update to delete it)", f)
	}
}

// TestScriptsFitACluster: Redis Cluster routes a script by its keys, so every script of the
// fixed queue keys must name at least one, and every name must resolve to a key.
func TestScriptsFitACluster(t *testing.T) {
	for _, sc := range scripts {
		if sc.keys == nil && strings.Contains(sc.src, "K_") {
			t.Errorf("script %s names a key it is not given", sc.name)
		}
		if sc.keys == nil && !strings.Contains(sc.src, "KEYS[1]") {
			t.Errorf("script %s uses no key: a cluster could not route it", sc.name)
		}
	}
}

// TestScriptsLoad compiles every script on each backend (SCRIPT LOAD runs nothing), so a
// syntax error or a construct one of them lacks fails here rather than in the first call.
func TestScriptsLoad(t *testing.T) {
	for _, b := range redistest.Backends(t) {
		t.Run(b.Name, func(t *testing.T) {
			for _, sc := range scripts {
				if err := sc.s.Load(bg, b.Client).Err(); err != nil {
					t.Errorf("load %s: %v", sc.name, err)
				}
			}
		})
	}
}

// TestStateDocNamesEveryScript keeps doc.go's state table in step with the scripts: every
// script the package runs is named there, and every "(name)" in the table is a script.
func TestStateDocNamesEveryScript(t *testing.T) {
	src, err := os.ReadFile("doc.go")
	if err != nil {
		t.Fatal(err)
	}
	doc := string(src)
	known := map[string]bool{}
	for _, sc := range scripts {
		known[sc.name] = true
		if !regexp.MustCompile(`\b` + sc.name + `\b`).MatchString(doc) {
			t.Errorf("doc.go does not mention script %s", sc.name)
		}
	}
	for _, m := range regexp.MustCompile(`\(([a-z_]+)\)`).FindAllStringSubmatch(doc, -1) {
		if !known[m[1]] && m[1] != "script" { // the table's header
			t.Errorf("doc.go names (%s), which is no script", m[1])
		}
	}
}
