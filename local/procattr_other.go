//go:build !linux

package main

import "os/exec"

// stopWithParent is Linux-only (Pdeathsig); elsewhere an orphan is stopped by hand.
func stopWithParent(*exec.Cmd) {}
