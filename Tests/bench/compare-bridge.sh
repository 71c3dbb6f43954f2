#!/usr/bin/env bash
# What a bridged message costs the broker that bridges it: 8 publishers on the bridging broker, `topic bench/# out`,
# one subscriber on the remote broker (Debian's mosquitto, the same process for every row). The bridging broker is
# mosquitto or Midge, alternating, in one run; midge-bench reads the bridging broker's CPU time over the window.
#
#   Tests/bench/compare-bridge.sh [--runs N] [--duration S] [--rate MSG_PER_S] [--threads N] [--scratch-path DIR]
#
# The rate is fixed (default 20000 msg/s in total) so both bridging brokers carry the same load and the remote
# keeps up; the figure compared is broker CPU per message.
set -euo pipefail
cd "$(dirname "$0")/../.."

runs=3
duration=10
rate=20000
threads=""
scratch=.build
while [ $# -gt 0 ]; do
  case "$1" in
    --runs) runs=$2; shift 2 ;;
    --duration) duration=$2; shift 2 ;;
    --rate) rate=$2; shift 2 ;;
    --threads) threads=$2; shift 2 ;;
    --scratch-path) scratch=$2; shift 2 ;;
    *) echo "unknown option $1" >&2; exit 2 ;;
  esac
done
# shellcheck source=Tests/bench/common.sh
source Tests/bench/common.sh

remote_port=$(free_port)
printf 'listener %s 127.0.0.1\nallow_anonymous true\nmax_queued_messages 0\n' "$remote_port" > "$work/remote.conf"
"$MOSQUITTO" -c "$work/remote.conf" > "$work/remote.log" 2>&1 &
pids+=($!)
for _ in $(seq 100); do grep -qs "listen socket on port $remote_port" "$work/remote.log" && break; sleep 0.1; done

start_bridging() {  # name port qos -> prints pid
  local name=$1 port=$2 qos=$3 config="$work/$1-$3.conf"
  {
    printf 'listener %s 127.0.0.1\nallow_anonymous true\nmax_inflight_messages 20\n' "$port"
    if [ "$name" = midge ]; then
      echo "queue_full_policy block"
      [ -n "$threads" ] && echo "threads $threads"
    else
      echo "max_queued_messages 0"
    fi
    printf 'connection bench\naddress 127.0.0.1:%s\ntopic bench/# out %s\ncleansession true\n' "$remote_port" "$qos"
    echo "remote_clientid bench-$name-$qos-$RANDOM"
  } > "$config"
  if [ "$name" = midge ]; then
    "$BIN/midge" -c "$config" > "$work/$name.log" 2>&1 &
  else
    "$MOSQUITTO" -c "$config" > "$work/$name.log" 2>&1 &
  fi
  local pid=$!
  pids+=("$pid")
  # Ready once its bridge is connected: a probe published on the bridging broker reaches the remote.
  for _ in $(seq 100); do
    if timeout 2 mosquitto_sub -p "$remote_port" -t bench/probe -C 1 -W 2 > /dev/null 2>&1 &
      sleep 0.2; mosquitto_pub -p "$port" -t bench/probe -m x -q 1 2>/dev/null; wait $!; then
      echo "$pid"
      return 0
    fi
  done
  echo "the $name bridge did not connect; its log:" >&2
  tail -n 20 "$work/$name.log" >&2
  return 1
}

results="$work/results.txt"
for qos in 0 1; do
  for run in $(seq "$runs"); do
    for broker in mosquitto midge; do
      port=$(free_port)
      pid=$(start_bridging "$broker" "$port" "$qos")
      line=$("$BIN/midge-bench" --scenario fanin --qos "$qos" --rate "$rate" --duration "$duration" \
        --port "$port" --subscriber-port "$remote_port" --broker-pid "$pid" | tee "$work/last.txt" | grep '^RESULT' || true)
      [ -z "$line" ] && { echo "no result for $broker qos $qos:"; cat "$work/last.txt"; }
      echo "$broker qos$qos $run $line" | tee -a "$results"
      kill "$pid" 2>/dev/null || true
      wait "$pid" 2>/dev/null || true
    done
  done
done

python3 - "$results" <<'PY'
import statistics, sys
rows = {}
for line in open(sys.argv[1]):
    parts = line.split()
    if len(parts) < 4:
        continue
    fields = dict(p.split("=", 1) for p in parts[3:] if "=" in p)
    rows.setdefault((parts[1], parts[0]), []).append(fields)
def median(key, scenario, broker):
    values = [float(f[key]) for f in rows.get((scenario, broker), []) if key in f]
    return statistics.median(values) if values else float("nan")
print("| bridged stream | metric | mosquitto | midge | midge / mosquitto |")
print("|---|---|---|---|---|")
for scenario in ("qos0", "qos1"):
    for key, label in (("cpu_us_per_delivery", "bridging broker CPU µs per message"),
                       ("delivered_per_s", "delivered msg/s"), ("lost", "lost"), ("p50_us", "latency p50 µs")):
        m, d = median(key, scenario, "mosquitto"), median(key, scenario, "midge")
        ratio = f"{d / m:.2f}" if m else "-"
        print(f"| {scenario} | {label} | {m:g} | {d:g} | {ratio} |")
PY
