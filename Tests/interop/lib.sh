# Shared by the interop shell scripts (sourced, not run): argument handling, mosquitto_pub / mosquitto_sub
# helpers bounded in time, and the runner that prints `ok NAME` / `FAIL NAME: why` for each check.
#
# A script sets CHECKS (its check names, each implemented as a function check_NAME), then calls
#   interop_main "$@"
# which handles `--list`, `HOST PORT [CHECK...]`, and exits non-zero when any check failed.
#
# Subscribers run with -d so their log shows "received SUBACK": publishing starts only after that line,
# never after a sleep. Negative checks ("X is not delivered") publish a sentinel after X on a path that
# would carry X first, and assert the sentinel is the first thing that arrives.

# How long any one client may take: a subscriber waiting for its messages, a SUBACK, a mosquitto_pub run.
WAIT_SECS=10
BACKGROUND=()
WORK=""

interop_cleanup() {
    local pid
    for pid in "${BACKGROUND[@]}"; do
        kill "$pid" 2>/dev/null
    done
    [ -z "$WORK" ] || rm -rf "$WORK"
}

# pub ARGS...: run mosquitto_pub (which waits forever for a silent broker, hence the timeout); on failure
# WHY says what it printed.
pub() {
    local status=0
    timeout $WAIT_SECS mosquitto_pub -h "$HOST" -p "$PORT" "$@" 2>"$WORK/pub.err" || status=$?
    case $status in
        0) return 0 ;;
        124) WHY="mosquitto_pub $* did not finish within $WAIT_SECS s" ;;
        *) WHY="mosquitto_pub $* failed: $(head -c 300 "$WORK/pub.err" | tr '\n' ' ')" ;;
    esac
    return 1
}

# sub_start NAME ARGS...: start mosquitto_sub in the background, output in $WORK/NAME.out, pid in SUB_PID.
# Every received message is printed as `MSG <qos> <retain> <topic> <payload>`.
sub_start() {
    local name=$1
    shift
    stdbuf -oL -eL mosquitto_sub -h "$HOST" -p "$PORT" -d -F 'MSG %q %r %t %p' "$@" >"$WORK/$name.out" 2>&1 &
    SUB_PID=$!
    BACKGROUND+=("$SUB_PID")
}

# sub_ready NAME ARGS...: sub_start, then wait for the SUBACK (at most 10 s); on failure WHY says why.
sub_ready() {
    local name=$1 i
    sub_start "$@"
    for ((i = 0; i < 100; i++)); do
        grep -qs 'received SUBACK' "$WORK/$name.out" && return 0
        kill -0 "$SUB_PID" 2>/dev/null || break
        sleep 0.1
    done
    WHY="subscriber '$name' got no SUBACK: $(tail -n 3 "$WORK/$name.out" | tr '\n' ' ')"
    return 1
}

# expect NAME EXPECTED: wait for the subscriber in SUB_PID (bounded by its -C/-W) and compare the
# `<qos> <retain> <topic> <payload>` lines it printed, in arrival order.
expect() {
    local name=$1 expected=$2 got
    wait "$SUB_PID" 2>/dev/null
    got=$(sed -n 's/^MSG //p' "$WORK/$name.out")
    [ "$got" = "$expected" ] && return 0
    WHY="expected [$(printf '%s' "$expected" | head -c 300 | tr '\n' '|')]"
    WHY+=" got [$(printf '%s' "$got" | head -c 300 | tr '\n' '|')]"
    return 1
}

interop_main() {
    if [ "${1:-}" = "--list" ]; then
        printf '%s\n' "${CHECKS[@]}"
        exit 0
    fi
    if [ $# -lt 2 ]; then
        echo "usage: $0 HOST PORT [CHECK...] | --list" >&2
        exit 2
    fi
    HOST=$1
    PORT=$2
    shift 2
    local selected=("$@") tool name failed=0
    [ ${#selected[@]} -gt 0 ] || selected=("${CHECKS[@]}")
    for tool in mosquitto_sub mosquitto_pub stdbuf timeout; do
        command -v "$tool" >/dev/null || { echo "FAIL setup: $tool not found"; exit 2; }
    done
    WORK=$(mktemp -d)
    trap interop_cleanup EXIT
    trap 'exit 143' TERM INT
    for name in "${selected[@]}"; do
        if ! declare -F "check_$name" >/dev/null; then
            echo "FAIL $name: no such check"
            failed=$((failed + 1))
            continue
        fi
        WHY="unknown"
        if "check_$name"; then
            echo "ok $name"
        else
            echo "FAIL $name: $WHY"
            failed=$((failed + 1))
        fi
    done
    [ $failed -eq 0 ] || exit 1
    exit 0
}
