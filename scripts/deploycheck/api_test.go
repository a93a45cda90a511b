package main

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// contractPath is the fixed client contract shipped beside the repository.
var contractPath = filepath.Join(root, "..", "shared", "API.md")

// TestAPIContractCopy keeps docs/API.md byte for byte the contract shipped beside the
// repository, so the repository carries the contract it is tested against and a change to
// either is noticed.
func TestAPIContractCopy(t *testing.T) {
	want, err := os.ReadFile(contractPath)
	if errors.Is(err, os.ErrNotExist) {
		t.Skipf("%s is not here (the repository outside its workspace): nothing to compare docs/API.md with", contractPath)
	}
	if err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(filepath.Join(root, "docs", "API.md"))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("docs/API.md differs from %s; copy it again: cp %s docs/API.md", contractPath, contractPath)
	}
}

// README.md and docs/ARCHITECTURE.md point at the copy in the repository.
func TestContractLinked(t *testing.T) {
	for file, link := range map[string]string{"README.md": "[docs/API.md](docs/API.md)", "docs/ARCHITECTURE.md": "[API.md](API.md)"} {
		if !bytes.Contains([]byte(read(t, file)), []byte(link)) {
			t.Errorf("%s does not link the contract as %s", file, link)
		}
	}
}

// The documentation points only at files that exist: every relative link, and every path of
// the repository written in backquotes.
func TestDocsReferencesExist(t *testing.T) {
	files := []string{"README.md"}
	docs, err := filepath.Glob(filepath.Join(root, "docs", "*.md"))
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range docs {
		files = append(files, strings.TrimPrefix(d, root+string(filepath.Separator)))
	}
	link := regexp.MustCompile(`\]\(([^)\s]+)\)`)
	path := regexp.MustCompile("`((?:shared|local|scripts|docs|functions)/[A-Za-z0-9_./-]*[A-Za-z0-9_])`")
	for _, f := range files {
		if f == filepath.Join("docs", "API.md") {
			continue // the fixed contract, copied as it is
		}
		text := read(t, f)
		dir := filepath.Dir(f)
		for _, m := range link.FindAllStringSubmatch(text, -1) {
			target, _, _ := strings.Cut(m[1], "#")
			if target == "" || strings.Contains(target, "://") || strings.HasPrefix(target, "mailto:") {
				continue
			}
			if _, err := os.Stat(filepath.Join(root, dir, target)); err != nil {
				t.Errorf("%s links %s, which does not exist", f, m[1])
			}
		}
		for _, m := range path.FindAllStringSubmatch(text, -1) {
			p := m[1]
			if strings.ContainsAny(p, "<>*") {
				continue
			}
			if _, err := os.Stat(filepath.Join(root, p)); err != nil {
				t.Errorf("%s mentions `%s`, which does not exist", f, p)
			}
		}
	}
}
