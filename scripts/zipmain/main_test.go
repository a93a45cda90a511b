package main

import (
	"archive/zip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// linuxBinary builds a tiny linux/amd64 program the way scripts/build.sh builds functions.
func linuxBinary(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	src := filepath.Join(dir, "m.go")
	if err := os.WriteFile(src, []byte("package main\nfunc main() {}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "main")
	cmd := exec.Command("go", "build", "-trimpath", "-ldflags=-s -w", "-o", out, src)
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOARCH=amd64", "GO111MODULE=off")
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("build: %v\n%s", err, b)
	}
	return out
}

func TestWriteThenVerify(t *testing.T) {
	bin := linuxBinary(t)
	z := filepath.Join(t.TempDir(), "f.zip")
	if err := writeZip(z, bin); err != nil {
		t.Fatal(err)
	}
	if err := verifyZip(z); err != nil {
		t.Fatalf("verify: %v", err)
	}
	zr, err := zip.OpenReader(z)
	if err != nil {
		t.Fatal(err)
	}
	defer zr.Close()
	if f := zr.File[0]; f.Name != "main" || f.Mode().Perm() != 0o755 || f.CreatorVersion>>8 != 3 {
		t.Fatalf("entry %q mode %v creator %d, want main 0755 unix", f.Name, f.Mode(), f.CreatorVersion>>8)
	}
	// Reproducible: the same binary gives the same bytes.
	z2 := filepath.Join(t.TempDir(), "g.zip")
	if err := writeZip(z2, bin); err != nil {
		t.Fatal(err)
	}
	a, _ := os.ReadFile(z)
	b, _ := os.ReadFile(z2)
	if string(a) != string(b) {
		t.Fatal("two packages of one binary differ")
	}
}

func TestVerifyRejects(t *testing.T) {
	bin, err := os.ReadFile(linuxBinary(t))
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		entries map[string][]byte
		mode    os.FileMode
		want    string
	}{
		{name: "wrong name", entries: map[string][]byte{"bootstrap": bin}, mode: 0o755, want: "exactly one entry"},
		{name: "two entries", entries: map[string][]byte{"main": bin, "README": []byte("x")}, mode: 0o755, want: "exactly one entry"},
		{name: "not executable", entries: map[string][]byte{"main": bin}, mode: 0o644, want: "mode"},
		{name: "not ELF", entries: map[string][]byte{"main": []byte("#!/bin/sh\n")}, mode: 0o755, want: "ELF"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := filepath.Join(t.TempDir(), "x.zip")
			f, err := os.Create(p)
			if err != nil {
				t.Fatal(err)
			}
			zw := zip.NewWriter(f)
			for name, data := range tt.entries {
				h := &zip.FileHeader{Name: name}
				h.SetMode(tt.mode)
				w, _ := zw.CreateHeader(h)
				_, _ = w.Write(data)
			}
			_ = zw.Close()
			_ = f.Close()
			if err := verifyZip(p); err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("verify: %v, want an error about %q", err, tt.want)
			}
		})
	}
}

func TestWriteRefusesNonELF(t *testing.T) {
	p := filepath.Join(t.TempDir(), "script")
	_ = os.WriteFile(p, []byte("#!/bin/sh\n"), 0o755)
	if err := writeZip(filepath.Join(t.TempDir(), "x.zip"), p); err == nil {
		t.Fatal("packaged a non-ELF file")
	}
}
