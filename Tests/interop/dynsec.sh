#!/usr/bin/env bash
# Interop checks of mosquitto 2.0's dynamic security (the `plugin …/mosquitto_dynamic_security.so` configuration, the
# JSON commands on $CONTROL/dynamic-security/v1, dynamic-security.json) with Debian's mosquitto_ctrl and the
# mosquitto clients, against any broker that offers it: Midge's built-in one or mosquitto with the real plugin.
#
# Usage: dynsec.sh --setup DIR PORT          write DIR/dynamic-security.json (with `mosquitto_ctrl dynsec init`) and
#                                            DIR/broker.conf: a loopback listener on PORT with the plugin
#        dynsec.sh HOST PORT [CHECK...]      run the named checks (all of --list when none are named) against a broker
#                                            started with that broker.conf
#        dynsec.sh --list                    the checks for a fresh broker, one a line, in order (each builds on the
#                                            state the earlier ones left in the file)
#        dynsec.sh --list-restart            the checks for a broker restarted on the file the first run left
# Each check prints `ok NAME` or `FAIL NAME: why`; the exit status is non-zero when any check failed.
#
# mosquitto_ctrl speaks MQTT 5 unless told otherwise; Midge speaks 3.1.1, so every call passes -V mqttv311.
set -uo pipefail

CHECKS=(
    ctrl_admin_answers ctrl_create_client ctrl_role_grants_publish ctrl_connected_subscriber_follows_role
    ctrl_unsubscribe_rule_keeps_subscription ctrl_shared_subscription_rule ctrl_disabled_client_refused
    ctrl_deleted_client_refused
    ctrl_bad_request_answered
)
RESTART_CHECKS=(restart_keeps_clients_and_roles)

ADMIN_PASSWORD="admin-Secret-0"
ALICE_PASSWORD="alice-Secret-1"
BOB_PASSWORD="bob-Secret-2"
CAROL_PASSWORD="carol-Secret-3"

# shellcheck source=lib.sh
source "$(dirname "$0")/lib.sh"

if [ "${1:-}" = "--list-restart" ]; then
    printf '%s\n' "${RESTART_CHECKS[@]}"
    exit 0
fi

if [ "${1:-}" = "--setup" ]; then
    [ $# -eq 3 ] || { echo "usage: $0 --setup DIR PORT" >&2; exit 2; }
    dir=$2
    port=$3
    mkdir -p "$dir"
    rm -f "$dir/dynamic-security.json"
    mosquitto_ctrl dynsec init "$dir/dynamic-security.json" admin "$ADMIN_PASSWORD" >/dev/null || exit 1
    # mosquitto loads the plugin from this path; Midge only looks at the file name.
    plugin=$(ls /usr/lib/*/mosquitto_dynamic_security.so 2>/dev/null | head -n 1)
    cat >"$dir/broker.conf" <<CONF
listener $port 127.0.0.1
allow_anonymous false
plugin ${plugin:-/usr/lib/x86_64-linux-gnu/mosquitto_dynamic_security.so}
plugin_opt_config_file $dir/dynamic-security.json
CONF
    chmod 644 "$dir/broker.conf"
    # The plugin rewrites its file (a new file, renamed into place); mosquitto started as root does that as its own
    # user, after dropping privileges.
    if [ "$(id -u)" = 0 ]; then chmod 777 "$dir"; chmod 666 "$dir/dynamic-security.json"; else chmod 755 "$dir"; fi
    exit 0
fi

if [ "${1:-}" != "--list" ] && [ $# -eq 2 ]; then
    # Named nothing: the first run's checks.
    set -- "$@" "${CHECKS[@]}"
fi
# interop_main runs the functions of CHECKS only; the restart checks are named explicitly.
CHECKS+=("${RESTART_CHECKS[@]}")
if [ "${1:-}" = "--list" ]; then
    printf '%s\n' "${CHECKS[@]:0:${#CHECKS[@]}-${#RESTART_CHECKS[@]}}"
    exit 0
fi

alice=(-u alice -P "$ALICE_PASSWORD")
bob=(-u bob -P "$BOB_PASSWORD")
admin=(-u admin -P "$ADMIN_PASSWORD")

# ctl ARGS...: one `mosquitto_ctrl … dynsec ARGS…`; its output in CTL_OUT. Fails (WHY says why) when it printed an error.
ctl() {
    CTL_OUT=$(timeout $WAIT_SECS mosquitto_ctrl -V mqttv311 -h "$HOST" -p "$PORT" "${admin[@]}" dynsec "$@" 2>&1 \
        | grep -v -e '^Warning: You are running mosquitto_ctrl without encryption' -e '^This means all of the' -e '^$')
    if grep -qi 'error' <<<"$CTL_OUT"; then
        WHY="mosquitto_ctrl dynsec $*: $(tr '\n' ' ' <<<"$CTL_OUT" | head -c 300)"
        return 1
    fi
    return 0
}

# refused NAME ARGS...: a connection with these credentials must get CONNACK 5, not authorised.
refused() {
    local name=$1
    shift
    timeout $WAIT_SECS mosquitto_sub -h "$HOST" -p "$PORT" -d -E -t dynsec/x "$@" >"$WORK/$name.out" 2>&1
    grep -q 'received CONNACK (5)' "$WORK/$name.out" && return 0
    WHY="expected CONNACK 5, client printed: $(head -n 4 "$WORK/$name.out" | tr '\n' ' ')"
    return 1
}

# accepted NAME ARGS...: a connection with these credentials gets CONNACK 0.
accepted() {
    local name=$1
    shift
    timeout $WAIT_SECS mosquitto_sub -h "$HOST" -p "$PORT" -d -E -t dynsec/x "$@" >"$WORK/$name.out" 2>&1
    grep -q 'received CONNACK (0)' "$WORK/$name.out" && return 0
    WHY="expected CONNACK 0, client printed: $(head -n 4 "$WORK/$name.out" | tr '\n' ' ')"
    return 1
}

# The file from `mosquitto_ctrl dynsec init` is read: its admin logs in and gets answers.
check_ctrl_admin_answers() {
    ctl getDefaultACLAccess || return 1
    grep -q '^publishClientSend *: deny' <<<"$CTL_OUT" && grep -q '^publishClientReceive *: allow' <<<"$CTL_OUT" \
        && return 0
    WHY="getDefaultACLAccess printed: $(tr '\n' ' ' <<<"$CTL_OUT")"
    return 1
}

# A client created at run time logs in with its password at once, and only with it.
check_ctrl_create_client() {
    ctl createClient alice -p "$ALICE_PASSWORD" || return 1
    ctl createClient bob -p "$BOB_PASSWORD" || return 1
    accepted alice_in "${alice[@]}" || return 1
    refused alice_wrong -u alice -P "not-$ALICE_PASSWORD" || return 1
    ctl getClient alice || return 1
    grep -q '^Username: alice' <<<"$CTL_OUT" && return 0
    WHY="getClient printed: $(tr '\n' ' ' <<<"$CTL_OUT")"
    return 1
}

# Roles given at run time: alice may write the news, bob may subscribe to it; a publish nobody allowed is dropped.
check_ctrl_role_grants_publish() {
    ctl createRole writer || return 1
    ctl addRoleACL writer publishClientSend 'dynsec/news/#' allow || return 1
    ctl createRole reader || return 1
    ctl addRoleACL reader subscribePattern 'dynsec/news/#' allow || return 1
    ctl addClientRole alice writer 5 || return 1
    ctl addClientRole bob reader || return 1
    sub_ready news "${bob[@]}" -q 1 -C 1 -W $WAIT_SECS -t 'dynsec/news/#' || return 1
    pub "${bob[@]}" -q 1 -t dynsec/news/a -m from-bob || return 1
    pub "${alice[@]}" -q 1 -t dynsec/news/a -m from-alice || return 1
    expect news "1 0 dynsec/news/a from-alice"
}

# A subscriber already connected follows a role changed under it: once its role denies receiving a topic, nothing more
# of it arrives. (Both brokers disconnect the role's clients on the change; the persistent session and mosquito_sub's
# reconnecting carry the subscription over.)
check_ctrl_connected_subscriber_follows_role() {
    sub_ready follow "${bob[@]}" -c -i dynsec-bob -q 1 -C 1 -W $WAIT_SECS -t 'dynsec/news/#' || return 1
    ctl addRoleACL reader publishClientReceive 'dynsec/news/secret' deny 10 || return 1
    pub "${alice[@]}" -q 1 -t dynsec/news/secret -m hidden || return 1
    pub "${alice[@]}" -q 1 -t dynsec/news/open -m sentinel || return 1
    expect follow "1 0 dynsec/news/open sentinel"
}

# An unsubscribeLiteral deny keeps the subscription: the UNSUBSCRIBE is acknowledged, and messages still arrive.
# (mosquitto_sub -U unsubscribes a persistent session's filter as it connects.)
check_ctrl_unsubscribe_rule_keeps_subscription() {
    ctl addRoleACL reader subscribePattern 'dynsec/pin/#' allow || return 1
    ctl addRoleACL reader unsubscribeLiteral 'dynsec/pin/kept' deny || return 1
    ctl addRoleACL writer publishClientSend 'dynsec/pin/#' allow || return 1
    timeout $WAIT_SECS mosquitto_sub -h "$HOST" -p "$PORT" "${bob[@]}" -c -i dynsec-pin -q 1 -E \
        -t dynsec/pin/kept -t dynsec/pin/free >"$WORK/pin1.out" 2>&1 || { WHY="first subscribe failed"; return 1; }
    timeout $WAIT_SECS mosquitto_sub -h "$HOST" -p "$PORT" "${bob[@]}" -c -i dynsec-pin -q 1 -E \
        -U dynsec/pin/kept -U dynsec/pin/free -t dynsec/pin/other >"$WORK/pin2.out" 2>&1 \
        || { WHY="unsubscribe failed"; return 1; }
    sub_ready pinned "${bob[@]}" -c -i dynsec-pin -q 1 -C 1 -W $WAIT_SECS -t dynsec/pin/other || return 1
    pub "${alice[@]}" -q 1 -t dynsec/pin/free -m unsubscribed || return 1
    pub "${alice[@]}" -q 1 -t dynsec/pin/kept -m kept || return 1
    expect pinned "1 0 dynsec/pin/kept kept"
}

# A shared subscription is checked as sent: a rule for dynsec/news/# does not grant $share/g/dynsec/news/#, one for
# $share/# does.
check_ctrl_shared_subscription_rule() {
    timeout $WAIT_SECS mosquitto_sub -h "$HOST" -p "$PORT" "${bob[@]}" -d -W 2 -t '$share/g/dynsec/news/#' \
        >"$WORK/share1.out" 2>&1
    grep -q 'Subscribed (mid: 1): 128' "$WORK/share1.out" || {
        WHY="expected SUBACK 128 without a \$share rule: $(grep -A1 SUBACK "$WORK/share1.out" | tr '\n' ' ')"
        return 1
    }
    ctl addRoleACL reader subscribePattern '$share/#' allow || return 1
    sub_ready shared "${bob[@]}" -q 1 -C 1 -W $WAIT_SECS -t '$share/g/dynsec/news/#' || return 1
    pub "${alice[@]}" -q 1 -t dynsec/news/shared -m shared || return 1
    expect shared "1 0 dynsec/news/shared shared"
}

# disableClient refuses a client until enableClient.
check_ctrl_disabled_client_refused() {
    ctl disableClient alice || return 1
    refused alice_disabled "${alice[@]}" || return 1
    ctl enableClient alice || return 1
    accepted alice_enabled "${alice[@]}"
}

# deleteClient refuses a client for good.
check_ctrl_deleted_client_refused() {
    ctl createClient carol -p "$CAROL_PASSWORD" || return 1
    accepted carol_in -u carol -P "$CAROL_PASSWORD" || return 1
    ctl deleteClient carol || return 1
    refused carol_deleted -u carol -P "$CAROL_PASSWORD"
}

# Requests mosquitto_ctrl would not send: not JSON, an unknown ACL type. Answered with mosquitto's errors.
check_ctrl_bad_request_answered() {
    sub_ready answers "${admin[@]}" -C 2 -W $WAIT_SECS -t '$CONTROL/dynamic-security/v1/response' || return 1
    pub "${admin[@]}" -t '$CONTROL/dynamic-security/v1' -m '{"commands":[' || return 1
    pub "${admin[@]}" -t '$CONTROL/dynamic-security/v1' \
        -m '{"commands":[{"command":"addRoleACL","rolename":"writer","acltype":"publishAll","topic":"a","allow":true}]}' \
        || return 1
    expect answers "0 0 \$CONTROL/dynamic-security/v1/response {\"responses\":[{\"command\":\"Unknown command\",\"error\":\"Payload not valid JSON\"}]}
0 0 \$CONTROL/dynamic-security/v1/response {\"responses\":[{\"command\":\"addRoleACL\",\"error\":\"Unknown acltype\"}]}"
}

# After a restart on the file the first run left: the clients, their state and the roles are as they were.
check_restart_keeps_clients_and_roles() {
    accepted alice_again "${alice[@]}" || return 1
    refused carol_still_deleted -u carol -P "$CAROL_PASSWORD" || return 1
    sub_ready again "${bob[@]}" -q 1 -C 1 -W $WAIT_SECS -t 'dynsec/news/#' || return 1
    pub "${alice[@]}" -q 1 -t dynsec/news/secret -m hidden || return 1
    pub "${alice[@]}" -q 1 -t dynsec/news/open -m sentinel || return 1
    expect again "1 0 dynsec/news/open sentinel"
}

interop_main "$@"
