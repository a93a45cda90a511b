#!/usr/bin/env bash
# Build every SCF function for the Go1 runtime and package it:
#   dist/<name>/main   the linux/amd64 binary (serverless.yml deploys this directory)
#   dist/<name>.zip    the same binary as "main" at the zip root, mode 0755 (console / tccli upload)
# Every zip is then verified (one entry "main", 0755, linux/amd64 ELF). Needs only Go.
#
# Usage: scripts/build.sh [function ...]     (default: all seven)
set -euo pipefail

cd "$(dirname "$0")/.."
ALL=(start poll heartbeat reconnect stop stats admin reaper-cron)
if [ "$#" -gt 0 ]; then FUNCS=("$@"); else FUNCS=("${ALL[@]}"); fi
DIST="${DIST:-dist}"

mkdir -p "$DIST"
# The packaging helper runs on the build machine, so it is built for the host.
go build -o "$DIST/.zipmain" ./scripts/zipmain

for f in "${FUNCS[@]}"; do
  if [ ! -f "functions/$f/main.go" ]; then
    echo "build.sh: unknown function $f (no functions/$f/main.go)" >&2
    exit 2
  fi
  mkdir -p "$DIST/$f"
  CGO_ENABLED=0 GOOS=linux GOARCH=amd64 \
    go build -trimpath -ldflags="-s -w" -o "$DIST/$f/main" "./functions/$f"
  chmod 0755 "$DIST/$f/main"
  "$DIST/.zipmain" -o "$DIST/$f.zip" "$DIST/$f/main"
  echo "built $DIST/$f.zip ($(wc -c <"$DIST/$f.zip") bytes)"
done

zips=()
for f in "${FUNCS[@]}"; do zips+=("$DIST/$f.zip"); done
"$DIST/.zipmain" -verify "${zips[@]}"
