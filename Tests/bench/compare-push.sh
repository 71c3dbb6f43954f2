#!/usr/bin/env bash
# Runs the same push-gateway scenarios against Nchan (nginx with 1 and 2 workers), Midge's HTTP gateway
# (`threads 2`) and a floor server in one run on this machine, alternating servers per repetition so drifting
# background load hits all alike, and prints medians and ratios.
#
#   Tests/bench/compare-push.sh [--runs N] [--duration S] [--scenarios "fanout topics longpoll idle idle10k"]
#                               [--servers "nchan1 nchan2 midge floor"] [--topics-rate R] [--scratch-path DIR]
#                               [--midge-b BINARY]
#
# Scenarios (all on 127.0.0.1; the generator is Tests/bench/pushbench.py, one epoll thread):
#   fanout    1,000 SSE subscribers on one topic, one HTTP publisher at 50 msg/s
#   topics    5,000 SSE subscribers each on its own topic, HTTP publishes round-robin over them at --topics-rate
#             msg/s (default 500): one publish per delivery
#   longpoll  500 long-poll subscribers on one topic, one HTTP publisher at 20 msg/s
#   idle      100 messages published to one topic (the history), then 1,000 SSE streams opened on it, each
#             getting the newest; the server's RSS and PSS before and after, per stream
#   idle10k   the same with 10,000 streams
# Equivalent settings: Midge `http_history_messages 100`, `http_history_seconds 300`, new subscribers with
# `since=newest`; Nchan `nchan_message_buffer_length 100`, `nchan_message_timeout 300s`,
# `nchan_subscriber_first_message newest` (Tests/bench/nchan.conf.template). Midge's streams use `format=raw`, so
# each event's data is the payload itself, as Nchan's are.
#
# The floor (Tests/bench/push-floor.c, built here with cc) answers each publish and writes the event to every
# stream of its topic, and answers each long poll with what came after its id, nothing else: its CPU per delivery
# is the kernel's share, the limit of any ratio. It keeps no history for streams, so it skips the idle rows.
#
# --midge-b names another midge binary (e.g. a build of a proposed change): it runs as server `midge-b`, with
# Midge's settings, after `midge` in every repetition, for an A/B in the same run.
#
# Nchan: Debian's `nginx` and `libnginx-mod-nchan`. Run as root with apt-get they are installed when missing;
# otherwise the script says so and exits 0 without measuring.
set -euo pipefail
cd "$(dirname "$0")/../.."

runs=3
duration=10
scenarios="fanout topics longpoll idle idle10k"
servers="nchan1 nchan2 midge floor"
topics_rate=500
scratch=.build
midge_b=""
while [ $# -gt 0 ]; do
  case "$1" in
    --runs) runs=$2; shift 2 ;;
    --duration) duration=$2; shift 2 ;;
    --scenarios) scenarios=$2; shift 2 ;;
    --servers) servers=$2; shift 2 ;;
    --topics-rate) topics_rate=$2; shift 2 ;;
    --scratch-path) scratch=$2; shift 2 ;;
    --midge-b) midge_b=$2; servers="$servers midge-b"; shift 2 ;;
    *) echo "unknown option $1" >&2; exit 2 ;;
  esac
done

NGINX=$(command -v nginx || echo /usr/sbin/nginx)
MODULES=/usr/lib/nginx/modules
if [ ! -x "$NGINX" ] || [ ! -f "$MODULES/ngx_nchan_module.so" ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "installing nginx and libnginx-mod-nchan"
    DEBIAN_FRONTEND=noninteractive apt-get install -y nginx libnginx-mod-nchan >/dev/null
    NGINX=$(command -v nginx || echo /usr/sbin/nginx)
  else
    echo "skipped: needs nginx with Nchan (Debian: apt-get install -y nginx libnginx-mod-nchan, as root)"
    exit 0
  fi
fi
command -v cc >/dev/null || { echo "skipped: needs a C compiler (cc) for the floor server"; exit 0; }
for python_module in select resource; do python3 -c "import $python_module" || exit 2; done

swift build -c release --scratch-path "$scratch" --product midge >/dev/null
BIN=$(swift build -c release --scratch-path "$scratch" --show-bin-path)
work=$(mktemp -d)
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT
cc -O2 -o "$work/push-floor" Tests/bench/push-floor.c

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

start_server() {  # name port -> prints pid
  local name=$1 port=$2 pid
  case "$name" in
    midge|midge-b)
      cat > "$work/midge.conf" <<CONF
listener $port 127.0.0.1
protocol http
allow_anonymous true
threads 2
http_history_messages 100
http_history_seconds 300
CONF
      local binary="$BIN/midge"
      [ "$name" = midge-b ] && binary=$midge_b
      "$binary" -c "$work/midge.conf" > "$work/$name.log" 2>&1 &
      pid=$! ;;
    nchan1|nchan2)
      local prefix="$work/$name"
      rm -rf "$prefix"; mkdir -p "$prefix"
      sed -e "s|@WORK@|$prefix|g" -e "s|@PORT@|$port|g" -e "s|@WORKERS@|${name#nchan}|g" \
          -e "s|@HISTORY@|100|g" -e "s|@HISTORY_SECONDS@|300|g" -e "s|@MODULES@|$MODULES|g" \
          Tests/bench/nchan.conf.template > "$prefix/nginx.conf"
      "$NGINX" -p "$prefix" -e "$prefix/nginx-error.log" -c "$prefix/nginx.conf" > "$work/$name.log" 2>&1 &
      pid=$! ;;
    floor)
      "$work/push-floor" "$port" > "$work/floor.log" 2>&1 &
      pid=$! ;;
  esac
  for _ in $(seq 1 100); do
    if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then echo "$pid"; return 0; fi
    sleep 0.1
  done
  echo "server $name did not start; log:" >&2; cat "$work/$name.log" >&2; return 1
}

bench_args() {  # scenario -> pushbench arguments
  case "$1" in
    fanout) echo "--scenario sse --subscribers 1000 --topics 1 --rate 50 --duration $duration" ;;
    topics) echo "--scenario sse --subscribers 5000 --topics 5000 --rate $topics_rate --duration $duration" ;;
    longpoll) echo "--scenario longpoll --subscribers 500 --topics 1 --rate 20 --duration $duration" ;;
    idle) echo "--scenario idle --subscribers 1000 --history 100" ;;
    idle10k) echo "--scenario idle --subscribers 10000 --history 100" ;;
  esac
}

results="$work/results.txt"
: > "$results"
for scenario in $scenarios; do
  for run in $(seq 1 "$runs"); do
    for server in $servers; do
      # The floor keeps no history for streams: it skips the idle rows.
      if [ "$server" = floor ] && [[ $scenario == idle* ]]; then continue; fi
      dialect=$server; [[ $server == nchan* ]] && dialect=nchan; [ "$server" = midge-b ] && dialect=midge
      port=$(free_port)
      pid=$(start_server "$server" "$port")
      pids+=("$pid")
      # shellcheck disable=SC2046
      line=$(python3 Tests/bench/pushbench.py --server "$dialect" --port "$port" --pid "$pid" $(bench_args "$scenario") \
             2>&1 | tee "$work/last.txt" | grep '^RESULT' || true)
      [ -z "$line" ] && { echo "no result for $server $scenario:"; cat "$work/last.txt"; }
      echo "$server $scenario $run $line" | tee -a "$results"
      kill "$pid"; wait "$pid" 2>/dev/null || true
    done
  done
done

python3 - "$results" <<'PY'
import statistics, sys
rows = {}
for line in open(sys.argv[1]):
    parts = line.split()
    if len(parts) < 4: continue
    fields = dict(p.split("=", 1) for p in parts[4:] if "=" in p)
    rows.setdefault((parts[1], parts[0]), []).append(fields)

def median(scenario, server, key):
    values = []
    for fields in rows.get((scenario, server), []):
        try: values.append(float(fields[key]))
        except (KeyError, ValueError): pass
    return statistics.median(values) if values else None

def total(scenario, server, key):
    values = [int(f[key]) for f in rows.get((scenario, server), []) if key in f]
    return sum(values) if values else None

def fmt(v):
    return "n/a" if v is None else (f"{v:,.0f}" if abs(v) >= 100 else f"{v:.2f}")

def ratio(a, b):
    return "n/a" if a is None or not b else f"{a / b:.2f}"

print()
print("| scenario | metric | nchan 1 worker | nchan 2 workers | midge | floor | midge / nchan2 | midge / nchan1 | floor / nchan2 |")
print("|---|---|---|---|---|---|---|---|---|")
seen = []
for scenario, _ in rows:
    if scenario in seen: continue
    seen.append(scenario)
    if scenario.startswith("idle"):
        metrics = [("rss_per_subscriber", "RSS B/stream"), ("pss_per_subscriber", "PSS B/stream")]
    else:
        metrics = [("cpu_us_per_delivery", "server CPU us/delivery"), ("deliveries_per_s", "deliveries/s"),
                   ("rss_kb", "server RSS kB (end)"), ("gen_cpu_pct", "generator CPU %")]
    for key, label in metrics:
        values = {s: median(scenario, s, key) for s in ("nchan1", "nchan2", "midge", "floor", "midge-b")}
        print(f"| {scenario} | {label} | {fmt(values['nchan1'])} | {fmt(values['nchan2'])} | {fmt(values['midge'])} "
              f"| {fmt(values['floor'])} | {ratio(values['midge'], values['nchan2'])} "
              f"| {ratio(values['midge'], values['nchan1'])} | {ratio(values['floor'], values['nchan2'])} |")
        if values["midge-b"] is not None:
            print(f"| {scenario} | {label}, midge-b | | | {fmt(values['midge-b'])} | | "
                  f"{ratio(values['midge-b'], values['nchan2'])} | {ratio(values['midge-b'], values['nchan1'])} | |")
    for key in ("lost", "duplicates", "out_of_order", "foreign", "closed"):
        counts = {s: total(scenario, s, key) for s in ("nchan1", "nchan2", "midge", "floor", "midge-b")}
        print(f"| {scenario} | {key} (sum of runs) | " + " | ".join(
            "n/a" if counts[s] is None else str(counts[s]) for s in ("nchan1", "nchan2", "midge", "floor"))
            + (f" | midge-b: {counts['midge-b']} | |" if counts["midge-b"] is not None else " | | | |"))
print(f"\nmedians of {len(rows.get((seen[0], 'midge'), [])) if seen else 0} run(s) per server and scenario")
PY
