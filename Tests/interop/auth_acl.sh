#!/usr/bin/env bash
# Interop checks of password-file authentication and ACL-file authorisation with the mosquitto clients
# (spec §3.1.2.9-10 user name and password, §3.2.2.3 CONNACK 5, §5.4.2 authorisation), against any broker
# that reads mosquitto's password_file / acl_file formats.
#
# Usage: auth_acl.sh --setup DIR PORT            write DIR/passwd (with mosquitto_passwd), DIR/acl and
#                                                DIR/broker.conf: a loopback listener on PORT using both files
#        auth_acl.sh HOST PORT [CHECK...]        run the named checks (all when none are named) against a
#                                                broker started with that broker.conf
#        auth_acl.sh --list                      print the check names, one a line
# Each check prints `ok NAME` or `FAIL NAME: why`; the exit status is non-zero when any check failed.
set -uo pipefail

CHECKS=(
    auth_good_password auth_wrong_password auth_unknown_user auth_anonymous_refused
    acl_publish_denied acl_subscribe_denied acl_read_only acl_pattern
)

ALICE_PASSWORD="alice-Secret-1"
BOB_PASSWORD="bob-Secret-2"

# shellcheck source=lib.sh
source "$(dirname "$0")/lib.sh"

if [ "${1:-}" = "--setup" ]; then
    [ $# -eq 3 ] || { echo "usage: $0 --setup DIR PORT" >&2; exit 2; }
    dir=$2
    port=$3
    mkdir -p "$dir"
    rm -f "$dir/passwd"
    # mosquitto_passwd writes PBKDF2-SHA512 hashes, the format a drop-in must read.
    mosquitto_passwd -c -b "$dir/passwd" alice "$ALICE_PASSWORD" || exit 1
    mosquitto_passwd -b "$dir/passwd" bob "$BOB_PASSWORD" || exit 1
    cat >"$dir/acl" <<'ACL'
# alice owns interop/alice, reads the news; bob owns interop/bob and writes the news.
user alice
topic readwrite interop/alice/#
topic read interop/news/#

user bob
topic readwrite interop/bob/#
topic readwrite interop/news/#

# Every user owns interop/users/<their name>.
pattern readwrite interop/users/%u/#
ACL
    cat >"$dir/broker.conf" <<CONF
listener $port 127.0.0.1
allow_anonymous false
password_file $dir/passwd
acl_file $dir/acl
CONF
    # Readable by a broker that drops root privileges after start-up, as mosquitto does.
    chmod 755 "$dir"
    chmod 644 "$dir/passwd" "$dir/acl" "$dir/broker.conf"
    exit 0
fi

alice=(-u alice -P "$ALICE_PASSWORD")
bob=(-u bob -P "$BOB_PASSWORD")

# refused NAME ARGS...: a connection with these credentials must get CONNACK 5, not authorised.
refused() {
    local name=$1
    shift
    timeout $WAIT_SECS mosquitto_sub -h "$HOST" -p "$PORT" -d -E -t interop/alice/x "$@" >"$WORK/$name.out" 2>&1
    grep -q 'received CONNACK (5)' "$WORK/$name.out" && return 0
    WHY="expected CONNACK 5, client printed: $(head -n 4 "$WORK/$name.out" | tr '\n' ' ')"
    return 1
}

check_auth_good_password() {
    sub_ready good "${alice[@]}" -q 1 -C 1 -W $WAIT_SECS -t interop/alice/good || return 1
    pub "${alice[@]}" -q 1 -t interop/alice/good -m hello || return 1
    expect good "1 0 interop/alice/good hello"
}

# [MQTT-3.2.2-5] a refused CONNECT gets a non-zero CONNACK; mosquitto answers 5 for bad credentials.
check_auth_wrong_password() { refused wrong -u alice -P "not-$ALICE_PASSWORD"; }
check_auth_unknown_user() { refused unknown -u mallory -P "$ALICE_PASSWORD"; }
check_auth_anonymous_refused() { refused anonymous; }

# A PUBLISH the ACL denies is acknowledged but delivered to nobody (mosquitto's 3.1.1 behaviour).
check_acl_publish_denied() {
    sub_ready bobs "${bob[@]}" -q 1 -C 1 -W $WAIT_SECS -t 'interop/bob/#' || return 1
    pub "${alice[@]}" -q 1 -t interop/bob/inbox -m intruder || return 1
    pub "${bob[@]}" -q 1 -t interop/bob/inbox -m sentinel || return 1
    expect bobs "1 0 interop/bob/inbox sentinel"
}

# A subscription the ACL denies receives nothing; the client's permitted subscription still works.
check_acl_subscribe_denied() {
    sub_ready snoop "${alice[@]}" -q 1 -C 1 -W $WAIT_SECS -t 'interop/bob/#' -t 'interop/alice/#' || return 1
    pub "${bob[@]}" -q 1 -t interop/bob/secret -m secret || return 1
    pub "${alice[@]}" -q 1 -t interop/alice/own -m sentinel || return 1
    expect snoop "1 0 interop/alice/own sentinel"
}

# `topic read` lets alice receive the news but not write it.
check_acl_read_only() {
    sub_ready news "${alice[@]}" -q 1 -C 1 -W $WAIT_SECS -t 'interop/news/#' || return 1
    pub "${alice[@]}" -q 1 -t interop/news/a -m from-alice || return 1
    pub "${bob[@]}" -q 1 -t interop/news/b -m from-bob || return 1
    expect news "1 0 interop/news/b from-bob"
}

# `pattern ... %u` gives each user their own subtree, and only their own.
check_acl_pattern() {
    sub_ready mine "${alice[@]}" -q 1 -C 1 -W $WAIT_SECS -t 'interop/users/alice/#' || return 1
    pub "${bob[@]}" -q 1 -t interop/users/alice/x -m from-bob || return 1
    pub "${alice[@]}" -q 1 -t interop/users/alice/x -m from-alice || return 1
    expect mine "1 0 interop/users/alice/x from-alice"
}

interop_main "$@"
