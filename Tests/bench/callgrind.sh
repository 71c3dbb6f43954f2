#!/usr/bin/env bash
# Instructions per message of a midge build under callgrind, which counts instructions rather than time: the figure
# repeats whatever else the machine is doing, so two builds can be compared on a busy machine.
#
#   Tests/bench/callgrind.sh MIDGE_BINARY BENCH_BINARY SCENARIO [RATE] [SECONDS]
#
# The binaries should be stripped of debug info (`strip --strip-debug`): valgrind 3.19 cannot read the DWARF 5 the
# toolchain writes. Runs the broker (threads 1, loopback, anonymous) under valgrind --tool=callgrind twice, for 1 s and for SECONDS of
# midge-bench SCENARIO at RATE msg/s, and prints the instructions per published message of the difference, so
# start-up and shutdown cancel out. Needs valgrind (Debian: valgrind).
set -euo pipefail
midge=$1 bench=$2 scenario=$3 rate=${4:-20000} seconds=${5:-5}
work=$(mktemp -d)
broker_pid=""
cleanup() {
    [ -n "$broker_pid" ] && kill "$broker_pid" 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT

free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }

# run DURATION: sets `instructions` and `published` (in this shell: a subshell would run the cleanup trap on exit).
run() {
    local duration=$1 port out line
    port=$(free_port)
    printf 'listener %s 127.0.0.1\nallow_anonymous true\nthreads 1\nsys_interval 0\n' "$port" > "$work/broker.conf"
    out="$work/callgrind.$duration"
    valgrind --tool=callgrind --callgrind-out-file="$out" "$midge" -c "$work/broker.conf" > "$work/broker.log" 2>&1 &
    broker_pid=$!
    for _ in $(seq 1 600); do
        (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break
        sleep 0.1
    done
    line=$("$bench" --scenario "$scenario" --rate "$rate" --duration "$duration" --port "$port" --drain 20 \
        | grep '^RESULT' || true)
    [ -n "$line" ] || { echo "no result from midge-bench; broker log:" >&2; tail -5 "$work/broker.log" >&2; exit 1; }
    kill -TERM "$broker_pid"
    wait "$broker_pid" 2>/dev/null || true
    broker_pid=""
    instructions=$(callgrind_annotate "$out" 2>/dev/null | awk '/PROGRAM TOTALS/ { gsub(",", "", $1); print $1 }')
    published=$(sed -E 's/.* published=([0-9]+).*/\1/' <<<"$line")
}

run 1
short_ir=$instructions short_msgs=$published
run "$seconds"
long_ir=$instructions long_msgs=$published
echo "scenario $scenario: $long_msgs messages in $seconds s, $short_msgs in 1 s; instructions $long_ir and $short_ir"
python3 -c "print(f'instructions per message: {($long_ir - $short_ir) / max(1, $long_msgs - $short_msgs):.0f}')"
