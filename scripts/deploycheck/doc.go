// Package deploycheck holds only tests: they check that the deployment files (serverless.yml,
// scripts/build.sh, scripts/deploy.sh, the function mains and their event fixtures) agree with
// the code, so a new configuration variable or function cannot be forgotten at deploy time.
package deploycheck
