#!/usr/bin/env bash
# Runs the same midge-bench scenarios against mosquitto and Midge in one run on this machine, alternating
# brokers per repetition so drifting background load hits both alike, and prints medians and ratios.
#
#   Tests/bench/compare.sh [--runs N] [--duration S] [--scenarios "fanin fanout topics qos1 qos2 latency shared idle"]
#                          [--threads N] [--idle-connections N] [--scratch-path DIR] [--midge-b PATH]
#
# --midge-b runs a second Midge binary (another commit's, built in release mode) in every row beside this tree's,
# with the same configuration: the before/after of a change, in one run.
#
# The latency rows also run midge-floor (Sources/midge-floor): one thread that copies each PUBLISH to the subscriber
# and acknowledges it, nothing else. Its percentiles are the machine's share of the row.
#
# `latency-warm` is the latency row with every CPU kept out of its idle state by a SCHED_IDLE spinner (it yields to
# any other thread at once). On a VM a wake-up sent to a halted vCPU can wait hundreds of microseconds for the host;
# that decides the plain row's p99 for both brokers. The warm row takes that away (not the host's preemption of
# busy vCPUs, which it makes likelier); see Docs/benchmarks.md, "Fourth round".
set -euo pipefail
cd "$(dirname "$0")/../.."

runs=3
duration=10
scenarios="fanin fanout topics qos1 qos2 latency shared idle durable restart"
threads=""
idle_connections=19000
scratch=.build
midge_b=""
while [ $# -gt 0 ]; do
  case "$1" in
    --runs) runs=$2; shift 2 ;;
    --duration) duration=$2; shift 2 ;;
    --scenarios) scenarios=$2; shift 2 ;;
    --threads) threads=$2; shift 2 ;;
    --idle-connections) idle_connections=$2; shift 2 ;;
    --scratch-path) scratch=$2; shift 2 ;;
    --midge-b) midge_b=$2; shift 2 ;;
    *) echo "unknown option $1" >&2; exit 2 ;;
  esac
done

# shellcheck source=Tests/bench/common.sh
source Tests/bench/common.sh

# Equivalent settings for both: loopback listener, anonymous clients, the same queue and in-flight limits.
common_config() {
  cat <<CONF
listener $1 127.0.0.1
allow_anonymous true
max_inflight_messages 20
max_queued_messages 1000
CONF
}

# The lossless rows (qos1, qos2): mosquitto is lossless only with an unbounded queue (max_queued_messages 0);
# midge keeps its 1000-message queue and holds publishers back instead (queue_full_policy block).
lossless_config() {  # broker scenario
  case "$2" in
    qos1|qos2) if [[ $1 == midge* ]]; then echo "queue_full_policy block"; else echo "max_queued_messages 0"; fi ;;
    # qos1 with persistence on, into a fresh store, to a persistent (clean session 0) subscriber: midge acknowledges
    # after the fsync (persistence_fsync always); mosquitto acknowledges at once and saves its database on exit.
    durable)
      local store
      store=$(mktemp -d "$work/store-$1-XXXX")
      if [[ $1 == midge* ]]; then echo "queue_full_policy block"; else echo "max_queued_messages 0"; fi
      echo "persistence true"
      echo "persistence_location $store/" ;;
  esac
}

start_broker() {  # name port scenario -> prints pid
  local name=$1 port=$2 config="$work/$1.conf"
  common_config "$port" > "$config"
  lossless_config "$name" "$3" >> "$config"
  if [[ $name == midge* ]]; then
    [ -n "$threads" ] && echo "threads $threads" >> "$config"
    local binary="$BIN/midge"
    [ "$name" = midge-b ] && binary=$midge_b
    "$binary" -c "$config" > "$work/$name.log" 2>&1 &
  elif [ "$name" = floor ]; then
    "$BIN/midge-floor" --port "$port" > "$work/$name.log" 2>&1 &
  else
    "$MOSQUITTO" -c "$config" > "$work/$name.log" 2>&1 &
  fi
  local pid=$!
  for _ in $(seq 1 100); do
    if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then echo "$pid"; return 0; fi
    sleep 0.1
  done
  echo "broker $name did not start; log:" >&2; cat "$work/$name.log" >&2; return 1
}

bench_args() {  # scenario -> midge-bench arguments
  case "$1" in
    fanin) echo "--scenario fanin" ;;
    fanout) echo "--scenario fanout" ;;
    topics) echo "--scenario topics" ;;
    qos1) echo "--scenario fanin --qos 1" ;;
    qos2) echo "--scenario fanin --qos 2" ;;
    durable) echo "--scenario fanin --qos 1 --persistent 1" ;;
    latency|latency-warm) echo "--scenario latency" ;;
    # 1 -> 8 workers of one $share group at QoS 1, 20,000 msg/s offered: CPU per delivery, each job to one worker.
    shared) echo "--scenario shared --qos 1 --rate 20000" ;;
    idle) echo "--scenario idle --connections $idle_connections --sources 4" ;;
  esac
}

results="$work/results.txt"
: > "$results"
for scenario in $scenarios; do
  [ "$scenario" = restart ] && continue  # measured on its own below
  for run in $(seq 1 "$runs"); do
    # The latency rows also run midge-floor, a relay that does none of a broker's work: the row as it reads when
    # the broker costs nothing.
    brokers="mosquitto midge"
    [ -n "$midge_b" ] && brokers="$brokers midge-b"
    [[ $scenario == latency* ]] && brokers="$brokers floor"
    for broker in $brokers; do
      # A fresh broker per run: idle-connection memory and queues must not carry over.
      port=$(free_port)
      pid=$(start_broker "$broker" "$port" "$scenario")
      pids+=("$pid")
      extra=""
      [ "$scenario" != idle ] && extra="--duration $duration"
      if [ "$scenario" = latency-warm ]; then start_spinners $(( duration + 10 )); fi
      # shellcheck disable=SC2046
      line=$("$BIN/midge-bench" $(bench_args "$scenario") $extra --port "$port" --broker-pid "$pid" | tee "$work/last.txt" | grep '^RESULT' || true)
      [ -z "$line" ] && { echo "no result for $broker $scenario:"; cat "$work/last.txt"; }
      echo "$broker $scenario $run $line" | tee -a "$results"
      kill "$pid"; wait "$pid" 2>/dev/null || true
      stop_spinners
    done
  done
done

# Restart time: midge started on a store of 1,000,000 retained messages and 100,000 persistent sessions (written
# by the MidgeStoreTests restart fixture), from exec until the core is restored, and the broker's RSS then.
if [[ " $scenarios " == *" restart "* ]]; then
  fixture="$work/restart-store"
  MIDGE_RESTART_FIXTURE="$fixture" swift test --scratch-path "$scratch" --filter RestartFixture > "$work/fixture.log" 2>&1 \
    || { echo "restart fixture failed:"; tail -20 "$work/fixture.log"; }
  du -sh "$fixture"
  for run in $(seq 1 "$runs"); do
    port=$(free_port)
    printf 'listener %s 127.0.0.1\nallow_anonymous true\npersistence true\npersistence_location %s\n' \
      "$port" "$fixture" > "$work/restart.conf"
    started=$(date +%s%N)
    "$BIN/midge" -c "$work/restart.conf" > "$work/restart.log" 2>&1 &
    pid=$!
    pids+=("$pid")
    for _ in $(seq 1 2400); do grep -q "Restored" "$work/restart.log" && break; sleep 0.025; done
    ready=$(( ($(date +%s%N) - started) / 1000000 ))
    rss=$(awk '/VmRSS/ {print $2}' "/proc/$pid/status")
    echo "restart run $run: restored after ${ready} ms, broker RSS ${rss} kB"
    grep -E "Store recovered|Restored" "$work/restart.log" | sed 's/^/    /'
    kill "$pid"; wait "$pid" 2>/dev/null || true
  done
fi

python3 - "$results" <<'PY'
import statistics, sys
rows = {}
for line in open(sys.argv[1]):
    parts = line.split()
    if len(parts) < 4: continue
    broker, scenario = parts[0], parts[1]
    fields = dict(p.split("=", 1) for p in parts[4:] if "=" in p)
    rows.setdefault((scenario, broker), []).append(fields)

def median(scenario, broker, key):
    values = []
    for fields in rows.get((scenario, broker), []):
        try: values.append(float(fields[key]))
        except (KeyError, ValueError): pass
    return statistics.median(values) if values else None

def fmt(v, digits=2):
    return "n/a" if v is None else (f"{v:,.0f}" if v >= 100 else f"{v:.{digits}f}")

print()
with_b = any(broker == "midge-b" for _, broker in rows)
if with_b:
    print("| scenario | metric | mosquitto | midge | midge / mosquitto | midge-b | midge / midge-b |")
    print("|---|---|---|---|---|---|---|")
else:
    print("| scenario | metric | mosquitto | midge | midge / mosquitto |")
    print("|---|---|---|---|---|")
seen = []
for scenario, _ in rows:
    if scenario in seen: continue
    seen.append(scenario)
    metrics = [("rss_per_connection", "RSS B/connection")] if scenario == "idle" else [
        ("delivered_per_s", "msg/s"), ("cpu_us_per_delivery", "broker CPU us/msg"), ("lost", "lost"),
        ("duplicates", "duplicates"), ("out_of_order", "out of order"), ("p50_us", "p50 us"), ("p99_us", "p99 us")]
    for key, label in metrics:
        m, g = median(scenario, "mosquitto", key), median(scenario, "midge", key)
        ratio = "n/a" if m in (None, 0) or g is None else f"{g / m:.2f}"
        if with_b:
            b = median(scenario, "midge-b", key)
            to_b = "n/a" if b in (None, 0) or g is None else f"{g / b:.2f}"
            print(f"| {scenario} | {label} | {fmt(m)} | {fmt(g)} | {ratio} | {fmt(b)} | {to_b} |")
        else:
            print(f"| {scenario} | {label} | {fmt(m)} | {fmt(g)} | {ratio} |")
print(f"\nmedians of {len(rows.get((seen[0], 'midge'), [])) if seen else 0} run(s) per broker and scenario")
# Latency is noisy on a shared machine: the pairs (each run's brokers ran back to back) say more than one median.
for scenario in ("latency", "latency-warm"):
    for broker in ("midge", "floor"):
        pairs = list(zip(rows.get((scenario, "mosquitto"), []), rows.get((scenario, broker), [])))
        ratios = [float(g["p99_us"]) / float(m["p99_us"]) for m, g in pairs if "p99_us" in m and "p99_us" in g]
        if ratios:
            lower = sum(1 for r in ratios if r < 1)
            print(f"{scenario} p99 {broker}/mosquitto per run: " + " ".join(f"{r:.2f}" for r in ratios)
                  + f" ({broker} lower in {lower} of {len(ratios)})")
    floor = [median(scenario, "floor", key) for key in ("p50_us", "p99_us", "p999_us")]
    if None not in floor:
        print(f"{scenario} floor (midge-floor, no broker work): p50 {floor[0]:.1f} us, p99 {floor[1]:.1f} us, "
              f"p99.9 {floor[2]:.1f} us")
durable, memory = median("durable", "midge", "delivered_per_s"), median("qos1", "midge", "delivered_per_s")
if durable is not None and memory:
    print(f"midge durable qos1 / in-memory qos1: {durable / memory:.2f} (target >= 0.50)")
PY
