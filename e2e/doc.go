// Package e2e runs wsgate as operators deploy it: the real binary, as
// separate processes, beside a real redis-server (and, for the deployment
// test, a real Vault dev server seeded by deploy/seed.sh and the demo
// upstreams of deploy/echo.py). It holds tests only.
//
// Needs: redis-server on PATH (Debian package redis-server); for the
// deployment test also python3 and WSGATE_VAULT_BIN naming a vault binary
// (scripts/vault.sh builds one). Missing tools skip the tests locally and
// fail them when the CI environment variable is set.
package e2e
