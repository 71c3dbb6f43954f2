#!/usr/bin/env bash
# Bridges into Midge: a real mosquitto ("edge") with a `connection` section whose address is the broker under test
# ("core"), checked with mosquitto_pub / mosquitto_sub on both sides. Topics `out/#` go edge → core, `in/#` core →
# edge, `both/#` both ways. Every check runs with `try_private true` (mosquitto's default: the bridge says so in its
# CONNECT, and the core does not echo its messages back and sends RETAIN as published) and `try_private false` (an
# ordinary client to the core). Each check starts its own two brokers on free loopback ports and stops them by pid;
# every wait is bounded. BROKER may be mosquitto itself, to check the checks: both cores give the same results.
#
# Usage: bridge_in.sh --list                         print the check names, one a line
#        bridge_in.sh BROKER WORKDIR [CHECK...]      run the named checks (all when none are named) with the core
#                                                    broker executable BROKER, in scratch directories under WORKDIR
# Each check prints `ok NAME` or `FAIL NAME: why` (and `# NAME: ...` lines for what it observed); the exit status is
# non-zero when any check failed.
set -uo pipefail

SCENARIOS=(out in both qos1 retained_out retained_in notification)
CHECKS=()
for scenario in "${SCENARIOS[@]}"; do CHECKS+=("${scenario}_private" "${scenario}_public"); done
PYTHON=/usr/bin/python3
MOSQUITTO=${MOSQUITTO:-mosquitto}
WAIT_SECS=10
# How long the `both` check listens after its two messages: a ping-pong would deliver many copies in this time.
SETTLE_SECS=3

source "$(dirname "$0")/own_brokers.sh" "$@"

# start NAME EXECUTABLE CONFIG: start a broker with output in $DIR/NAME.out, pid in PID; waits (bounded) until its log
# says it runs.
start() {
    local name=$1 executable=$2 config=$3
    "$executable" -c "$config" >"$DIR/$name.out" 2>&1 </dev/null &
    PID=$!
    PIDS+=("$PID")
    if ! until_true $WAIT_SECS grep -qs "version .* running" "$DIR/$name.out"; then
        WHY="broker '$name' did not start: $(tail -n 5 "$DIR/$name.out" | tr '\n' ' ')"
        return 1
    fi
}

# stop PID: SIGTERM, then wait (bounded) for it to exit, else SIGKILL.
stop() {
    local pid=$1
    kill -TERM "$pid" 2>/dev/null
    until_true $WAIT_SECS eval "! kill -0 $pid 2>/dev/null" || kill -KILL "$pid" 2>/dev/null
    wait "$pid" 2>/dev/null
    return 0
}

# sub NAME PORT ARGS...: mosquitto_sub in the background (bounded by the -C / -W in ARGS), each message printed as
# `MSG <qos> <retain> <topic> <payload>` in $DIR/NAME.out; pid in SUB_PID. Waits (bounded) for its SUBACK.
sub() {
    local name=$1 port=$2
    shift 2
    stdbuf -oL -eL mosquitto_sub -h 127.0.0.1 -p "$port" -d -F 'MSG %q %r %t %p' "$@" >"$DIR/$name.out" 2>&1 &
    SUB_PID=$!
    PIDS+=("$SUB_PID")
    until_true $WAIT_SECS grep -qs 'received SUBACK' "$DIR/$name.out" && return 0
    WHY="subscriber '$name' got no SUBACK: $(tail -n 3 "$DIR/$name.out" | tr '\n' ' ')"
    return 1
}

# pub PORT ARGS...: mosquitto_pub, bounded.
pub() {
    local port=$1
    shift
    timeout $WAIT_SECS mosquitto_pub -h 127.0.0.1 -p "$port" "$@" 2>"$DIR/pub.err" && return 0
    WHY="mosquitto_pub -p $port $* failed: $(head -c 200 "$DIR/pub.err" | tr '\n' ' ')"
    return 1
}

# messages NAME: the `<qos> <retain> <topic> <payload>` lines subscriber NAME printed, in arrival order.
messages() { sed -n 's/^MSG //p' "$DIR/$1.out"; }

# got NAME EXPECTED: wait (bounded by its -C / -W) for the subscriber in SUB_PID and compare what it printed.
got() {
    local name=$1 expected=$2 received
    wait "$SUB_PID" 2>/dev/null
    received=$(messages "$name")
    [ "$received" = "$expected" ] && return 0
    WHY="$name expected [$(printf '%s' "$expected" | tr '\n' '|')] got [$(printf '%s' "$received" | head -c 300 | tr '\n' '|')]"
    return 1
}

# probe NAME FROM_PORT TO_PORT TOPIC: publish TOPIC on FROM_PORT every 0.2 s until a subscriber on TO_PORT has it:
# the bridge carries that direction. Bounded.
probe() {
    local name=$1 from=$2 to=$3 topic=$4 i
    sub "$name" "$to" -t "$topic" -C 1 -W $WAIT_SECS || return 1
    for ((i = 0; i < WAIT_SECS * 5; i++)); do
        [ -n "$(messages "$name")" ] && { wait "$SUB_PID" 2>/dev/null; return 0; }
        timeout $WAIT_SECS mosquitto_pub -h 127.0.0.1 -p "$from" -t "$topic" -m probe 2>/dev/null
        sleep 0.2
    done
    WHY="the bridge did not carry $topic from port $from to port $to within $WAIT_SECS s"
    return 1
}

# pair MODE: the core (BROKER) and the edge (mosquitto) bridged to it with try_private true (MODE private) or false
# (MODE public); returns once the bridge carries both directions. Ports in CORE and EDGE.
pair() {
    local private=false
    [ "$1" = private ] && private=true
    CORE=$(free_port)
    EDGE=$(free_port)
    printf 'listener %s 127.0.0.1\nallow_anonymous true\n' "$CORE" >"$DIR/core.conf"
    cat >"$DIR/edge.conf" <<CONF
listener $EDGE 127.0.0.1
allow_anonymous true
connection to-core
address 127.0.0.1:$CORE
clientid edge-bridge
try_private $private
notifications true
restart_timeout 1
topic both/# both 1
topic in/# in 1
topic out/# out 1
CONF
    start core "$BROKER" "$DIR/core.conf" || return 1
    CORE_PID=$PID
    start edge "$MOSQUITTO" "$DIR/edge.conf" || return 1
    EDGE_PID=$PID
    # The core names a bridge connection so (mosquitto's log line, Midge's too).
    local kind=client
    $private && kind=bridge
    if ! until_true $WAIT_SECS grep -qs "New $kind connected from .* as edge-bridge" "$DIR/core.out"; then
        WHY="core did not log 'New $kind connected ... as edge-bridge': $(grep -i 'edge-bridge' "$DIR/core.out" | tail -n 2 | tr '\n' ' ')"
        return 1
    fi
    probe ready_out "$EDGE" "$CORE" out/ready && probe ready_in "$CORE" "$EDGE" in/ready
}

unpair() {
    stop "$EDGE_PID"
    stop "$CORE_PID"
}

scenario_out() {
    sub core_sub "$CORE" -t out/x -C 1 -W $WAIT_SECS || return 1
    pub "$EDGE" -t out/x -m from-edge || return 1
    got core_sub "0 0 out/x from-edge"
}

scenario_in() {
    sub edge_sub "$EDGE" -t in/x -C 1 -W $WAIT_SECS || return 1
    pub "$CORE" -t in/x -m from-core || return 1
    got edge_sub "0 0 in/x from-core"
}

# One message published on each side arrives exactly once on each side: counted after SETTLE_SECS of listening,
# long enough for a ping-pong to show as many copies. With try_private false the core cannot tell the bridge from a
# client and sends the edge's message back once (3.1.1 has no no-local): the edge's subscriber gets it twice, and
# no more, as mosquitto's bridge subscribes locally with no-local.
scenario_both() {
    local expected="core got from-edge 1, from-core 1; edge got from-edge 1, from-core 1"
    [ "$MODE" = public ] && expected="core got from-edge 1, from-core 1; edge got from-edge 2, from-core 1"
    local core_sub_pid edge_sub_pid counts
    sub core_sub "$CORE" -t 'both/#' -W $((SETTLE_SECS + 2)) || return 1
    core_sub_pid=$SUB_PID
    sub edge_sub "$EDGE" -t 'both/#' -W $((SETTLE_SECS + 2)) || return 1
    edge_sub_pid=$SUB_PID
    pub "$EDGE" -t both/x -m from-edge || return 1
    pub "$CORE" -t both/x -m from-core || return 1
    wait "$core_sub_pid" "$edge_sub_pid" 2>/dev/null
    counts="core got from-edge $(messages core_sub | grep -c 'from-edge$'), from-core $(messages core_sub | grep -c 'from-core$');"
    counts+=" edge got from-edge $(messages edge_sub | grep -c 'from-edge$'), from-core $(messages edge_sub | grep -c 'from-core$')"
    echo "# $CHECK: $counts"
    [ "$counts" = "$expected" ] && return 0
    WHY="expected $expected; $counts"
    return 1
}

scenario_qos1() {
    sub core_sub "$CORE" -q 1 -t out/q -C 1 -W $WAIT_SECS || return 1
    pub "$EDGE" -q 1 -t out/q -m edge-q1 || return 1
    got core_sub "1 0 out/q edge-q1" || return 1
    sub edge_sub "$EDGE" -q 1 -t in/q -C 1 -W $WAIT_SECS || return 1
    pub "$CORE" -q 1 -t in/q -m core-q1 || return 1
    got edge_sub "1 0 in/q core-q1"
}

# retained_on PORT TOPIC PAYLOAD: a new subscriber on PORT gets PAYLOAD on TOPIC with the retain flag, within the
# bounded wait (the retained message crosses the bridge asynchronously).
retained_on() {
    local port=$1 topic=$2 payload=$3 i line
    for ((i = 0; i < WAIT_SECS * 2; i++)); do
        line=$(timeout 2 mosquitto_sub -h 127.0.0.1 -p "$port" -t "$topic" -F '%q %r %t %p' -C 1 -W 1 2>/dev/null)
        [ "$line" = "0 1 $topic $payload" ] && return 0
        sleep 0.4
    done
    WHY="a new subscriber on port $port did not get a retained $topic [$payload]; last got [$line]"
    return 1
}

# mosquitto's bridge reports itself on the core: `1`, retained, on $SYS/broker/connection/CLIENTID/state (the one
# $SYS topic clients may publish to, in mosquitto as in Midge), with `0` as its Will.
scenario_notification() {
    retained_on "$CORE" '$SYS/broker/connection/edge-bridge/state' 1
}

scenario_retained_out() {
    pub "$EDGE" -r -t out/r -m kept-at-edge || return 1
    retained_on "$CORE" out/r kept-at-edge
}

# With try_private false the core forwards to the bridge as to any client, RETAIN cleared [MQTT-3.3.1-9]: the edge
# delivers the message but does not store it.
scenario_retained_in() {
    if [ "$MODE" = private ]; then
        pub "$CORE" -r -t in/r -m kept-at-core || return 1
        retained_on "$EDGE" in/r kept-at-core
        return
    fi
    sub edge_sub "$EDGE" -t in/r -C 1 -W $WAIT_SECS || return 1
    pub "$CORE" -r -t in/r -m kept-at-core || return 1
    got edge_sub "0 0 in/r kept-at-core" || return 1
    local line
    line=$(timeout 3 mosquitto_sub -h 127.0.0.1 -p "$EDGE" -t in/r -F '%q %r %t %p' -C 1 -W 1 2>/dev/null)
    echo "# $CHECK: a new subscriber at the edge got [$line]"
    [ -z "$line" ] && return 0
    WHY="the edge stored a message the core forwarded with RETAIN=0: [$line]"
    return 1
}

for scenario in "${SCENARIOS[@]}"; do
    for mode in private public; do
        eval "check_${scenario}_${mode}() { MODE=$mode; pair $mode || return 1; local status=0; scenario_$scenario || status=1; unpair; return \$status; }"
    done
done

# Each check ends its own brokers.
after_check() {
    cleanup
    PIDS=()
}

run_checks mosquitto_sub mosquitto_pub timeout stdbuf "$MOSQUITTO" "$PYTHON"
