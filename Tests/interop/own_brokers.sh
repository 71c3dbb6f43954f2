# Shared by the interop scripts whose checks start and stop their own brokers (dropin.sh, bridge.sh, bridge_in.sh),
# sourced with the script's arguments once CHECKS is set: `--list`, the `BROKER WORKDIR [CHECK...]` arguments, the
# pids killed on exit, free ports, bounded waits, and the runner that prints `ok NAME` / `FAIL NAME: why`.
#
# A script sets CHECKS and PYTHON, sources this file with "$@", defines a check_NAME function per check (and, if it
# needs them, before_check / after_check, run around every check), and ends with `run_checks TOOL...`, naming the
# commands it needs. Each check runs in a fresh $DIR with CHECK set to its name; it sets WHY when it fails.

if [ "${1:-}" = "--list" ]; then
    printf '%s\n' "${CHECKS[@]}"
    exit 0
fi
if [ $# -lt 2 ]; then
    echo "usage: $0 BROKER WORKDIR [CHECK...] | --list" >&2
    exit 2
fi
BROKER=$1
WORKDIR=$2
shift 2
SELECTED=("$@")
mkdir -p "$WORKDIR"
WORKDIR=$(cd "$WORKDIR" && pwd)
PIDS=()

cleanup() {
    local pid
    for pid in "${PIDS[@]}"; do kill -KILL "$pid" 2>/dev/null; done
}
trap cleanup EXIT
trap 'exit 143' TERM INT

free_port() {
    "$PYTHON" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# until_true SECONDS CMD...: run CMD every 0.1 s until it succeeds; false when SECONDS pass first.
until_true() {
    local limit=$(($1 * 10)) i
    shift
    for ((i = 0; i < limit; i++)); do
        "$@" && return 0
        sleep 0.1
    done
    return 1
}

# run_checks TOOL...: every selected check (all when none were named); false when any failed.
run_checks() {
    local tool failed=0
    for tool in "$@"; do
        command -v "$tool" >/dev/null || { echo "FAIL setup: $tool not found"; exit 2; }
    done
    [ ${#SELECTED[@]} -gt 0 ] || SELECTED=("${CHECKS[@]}")
    for CHECK in "${SELECTED[@]}"; do
        if ! declare -F "check_$CHECK" >/dev/null; then
            echo "FAIL $CHECK: no such check"
            failed=$((failed + 1))
            continue
        fi
        DIR="$WORKDIR/$CHECK"
        rm -rf "$DIR"
        mkdir -p "$DIR"
        chmod 755 "$DIR"   # readable by a broker that gives up root
        WHY="unknown"
        if declare -F before_check >/dev/null; then before_check; fi
        if "check_$CHECK"; then
            echo "ok $CHECK"
        else
            echo "FAIL $CHECK: $WHY"
            failed=$((failed + 1))
        fi
        if declare -F after_check >/dev/null; then after_check; fi
    done
    [ $failed -eq 0 ]
}
