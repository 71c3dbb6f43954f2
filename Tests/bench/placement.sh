#!/usr/bin/env bash
# The latency row (1 → 1, QoS 1, 1000 msg/s) against mosquitto and Midge under different CPU placements, the
# variants interleaved per round so drifting load hits all alike. Prints one line per run: percentiles, broker CPU
# per message and the broker's CPU migrations (perf stat, when perf is installed).
#
#   Tests/bench/placement.sh [--rounds N] [--duration S] [--variants "plain warm colocated pinned spread"]
#                            [--scratch-path DIR]
#
# plain      as compare.sh runs it
# warm       every CPU kept out of its idle state by a SCHED_IDLE spinner (yields to any other thread at once), so
#            no wake-up waits for a halted vCPU
# colocated  broker and midge-bench both confined to CPU 0: no wake-up crosses CPUs
# pinned     the broker confined to the last CPU, midge-bench free
# spread     Midge only: event loop i pinned to CPU i mod the CPU count, midge-bench free
# one-loop   Midge only, with `threads 1`: both clients on one loop, as in mosquitto
#
# Every variant but spread and one-loop also runs midge-floor, a relay that does no broker work: what the placement
# costs any broker. At the end: medians per broker and variant, and each one's p99 against mosquitto's in the same
# round and variant (plain for Midge's own variants), with a sign test over the rounds.
set -euo pipefail
cd "$(dirname "$0")/../.."

rounds=3
duration=5
variants="plain warm colocated pinned spread"
scratch=.build
while [ $# -gt 0 ]; do
  case "$1" in
    --rounds) rounds=$2; shift 2 ;;
    --duration) duration=$2; shift 2 ;;
    --variants) variants=$2; shift 2 ;;
    --scratch-path) scratch=$2; shift 2 ;;
    *) echo "unknown option $1" >&2; exit 2 ;;
  esac
done

# shellcheck source=Tests/bench/common.sh
source Tests/bench/common.sh
last_cpu=$(( $(nproc) - 1 ))

run() {  # broker variant (the round is the caller's `round`)
  local broker=$1 variant=$2 port wrap="" bench_wrap="" pid perf_pid=""
  port=$(free_port)
  printf 'listener %s 127.0.0.1\nallow_anonymous true\nmax_inflight_messages 20\nmax_queued_messages 1000\n' \
    "$port" > "$work/broker.conf"
  [ "$variant" = one-loop ] && echo "threads 1" >> "$work/broker.conf"
  case "$variant" in
    colocated) wrap="taskset -c 0"; bench_wrap="taskset -c 0" ;;
    pinned) wrap="taskset -c $last_cpu" ;;
    warm) start_spinners $(( duration + 10 )) ;;
  esac
  if [ "$broker" = midge ]; then
    $wrap "$BIN/midge" -c "$work/broker.conf" > "$work/broker.log" 2>&1 &
  elif [ "$broker" = floor ]; then
    $wrap "$BIN/midge-floor" --port "$port" > "$work/broker.log" 2>&1 &
  else
    $wrap "$MOSQUITTO" -c "$work/broker.conf" > "$work/broker.log" 2>&1 &
  fi
  pid=$!
  pids+=("$pid")
  for _ in $(seq 1 100); do (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break; sleep 0.1; done
  if [ "$variant" = spread ]; then
    for task in /proc/"$pid"/task/*; do
      case $(cat "$task/comm") in
        midge-loop-*) loop=$(cut -d- -f3 < "$task/comm"); taskset -p -c $(( loop % (last_cpu + 1) )) "${task##*/}" >/dev/null ;;
      esac
    done
  fi
  if command -v perf >/dev/null; then
    perf stat -e cpu-migrations -p "$pid" -o "$work/perf.txt" >/dev/null 2>&1 &
    perf_pid=$!
  fi
  local line
  line=$($bench_wrap "$BIN/midge-bench" --scenario latency --duration "$duration" --port "$port" --broker-pid "$pid" \
    | grep '^RESULT' || true)
  local migrations=n/a
  if [ -n "$perf_pid" ]; then
    kill -INT "$perf_pid" 2>/dev/null || true; wait "$perf_pid" 2>/dev/null || true
    migrations=$(awk '/cpu-migrations/ {print $1}' "$work/perf.txt")
  fi
  kill "$pid"; wait "$pid" 2>/dev/null || true
  stop_spinners
  field() { echo "$line" | tr ' ' '\n' | awk -F= -v k="$1" '$1 == k {print $2}'; }
  printf '%-9s %-10s p50 %7s  p99 %7s  p99.9 %8s us  CPU %6s us/msg  migrations %s\n' "$broker" "$variant" \
    "$(field p50_us)" "$(field p99_us)" "$(field p999_us)" "$(field cpu_us_per_delivery)" "$migrations"
  echo "$round $broker $variant $(field p50_us) $(field p99_us) $(field cpu_us_per_delivery) $migrations" \
    >> "$work/runs.txt"
}

: > "$work/runs.txt"
for round in $(seq 1 "$rounds"); do
  echo "round $round"
  for variant in $variants; do
    case "$variant" in
      spread|one-loop) run midge "$variant" ;;
      *) run mosquitto "$variant"; run midge "$variant"; run floor "$variant" ;;
    esac
  done
done

python3 - "$work/runs.txt" <<'PY'
import math, statistics, sys
runs = {}
for line in open(sys.argv[1]):
    round_, broker, variant, *values = line.split()
    try: runs[(int(round_), broker, variant)] = [float(v.replace(",", "")) if v not in ("", "n/a") else None for v in values]
    except ValueError: pass
print()
keys = sorted({(b, v) for _, b, v in runs}, key=lambda k: (k[1], k[0]))
for broker, variant in keys:
    rows = [x for (_, b, v), x in runs.items() if (b, v) == (broker, variant)]
    med = lambda i: statistics.median(r[i] for r in rows if r[i] is not None) if any(r[i] is not None for r in rows) else float("nan")
    line = f"{broker:9s} {variant:10s} n={len(rows):2d}  p50 {med(0):6.1f}  p99 {med(1):6.1f} us  CPU {med(2):5.1f} us/msg  migrations {med(3):.0f}"
    baseline = "plain" if variant in ("spread", "one-loop") else variant
    ratios = [x[1] / runs[(r, "mosquitto", baseline)][1] for (r, b, v), x in runs.items()
              if (b, v) == (broker, variant) and broker != "mosquitto" and (r, "mosquitto", baseline) in runs]
    if ratios:
        lower, n = sum(q < 1 for q in ratios), len(ratios)
        p = min(1.0, 2 * sum(math.comb(n, i) for i in range(min(lower, n - lower) + 1)) / 2 ** n)
        line += f"  p99 / mosquitto {baseline} {statistics.median(ratios):.3f}, lower in {lower} of {n} (sign test p={p:.3f})"
    print(line)
PY
