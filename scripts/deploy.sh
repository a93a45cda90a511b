#!/usr/bin/env bash
# Check, build, package and deploy the seven functions with the Serverless CLI (docs/DEPLOY.md).
#
# Configuration comes from the environment and an untracked .env at the repository root
# (ENV_FILE to use another), which scripts/deploycheck reads literally as KEY=VALUE lines:
# nothing here sources or evaluates it, so a '$', a quote or a space in a value deploys as
# written. A .env value wins over the environment's. deploycheck validates everything with the
# functions' own parser (config.FromEnv) and the rules that need serverless.yml's function
# timeouts, and names what is wrong without printing values; it then runs the CLI with exactly
# the environment it checked.
#
# Usage: scripts/deploy.sh            check, build, `sls deploy` (or `scf deploy`; SLS=… to choose)
#        DRY_RUN=1 scripts/deploy.sh  check and build only (DRY_RUN=0 or unset: deploy)
set -euo pipefail

cd "$(dirname "$0")/.."
DIST="${DIST:-dist}"
ENV_FILE="${ENV_FILE:-.env}"
export DIST

mkdir -p "$DIST"
# Built for the host: it runs here, not on SCF.
go build -o "$DIST/.deploycheck" ./scripts/deploycheck

# Check first, so a bad configuration fails in a second instead of after the build.
"$DIST/.deploycheck" -env-file "$ENV_FILE" check

scripts/build.sh

# Checks again (the same environment), then deploys unless DRY_RUN=1.
exec "$DIST/.deploycheck" -env-file "$ENV_FILE" deploy
