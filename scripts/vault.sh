#!/usr/bin/env bash
# Builds the real HashiCorp Vault binary from the Go module proxy, once, and
# caches it: Vault is not packaged in Debian. Prints the binary's path.
#
# v1.21.0 is pinned because it builds with Go 1.26; v1.21.4's published sdk
# does not match it. A cold build takes 10-20 minutes on 2 cores; a cached
# run returns at once.
set -euo pipefail

VAULT_VERSION="${VAULT_VERSION:-v1.21.0}"
cache="${WSGATE_CACHE:-$HOME/.cache/wsgate}"
bin="$cache/bin/vault"
stamp="$cache/bin/vault.version"

if [ -x "$bin" ] && [ "$(cat "$stamp" 2>/dev/null)" = "$VAULT_VERSION" ]; then
	echo "$bin"
	exit 0
fi

build="$cache/vault-build"
mkdir -p "$build" "$cache/bin"
cd "$build"
[ -f go.mod ] || go mod init vaultbuild >&2
echo "building vault $VAULT_VERSION (cached in $bin after this)..." >&2
go get "github.com/hashicorp/vault@$VAULT_VERSION" >&2
go build -trimpath -ldflags='-s -w' -o "$bin.tmp" github.com/hashicorp/vault >&2
mv "$bin.tmp" "$bin"
echo "$VAULT_VERSION" >"$stamp"
echo "$bin"
