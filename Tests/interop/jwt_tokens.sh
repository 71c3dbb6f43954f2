#!/usr/bin/env bash
# Interop checks of token authentication (Midge's jwt_* keys) with the unchanged mosquitto clients: a signed JWT as
# the CONNECT password, its claims as the client's permissions, next to password-file users held to the ACL file.
#
# Usage: jwt_tokens.sh --setup DIR PORT       write DIR/jwt.secret, DIR/passwd (mosquitto_passwd), DIR/acl, tokens
#                                             made with Python's hmac, and DIR/broker.conf (loopback listener on PORT)
#        jwt_tokens.sh DIR HOST PORT [CHECK...]
#        jwt_tokens.sh --list
# Each check prints `ok NAME` or `FAIL NAME: why`; the exit status is non-zero when any check failed.
set -uo pipefail

CHECKS=(jwt_token_receives jwt_claims_limit_publish jwt_forged_refused jwt_expired_refused jwt_device_password)
DEVICE_PASSWORD="device-Secret-7"

# shellcheck source=lib.sh
source "$(dirname "$0")/lib.sh"

if [ "${1:-}" = "--setup" ]; then
    [ $# -eq 3 ] || { echo "usage: $0 --setup DIR PORT" >&2; exit 2; }
    dir=$2
    port=$3
    mkdir -p "$dir"
    printf 'interop-secret-0123456789abcdef-0123456789\n' >"$dir/jwt.secret"
    rm -f "$dir/passwd"
    mosquitto_passwd -c -b "$dir/passwd" device "$DEVICE_PASSWORD" || exit 1
    printf 'user device\ntopic readwrite app/#\n' >"$dir/acl"
    # alice may publish under app/alice and read app/alice and app/news; tokens expire in an hour (or are expired).
    python3 - "$dir" <<'PY' || exit 1
import base64, hashlib, hmac, json, sys, time
d = sys.argv[1]
def b64(raw): return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()
def token(secret, exp):
    head = b64(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
    body = b64(json.dumps({"sub": "alice", "exp": exp, "publish": ["app/alice/#"],
                           "subscribe": ["app/alice/#", "app/news/#"]}).encode())
    signature = hmac.new(secret, f"{head}.{body}".encode(), hashlib.sha256).digest()
    return f"{head}.{body}.{b64(signature)}"
secret = open(f"{d}/jwt.secret", "rb").read().rstrip(b"\r\n")
now = int(time.time())
for name, key, exp in [("good", secret, now + 3600), ("forged", b"x" * 40, now + 3600), ("expired", secret, now - 60)]:
    open(f"{d}/token.{name}", "w").write(token(key, exp))
PY
    cat >"$dir/broker.conf" <<CONF
listener $port 127.0.0.1
allow_anonymous false
password_file $dir/passwd
acl_file $dir/acl
jwt_hs256_secret_file $dir/jwt.secret
CONF
    exit 0
fi

if [ "${1:-}" != "--list" ]; then
    DIR=${1:?usage: $0 DIR HOST PORT [CHECK...]}
    shift
    alice=(-u alice -P "$(cat "$DIR/token.good")")
fi
device=(-u device -P "$DEVICE_PASSWORD")

# refused NAME ARGS...: these credentials must get CONNACK 5, not authorised.
refused() {
    local name=$1
    shift
    timeout $WAIT_SECS mosquitto_sub -h "$HOST" -p "$PORT" -d -E -i "jwt-$name" -t app/alice/x "$@" \
        >"$WORK/$name.out" 2>&1
    grep -q 'received CONNACK (5)' "$WORK/$name.out" && return 0
    WHY="expected CONNACK 5, client printed: $(head -n 4 "$WORK/$name.out" | tr '\n' ' ')"
    return 1
}

# A token client receives what a password-file device publishes within its subscribe claim.
check_jwt_token_receives() {
    sub_ready phone "${alice[@]}" -i jwt-phone -q 1 -C 1 -W $WAIT_SECS -t 'app/alice/#' || return 1
    pub "${device[@]}" -i jwt-device -q 1 -t app/alice/inbox -m hello || return 1
    expect phone "1 0 app/alice/inbox hello"
}

# The token's publish claim bounds what it may publish: outside it the message is acknowledged and dropped.
check_jwt_claims_limit_publish() {
    sub_ready news "${device[@]}" -i jwt-reader -q 1 -C 1 -W $WAIT_SECS -t 'app/#' || return 1
    pub "${alice[@]}" -i jwt-writer -q 1 -t app/news/fake -m outside-claims || return 1
    pub "${alice[@]}" -i jwt-writer -q 1 -t app/alice/status -m within-claims || return 1
    expect news "1 0 app/alice/status within-claims"
}

check_jwt_forged_refused() { refused forged -u alice -P "$(cat "$DIR/token.forged")"; }
check_jwt_expired_refused() { refused expired -u alice -P "$(cat "$DIR/token.expired")"; }

# Password-file users keep working beside tokens, held to the ACL file.
check_jwt_device_password() {
    sub_ready dev "${device[@]}" -i jwt-dev-sub -q 1 -C 1 -W $WAIT_SECS -t 'app/devices/#' || return 1
    pub "${device[@]}" -i jwt-dev-pub -q 1 -t app/devices/1 -m reading || return 1
    expect dev "1 0 app/devices/1 reading"
}

interop_main "$@"
