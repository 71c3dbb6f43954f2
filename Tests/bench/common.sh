# Shared by the benchmark scripts (sourced after their option parsing, with `scratch` set): the built binaries,
# mosquitto, a scratch directory cleaned up with every process in `pids`, free ports and CPU spinners.

MOSQUITTO=$(command -v mosquitto || echo /usr/sbin/mosquitto)
[ -x "$MOSQUITTO" ] || { echo "needs Debian's mosquitto package" >&2; exit 2; }
swift build -c release --scratch-path "$scratch" --product midge >/dev/null
swift build -c release --scratch-path "$scratch" --product midge-bench >/dev/null
swift build -c release --scratch-path "$scratch" --product midge-floor >/dev/null
BIN=$(swift build -c release --scratch-path "$scratch" --show-bin-path)
work=$(mktemp -d)
pids=()
spinners=()
cleanup() {
  for pid in "${pids[@]}" "${spinners[@]}"; do kill "$pid" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# One SCHED_IDLE busy loop per CPU for at most `seconds`: it yields to any other thread at once, but its vCPU never
# halts, so no wake-up waits for the host to run a halted vCPU again.
start_spinners() {  # seconds
  for cpu in $(seq 0 $(( $(nproc) - 1 ))); do
    timeout "$1" chrt --idle 0 taskset -c "$cpu" sh -c 'while :; do :; done' &
    spinners+=($!)
  done
}

stop_spinners() {
  for spinner in "${spinners[@]}"; do kill "$spinner" 2>/dev/null || true; wait "$spinner" 2>/dev/null || true; done
  spinners=()
}
