#!/usr/bin/env bash
# Build, package and deploy the seven functions with the Serverless CLI (see docs/DEPLOY.md).
#
# Configuration comes only from the environment, or from an untracked .env at the repository
# root (KEY=VALUE lines; .gitignore excludes it). Values are never printed: the checks below
# name missing variables, not their contents.
#
# Usage: scripts/deploy.sh            build + sls deploy
#        DRY_RUN=1 scripts/deploy.sh  build + checks only
set -euo pipefail

cd "$(dirname "$0")/.."

if [ -f .env ]; then
  set -a
  # shellcheck disable=SC1091
  . ./.env
  set +a
fi

# Deployment-level values (serverless.yml).
: "${STAGE:=prod}" "${REGION:=ap-guangzhou}"
export STAGE REGION

# Required at deploy time: without them the functions would refuse to start (or, for the
# VPC, could not reach TencentDB for Redis).
required=(REDIS_ADDR CAR_PROJECT_ID CAPACITY TICKET_SECRET ADMIN_TOKEN VPC_ID SUBNET_ID SCF_ROLE)
missing=()
for v in "${required[@]}"; do
  if [ -z "${!v:-}" ]; then missing+=("$v"); fi
done
if [ "${#missing[@]}" -gt 0 ]; then
  echo "deploy.sh: set these in the environment or .env: ${missing[*]}" >&2
  exit 2
fi
if [ "${#TICKET_SECRET}" -lt 16 ]; then
  echo "deploy.sh: TICKET_SECRET must be at least 16 characters" >&2
  exit 2
fi

# Every other variable serverless.yml references as ${env:NAME} must be defined, even empty
# (empty means: the function's built-in default, see shared/config).
for v in $(grep -o '\${env:[A-Z_]*}' serverless.yml | sed 's/\${env:\(.*\)}/\1/' | sort -u); do
  if [ -z "${!v+x}" ]; then export "$v="; fi
done

scripts/build.sh

if [ -n "${DRY_RUN:-}" ]; then
  echo "deploy.sh: DRY_RUN set; built and checked, not deploying"
  exit 0
fi

# The Serverless CLI reads TENCENT_SECRET_ID / TENCENT_SECRET_KEY (or asks for a QR-code
# login) for the deploying account; those are the deployer's keys, not the functions'.
SLS="${SLS:-}"
if [ -z "$SLS" ]; then
  if command -v sls >/dev/null; then SLS=sls
  elif command -v scf >/dev/null; then SLS=scf
  else
    echo "deploy.sh: install the Serverless CLI (npm i -g serverless-cloud-framework, or serverless)" >&2
    exit 2
  fi
fi
exec "$SLS" deploy
