#!/usr/bin/env bash
# Runs every fuzz target for a short time each (go test fuzzes one target at a time).
# FUZZTIME=5m scripts/fuzz.sh runs them longer. New failing inputs land in testdata/fuzz/.
set -euo pipefail
cd "$(dirname "$0")/.."
t="${FUZZTIME:-10s}"
for pkg in $(go list ./...); do
  dir=$(go list -f '{{.Dir}}' "$pkg")
  for target in $(grep -ho '^func Fuzz[A-Za-z0-9_]*' "$dir"/*_test.go 2>/dev/null | sed 's/^func //'); do
    echo "== $pkg $target ($t)"
    go test -run '^$' -fuzz "^${target}\$" -fuzztime "$t" -parallel "${FUZZPARALLEL:-1}" "$pkg"
  done
done
