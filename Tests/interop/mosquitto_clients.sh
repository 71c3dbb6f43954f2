#!/usr/bin/env bash
# Interop checks with the unchanged mosquitto_sub / mosquitto_pub clients against any MQTT 3.1.1 broker
# (spec §3.3 PUBLISH/QoS, §3.3.1.3 retain, §3.1.2.5 will, §3.1.2.4 sessions, §4.6 ordering, §4.7 wildcards).
#
# Usage: mosquitto_clients.sh HOST PORT [CHECK...]   run the named checks (all when none are named)
#        mosquitto_clients.sh --list                 print the check names, one a line
# Each check prints `ok NAME` or `FAIL NAME: why`; the exit status is non-zero when any check failed.
# How the checks synchronise without sleeps is described in lib.sh.
set -uo pipefail

CHECKS=(
    qos0_round_trip qos1_round_trip qos2_round_trip qos_downgrade large_payload
    retained_replay retained_clear wildcard_plus wildcard_hash
    will_on_sigkill no_will_on_clean_exit persistent_session line_mode_ordered sys_not_matched_by_hash
    shared_subscription_group
)

# shellcheck source=lib.sh
source "$(dirname "$0")/lib.sh"

RUN="$$-$RANDOM"
PREFIX="interop/sh-$RUN"

round_trip() {
    local qos=$1 topic="$PREFIX/qos$1" payload="payload at qos $1: ünïcødé / + #"
    sub_ready rt -q "$qos" -C 1 -W $WAIT_SECS -t "$topic" || return 1
    pub -q "$qos" -t "$topic" -m "$payload" || return 1
    expect rt "$qos 0 $topic $payload"
}

check_qos0_round_trip() { round_trip 0; }
check_qos1_round_trip() { round_trip 1; }
check_qos2_round_trip() { round_trip 2; }

# [MQTT-3.8.4-6] delivered QoS is the minimum of the published QoS and the granted QoS.
check_qos_downgrade() {
    local topic="$PREFIX/downgrade"
    sub_ready dg -q 1 -C 2 -W $WAIT_SECS -t "$topic" || return 1
    pub -q 2 -t "$topic" -m two || return 1
    pub -q 0 -t "$topic" -m zero || return 1
    expect dg "1 0 $topic two
0 0 $topic zero"
}

# A payload far beyond one read buffer, so the broker must reassemble and fan it out in pieces.
check_large_payload() {
    local topic="$PREFIX/large" payload
    payload=$(head -c 196608 /dev/urandom | base64 -w 0)
    printf '%s' "$payload" >"$WORK/large.bin"
    sub_ready large -q 1 -C 1 -W $WAIT_SECS -t "$topic" || return 1
    pub -q 1 -t "$topic" -f "$WORK/large.bin" || return 1
    expect large "1 0 $topic $payload"
}

# [MQTT-3.3.1-5] the last retained message replaces the previous one and reaches later subscribers with
# RETAIN 1 [MQTT-3.3.1-8]; a live message after it carries RETAIN 0 [MQTT-3.3.1-9].
check_retained_replay() {
    local topic="$PREFIX/retained"
    pub -q 1 -r -t "$topic" -m old || return 1
    pub -q 1 -r -t "$topic" -m new || return 1
    sub_ready ret -q 1 -C 2 -W $WAIT_SECS -t "$topic" || return 1
    pub -q 1 -t "$topic" -m live || return 1
    expect ret "1 1 $topic new
1 0 $topic live" || return 1
    pub -q 1 -r -n -t "$topic"
}

# [MQTT-3.3.1-10] [MQTT-3.3.1-11] an empty retained PUBLISH clears the retained message.
check_retained_clear() {
    local topic="$PREFIX/cleared"
    pub -q 1 -r -t "$topic" -m doomed || return 1
    pub -q 1 -r -n -t "$topic" || return 1
    sub_ready clr -q 1 -C 1 -W $WAIT_SECS -t "$topic" || return 1
    pub -q 1 -t "$topic" -m sentinel || return 1
    expect clr "1 0 $topic sentinel"
}

# [MQTT-4.7.1-3] `+` matches exactly one level, an empty one included.
check_wildcard_plus() {
    local p="$PREFIX/plus" t
    sub_ready plus -q 1 -C 3 -W $WAIT_SECS -t "$p/+/b" || return 1
    for t in "$p/a/b" "$p/a/c" "$p/a/b/c" "$p/b" "$p//b" "$p/end/b"; do
        pub -q 1 -t "$t" -m x || return 1
    done
    expect plus "1 0 $p/a/b x
1 0 $p//b x
1 0 $p/end/b x"
}

# [MQTT-4.7.1-2] `#` matches the parent level and every level below it.
check_wildcard_hash() {
    local p="$PREFIX/hash" t
    sub_ready hash -q 1 -C 4 -W $WAIT_SECS -t "$p/#" || return 1
    for t in "$p" "$p/a" "$PREFIX/hashx" "$p/a/b/c" "$PREFIX/other/a" "$p/end"; do
        pub -q 1 -t "$t" -m x || return 1
    done
    expect hash "1 0 $p x
1 0 $p/a x
1 0 $p/a/b/c x
1 0 $p/end x"
}

# [MQTT-3.1.2-8] the will is published when the network connection closes without DISCONNECT.
check_will_on_sigkill() {
    local topic="$PREFIX/will/killed" pid
    sub_ready watch -q 1 -C 1 -W $WAIT_SECS -t "$topic" || return 1
    local watcher=$SUB_PID
    sub_ready victim -t "$PREFIX/will/idle" --will-topic "$topic" --will-payload "gone" --will-qos 1 || return 1
    pid=$SUB_PID
    kill -KILL "$pid"
    wait "$pid" 2>/dev/null
    SUB_PID=$watcher
    expect watch "1 0 $topic gone"
}

# [MQTT-3.1.2-10] [MQTT-3.14.4-3] a DISCONNECT discards the will.
check_no_will_on_clean_exit() {
    local topic="$PREFIX/will/clean"
    sub_ready watch2 -q 1 -C 1 -W $WAIT_SECS -t "$topic" || return 1
    local watcher=$SUB_PID
    # -E: disconnect cleanly as soon as the subscription is acknowledged.
    timeout $WAIT_SECS mosquitto_sub -h "$HOST" -p "$PORT" -E -t "$PREFIX/will/idle" \
        --will-topic "$topic" --will-payload "gone" --will-qos 1 >/dev/null 2>&1 \
        || { WHY="will client did not subscribe and exit"; return 1; }
    pub -q 1 -t "$topic" -m sentinel || return 1
    SUB_PID=$watcher
    expect watch2 "1 0 $topic sentinel"
}

# [MQTT-3.1.2-4] [MQTT-3.1.2-5] a clean-session-0 client gets the QoS 1 messages published while it was away.
check_persistent_session() {
    local topic="$PREFIX/session" id="interop-sh-$RUN"
    timeout $WAIT_SECS mosquitto_sub -h "$HOST" -p "$PORT" -c -i "$id" -q 1 -E -t "$topic" >/dev/null 2>&1 \
        || { WHY="first persistent connection did not subscribe and exit"; return 1; }
    pub -q 1 -t "$topic" -m m1 || return 1
    pub -q 1 -t "$topic" -m m2 || return 1
    pub -q 1 -t "$topic" -m m3 || return 1
    sub_start back -c -i "$id" -q 1 -C 3 -W $WAIT_SECS -t "$topic"
    local ok=0
    expect back "1 0 $topic m1
1 0 $topic m2
1 0 $topic m3" || ok=1
    # Drop the stored session: a clean-session-1 connect with the same id discards it [MQTT-3.1.2-6].
    timeout $WAIT_SECS mosquitto_sub -h "$HOST" -p "$PORT" -i "$id" -E -t "$topic" >/dev/null 2>&1
    return $ok
}

# [MQTT-4.6.0-5] one publisher's messages on one topic reach a subscriber in the order they were sent.
check_line_mode_ordered() {
    local topic="$PREFIX/lines" n=500 expected
    sub_ready lines -q 1 -C $n -W 20 -t "$topic" || return 1
    seq 1 $n | pub -q 1 -l -t "$topic" || return 1
    expected=$(seq 1 $n | sed "s|^|1 0 $topic |")
    expect lines "$expected"
}

# [MQTT-4.7.2-1] `#` does not match topics that start with `$`, neither the broker's $SYS tree nor a
# client's own `$`-topic. Interop topics are filtered out so retained leftovers cannot interfere.
check_sys_not_matched_by_hash() {
    local sentinel="interop-sentinel/sh-$RUN"
    sub_ready all -q 1 -C 1 -W $WAIT_SECS -t '#' -T 'interop/#' || return 1
    # A broker may refuse client publishes to `$` topics; either way nothing may reach `#`.
    pub -q 1 -t "\$SYS/interop/$RUN" -m dollar-sys
    pub -q 1 -t "\$interop/$RUN" -m dollar
    pub -q 1 -t "$sentinel" -m sentinel || return 1
    expect all "1 0 $sentinel sentinel"
}

# Shared subscriptions as mosquitto 2.0 serves them to 3.1.1 clients: `$share/<group>/<filter>` gives each message to
# one member of the group, in turn, while an ordinary subscriber to the same filter still gets all of them.
check_shared_subscription_group() {
    local topic="$PREFIX/shared" n=10 pid_a pid_b union expected
    sub_ready share_a -q 1 -C 5 -W $WAIT_SECS -t "\$share/workers/$topic/#" || return 1
    pid_a=$SUB_PID
    sub_ready share_b -q 1 -C 5 -W $WAIT_SECS -t "\$share/workers/$topic/#" || return 1
    pid_b=$SUB_PID
    sub_ready share_all -q 1 -C $n -W $WAIT_SECS -t "$topic/#" || return 1
    for i in $(seq 1 $n); do pub -q 1 -t "$topic/job" -m "job $i" || return 1; done
    wait "$pid_a" "$pid_b" 2>/dev/null
    expected=$(seq 1 $n | sed "s|^|1 0 $topic/job job |")
    union=$(sed -n 's/^MSG //p' "$WORK/share_a.out" "$WORK/share_b.out" | sort -t' ' -k5n)
    if [ "$union" != "$expected" ]; then
        WHY="the group's two members together got [$(printf '%s' "$union" | tr '\n' '|')], not each job once"
        return 1
    fi
    expect share_all "$expected"
}

interop_main "$@"
