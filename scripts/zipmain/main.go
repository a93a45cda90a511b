// Command zipmain packages an SCF Go function: it writes a zip whose only entry is the binary,
// named "main" at the root with mode 0755 (the Go1 runtime runs the handler "main" and needs
// the executable bit), and verifies such a zip. It exists so packaging needs nothing but Go:
// no zip or unzip on the deploying machine.
//
//	zipmain -o dist/start.zip dist/start/main   # package
//	zipmain -verify dist/start.zip              # check: one entry "main", 0755, linux/amd64 ELF
package main

import (
	"archive/zip"
	"bytes"
	"debug/elf"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"
)

func main() {
	out := flag.String("o", "", "zip file to write")
	verify := flag.Bool("verify", false, "verify the zip files named as arguments")
	flag.Parse()
	var err error
	switch {
	case *verify && flag.NArg() > 0:
		for _, p := range flag.Args() {
			if err = verifyZip(p); err != nil {
				break
			}
			fmt.Printf("ok %s: main, 0755, linux/amd64 ELF\n", p)
		}
	case *out != "" && flag.NArg() == 1:
		err = writeZip(*out, flag.Arg(0))
	default:
		err = errors.New("usage: zipmain -o out.zip path/to/binary | zipmain -verify a.zip [b.zip ...]")
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "zipmain:", err)
		os.Exit(1)
	}
}

// writeZip stores binary as "main" (mode 0755) in a new zip at out, atomically.
func writeZip(out, binary string) error {
	bin, err := os.ReadFile(binary)
	if err != nil {
		return err
	}
	if err := checkELF(bin); err != nil {
		return fmt.Errorf("%s: %w", binary, err)
	}
	if err := os.MkdirAll(filepath.Dir(out), 0o755); err != nil {
		return err
	}
	tmp, err := os.CreateTemp(filepath.Dir(out), ".zipmain-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	zw := zip.NewWriter(tmp)
	// A fixed timestamp keeps the zip a function of the binary alone (reproducible packages).
	h := &zip.FileHeader{Name: "main", Method: zip.Deflate, Modified: time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)}
	h.SetMode(0o755) // also marks the entry as made on Unix, so the mode is honoured
	w, err := zw.CreateHeader(h)
	if err == nil {
		_, err = w.Write(bin)
	}
	if err == nil {
		err = zw.Close()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Chmod(tmp.Name(), 0o644)
	}
	if err != nil {
		return fmt.Errorf("write %s: %w", out, err)
	}
	return os.Rename(tmp.Name(), out)
}

// verifyZip checks what the SCF Go1 runtime needs of a code package.
func verifyZip(p string) error {
	zr, err := zip.OpenReader(p)
	if err != nil {
		return err
	}
	defer zr.Close()
	if len(zr.File) != 1 || zr.File[0].Name != "main" {
		names := []string{}
		for _, f := range zr.File {
			names = append(names, f.Name)
		}
		return fmt.Errorf("%s: want exactly one entry \"main\", have %q", p, names)
	}
	f := zr.File[0]
	if m := f.Mode(); !m.IsRegular() || m.Perm() != 0o755 {
		return fmt.Errorf("%s: main has mode %v, want -rwxr-xr-x", p, m)
	}
	rc, err := f.Open()
	if err != nil {
		return err
	}
	defer rc.Close()
	bin, err := io.ReadAll(rc)
	if err != nil {
		return fmt.Errorf("%s: %w", p, err)
	}
	if err := checkELF(bin); err != nil {
		return fmt.Errorf("%s: main: %w", p, err)
	}
	return nil
}

// checkELF requires a linux/amd64 executable (what SCF runs).
func checkELF(bin []byte) error {
	ef, err := elf.NewFile(bytes.NewReader(bin))
	if err != nil {
		return fmt.Errorf("not an ELF binary: %w", err)
	}
	defer ef.Close()
	if ef.Machine != elf.EM_X86_64 || ef.Type != elf.ET_EXEC {
		return fmt.Errorf("ELF %v %v, want EM_X86_64 ET_EXEC (GOOS=linux GOARCH=amd64, no -buildmode=pie)", ef.Machine, ef.Type)
	}
	return nil
}
