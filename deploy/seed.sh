#!/bin/sh
# Seeds a Vault (dev) server with everything the wsgate demo deployment
# reads: a demo CA in the PKI engine, trust bundles, signing identities,
# listener TLS, an HMAC key for bearer tokens, and an AppRole whose policy
# reads secret/data/wsgate/*. Writes the AppRole's role_id and a fresh
# secret_id for wsgate to $WSGATE_SEED_OUT.
#
# POSIX sh with the vault CLI only (runs in the hashicorp/vault image and
# in the process test, e2e/deploy_test.go). Safe to run again: what exists
# is kept (keys are not rotated under clients' feet); only a new secret_id
# is written.
#
# Environment:
#   VAULT_ADDR, VAULT_TOKEN   the server and a token allowed to configure it (dev: the root token)
#   WSGATE_SEED_OUT           where role_id and secret_id go (default /run/wsgate)
#   WSGATE_SEED_OWNER         optional uid:gid to chown them to (compose: wsgate's 65532:65532)
#   WSGATE_KV_MOUNT           KV v2 mount (default secret)
#   WSGATE_ROLE_ID            the AppRole's role_id (default wsgate-demo; deploy/wsgate.yaml names it)
set -eu

: "${VAULT_ADDR:?VAULT_ADDR must be set}"
: "${VAULT_TOKEN:?VAULT_TOKEN must be set}"
export VAULT_ADDR VAULT_TOKEN
OUT="${WSGATE_SEED_OUT:-/run/wsgate}"
KV="${WSGATE_KV_MOUNT:-secret}"
ROLE_ID="${WSGATE_ROLE_ID:-wsgate-demo}"

log() { echo "seed: $*" >&2; }

umask 077
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT INT TERM

# Wait for Vault (compose's depends_on already does; a bare run may not).
i=0
until vault status >/dev/null 2>&1; do
	i=$((i + 1))
	if [ "$i" -ge 60 ]; then
		log "Vault at $VAULT_ADDR is not answering"
		exit 1
	fi
	sleep 1
done

# --- engines -----------------------------------------------------------------
mounts="$(vault secrets list -format=json)"
case "$mounts" in
*"\"$KV/\""*) ;;
*)
	log "enabling KV v2 at $KV/"
	vault secrets enable -path="$KV" kv-v2 >/dev/null
	;;
esac
case "$mounts" in
*'"pki/"'*) ;;
*)
	log "enabling PKI at pki/"
	vault secrets enable pki >/dev/null
	vault secrets tune -max-lease-ttl=87600h pki >/dev/null
	;;
esac

# --- demo CA -----------------------------------------------------------------
if ! vault read -field=certificate pki/cert/ca >"$work/ca.pem" 2>/dev/null || ! grep -q 'BEGIN CERTIFICATE' "$work/ca.pem"; then
	log "generating the demo CA"
	vault write -field=certificate pki/root/generate/internal \
		common_name="wsgate demo CA" issuer_name=wsgate-demo-ca \
		key_type=ec key_bits=256 ttl=87600h >"$work/ca.pem"
fi
# Partners' message-signing certificates: digitalSignature only.
vault write pki/roles/partner allow_any_name=true enforce_hostnames=false \
	key_type=ec key_bits=256 max_ttl=8760h ttl=8760h \
	key_usage=DigitalSignature server_flag=false client_flag=true >/dev/null
# The gateway's listener certificate (also for tls.pki: {mount: pki, role: wsgate}).
vault write pki/roles/wsgate allowed_domains=wsgate,localhost allow_bare_domains=true \
	allow_localhost=true allow_ip_sans=true key_type=ec key_bits=256 max_ttl=8760h ttl=720h \
	server_flag=true client_flag=false >/dev/null

kv_has() { vault kv get -mount="$KV" "$1" >/dev/null 2>&1; }

# issue ROLE CN [extra args...]: a key and certificate from the PKI role,
# split out of one pem_bundle (no JSON parsing needed) into $work/key.pem
# and $work/cert.pem.
issue() {
	role="$1"
	cn="$2"
	shift 2
	vault write -field=certificate "pki/issue/$role" common_name="$cn" format=pem_bundle "$@" >"$work/bundle.pem"
	sed -n '/-----BEGIN [A-Z ]*PRIVATE KEY-----/,/-----END [A-Z ]*PRIVATE KEY-----/p' "$work/bundle.pem" >"$work/key.pem"
	sed -n '/-----BEGIN CERTIFICATE-----/,/-----END CERTIFICATE-----/p' "$work/bundle.pem" >"$work/cert.pem"
	grep -q 'PRIVATE KEY' "$work/key.pem" && grep -q 'BEGIN CERTIFICATE' "$work/cert.pem" || {
		log "pki/issue/$role returned no key or certificate"
		exit 1
	}
}

# --- KV secrets (the spec's secret layout) -------------------------------------
log "writing trust bundles"
vault kv put -mount="$KV" wsgate/trust/partners certificates=@"$work/ca.pem" >/dev/null
vault kv put -mount="$KV" wsgate/tls/clients certificates=@"$work/ca.pem" >/dev/null

for who in partner gateway; do
	if kv_has "wsgate/signing/$who"; then
		log "keeping the signing identity wsgate/signing/$who"
		continue
	fi
	log "issuing the signing identity wsgate/signing/$who"
	issue partner "wsgate demo $who"
	vault kv put -mount="$KV" "wsgate/signing/$who" certificate=@"$work/cert.pem" private_key=@"$work/key.pem" >/dev/null
done

if ! kv_has wsgate/tls/listener; then
	log "issuing the listener certificate wsgate/tls/listener"
	issue wsgate wsgate alt_names=localhost ip_sans=127.0.0.1
	vault kv put -mount="$KV" wsgate/tls/listener certificate=@"$work/cert.pem" private_key=@"$work/key.pem" >/dev/null
fi

if ! kv_has wsgate/jwks/demo; then
	log "generating the demo token key wsgate/jwks/demo (HS256)"
	vault write -field=random_bytes sys/tools/random/32 format=base64 >"$work/hmac"
	vault kv put -mount="$KV" wsgate/jwks/demo secret=@"$work/hmac" >/dev/null
fi

# --- AppRole for wsgate --------------------------------------------------------
vault policy write wsgate - >/dev/null <<POLICY
# wsgate reads its secrets and nothing else.
path "$KV/data/wsgate/*" {
  capabilities = ["read"]
}
# tls.pki: issue the listener certificate from the wsgate role.
path "pki/issue/wsgate" {
  capabilities = ["update"]
}
POLICY
case "$(vault auth list -format=json)" in
*'"approle/"'*) ;;
*)
	log "enabling AppRole auth"
	vault auth enable approle >/dev/null
	;;
esac
vault write auth/approle/role/wsgate token_policies=wsgate token_ttl=1h token_max_ttl=24h \
	secret_id_ttl=0 secret_id_num_uses=0 >/dev/null
vault write auth/approle/role/wsgate/role-id role_id="$ROLE_ID" >/dev/null

(umask 022 && mkdir -p "$OUT") # wsgate (another uid) must traverse it
printf '%s\n' "$ROLE_ID" >"$OUT/role_id.tmp"
vault write -f -field=secret_id auth/approle/role/wsgate/secret-id >"$OUT/secret_id.tmp"
chmod 0400 "$OUT/role_id.tmp" "$OUT/secret_id.tmp"
if [ -n "${WSGATE_SEED_OWNER:-}" ]; then
	chown "$WSGATE_SEED_OWNER" "$OUT/role_id.tmp" "$OUT/secret_id.tmp"
fi
mv -f "$OUT/role_id.tmp" "$OUT/role_id"
mv -f "$OUT/secret_id.tmp" "$OUT/secret_id"
log "done: AppRole role_id $ROLE_ID, secret_id in $OUT/secret_id"
