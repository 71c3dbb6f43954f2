#!/usr/bin/env bash
# Drop-in checks: a mosquitto installation's configuration, service behaviour and packaging start Midge unchanged.
# Each check starts its own broker(s) on free loopback ports (or a unix socket in its own directory), talks to them
# with mosquitto_pub / mosquitto_sub, and stops them by pid; every wait is bounded.
#
# Usage: dropin.sh --list                           print the check names, one a line
#        dropin.sh BROKER WORKDIR [CHECK...]        run the named checks (all when none are named) with the broker
#                                                   executable BROKER, in scratch directories under WORKDIR
# Each check prints `ok NAME` or `FAIL NAME: why`; the exit status is non-zero when any check failed.
set -uo pipefail

CHECKS=(
    debian_stock_conf localhost_listeners interface_and_domain unix_socket several_ports user_nobody log_rotation_sighup
    signals_usr1_usr2 log_dest_topic daemonize sd_notify_ready moot_keys_warn_once errors_name_file_line_key
    systemd_unit deb_install import_mosquitto_db upgrade_outgoing_qos check_retain_source
)
# Configuration.mootKeys, which the moot_keys check expects one warning for each.
MOOT_KEYS=(
    allow_duplicate_messages auth_plugin_deny_special_chars autosave_interval autosave_on_changes dhparamfile
    http_dir max_topic_alias persistence_file retry_interval set_tcp_nodelay store_clean_interval websockets_log_level
)
REPO=$(cd "$(dirname "$0")/../.." && pwd)
PYTHON=/usr/bin/python3
WAIT_SECS=10

source "$(dirname "$0")/own_brokers.sh" "$@"

# start NAME ARGS...: start the broker in the background with output in $DIR/NAME.out; pid in PID. Waits (bounded)
# until the log says it runs.
start() {
    local name=$1
    shift
    "$BROKER" "$@" >"$DIR/$name.out" 2>&1 </dev/null &
    PID=$!
    PIDS+=("$PID")
    if ! until_true $WAIT_SECS grep -qs "midge version .* running" "$DIR/$name.out" "${LOGFILE:-/dev/null}"; then
        WHY="broker '$name' did not start: $(tail -n 5 "$DIR/$name.out" | tr '\n' ' ')"
        return 1
    fi
}

# stop PID: SIGTERM, then wait (bounded) for it to exit; false if it had to be killed.
stop() {
    local pid=$1
    kill -TERM "$pid" 2>/dev/null
    if until_true $WAIT_SECS eval "! kill -0 $pid 2>/dev/null"; then
        wait "$pid" 2>/dev/null
        return 0
    fi
    kill -KILL "$pid" 2>/dev/null
    WHY="broker $pid did not stop on SIGTERM"
    return 1
}

# roundtrip TOPIC CLIENT_ARGS...: a retained QoS 1 message published with CLIENT_ARGS comes back to a subscriber.
roundtrip() {
    local topic=$1 got
    shift
    timeout $WAIT_SECS mosquitto_pub "$@" -q 1 -r -t "$topic" -m "hello-$topic" 2>"$DIR/pub.err" || {
        WHY="publish with $* failed: $(head -c 200 "$DIR/pub.err")"
        return 1
    }
    got=$(timeout $WAIT_SECS mosquitto_sub "$@" -t "$topic" -C 1 -W $WAIT_SECS 2>&1)
    [ "$got" = "hello-$topic" ] && return 0
    WHY="subscriber with $* got [$got]"
    return 1
}

# Debian's /etc/mosquitto/mosquitto.conf, paths moved under $1.
stock_conf() {
    local root=$1
    mkdir -p "$root/run" "$root/lib" "$root/log" "$root/conf.d"
    cat >"$root/mosquitto.conf" <<CONF
# Place your local configuration in /etc/mosquitto/conf.d/
#
# A full description of the configuration file is at
# /usr/share/doc/mosquitto/examples/mosquitto.conf.example

pid_file $root/run/mosquitto.pid

persistence true
persistence_location $root/lib/

log_dest file $root/log/mosquitto.log

include_dir $root/conf.d
CONF
    echo "Any files placed in this directory that have a .conf ending will be loaded" >"$root/conf.d/README"
}

check_debian_stock_conf() {
    local port pid
    port=$(free_port)
    stock_conf "$DIR"
    printf 'listener %s 127.0.0.1\nallow_anonymous true\n' "$port" >"$DIR/conf.d/local.conf"
    LOGFILE="$DIR/log/mosquitto.log" start stock -c "$DIR/mosquitto.conf" || return 1
    roundtrip stock -h 127.0.0.1 -p "$port" || return 1
    pid=$(cat "$DIR/run/mosquitto.pid" 2>/dev/null)
    [ "$pid" = "$PID" ] || { WHY="pid file holds [$pid], broker pid is $PID"; return 1; }
    stop "$PID" || return 1
    [ ! -e "$DIR/run/mosquitto.pid" ] || { WHY="pid file still there after SIGTERM"; return 1; }
    # The stock file has nothing moot in it; only running as root (it has no `user` line) is worth a warning.
    if grep "Warning" "$DIR/log/mosquitto.log" | grep -vq "running as root"; then
        WHY="stock config gave warnings: $(grep Warning "$DIR/log/mosquitto.log" | head -n 2)"
        return 1
    fi
}

# `listener PORT localhost` binds every address the name resolves to here (Debian: 127.0.0.1 and ::1).
check_localhost_listeners() {
    local port family address
    port=$(free_port)
    printf 'listener %s localhost\nallow_anonymous true\n' "$port" >"$DIR/local.conf"
    start localhost -c "$DIR/local.conf" || return 1
    for address in $(getent ahosts localhost | awk '$2 == "STREAM" { print $1 }' | sort -u); do
        case $address in *:*) family=ipv6 ;; *) family=ipv4 ;; esac
        grep -q "Opening $family listen socket on port $port" "$DIR/localhost.out" || {
            WHY="localhost resolves to $address but no $family listener: $(grep Opening "$DIR/localhost.out")"
            return 1
        }
        roundtrip "lh$family" -h "$address" -p "$port" || return 1
    done
    stop "$PID"
}

# A wildcard listener narrowed to the loopback interface and to IPv4: nothing else of the machine is listened on.
check_interface_and_domain() {
    local port interface="bind_interface lo"
    port=$(free_port)
    if [ "$(id -u)" != 0 ]; then
        echo "interface_and_domain: not root, so without bind_interface (SO_BINDTODEVICE needs CAP_NET_RAW)"
        interface=""
    fi
    printf 'listener %s\nsocket_domain ipv4\n%s\nallow_anonymous true\n' "$port" "$interface" >"$DIR/lo.conf"
    start lo -c "$DIR/lo.conf" || return 1
    grep -q "Opening ipv4 listen socket on port $port" "$DIR/lo.out" || { WHY="no ipv4 listener"; return 1; }
    ! grep -q "Opening ipv6" "$DIR/lo.out" || { WHY="socket_domain ipv4 opened an ipv6 listener"; return 1; }
    roundtrip onlo -h 127.0.0.1 -p "$port" || return 1
    stop "$PID"
}

check_unix_socket() {
    printf 'listener 0 %s/mqtt.sock\nallow_anonymous true\n' "$DIR" >"$DIR/unix.conf"
    start unix -c "$DIR/unix.conf" || return 1
    roundtrip unixtopic --unix "$DIR/mqtt.sock" || return 1
    stop "$PID" || return 1
    # A socket file left behind is replaced on the next start.
    start unix2 -c "$DIR/unix.conf" || return 1
    roundtrip unixagain --unix "$DIR/mqtt.sock" || return 1
    stop "$PID"
}

check_several_ports() {
    local a b
    a=$(free_port)
    b=$(free_port)
    while [ "$a" = "$b" ]; do b=$(free_port); done
    start ports -p "$a" -p "$b" || return 1
    roundtrip porta -h 127.0.0.1 -p "$a" || return 1
    roundtrip portb -h 127.0.0.1 -p "$b" || return 1
    stop "$PID"
}

check_user_nobody() {
    local port uid expected
    if [ "$(id -u)" != 0 ]; then
        echo "user_nobody: not root, only the parse is checked"
        expected=$(id -u)
    else
        expected=$(id -u nobody)
    fi
    port=$(free_port)
    printf 'listener %s 127.0.0.1\nallow_anonymous true\nuser nobody\n' "$port" >"$DIR/user.conf"
    start user -c "$DIR/user.conf" || return 1
    uid=$(awk '/^Uid:/ { print $2 " " $3 " " $4 " " $5 }' "/proc/$PID/status")
    [ "$uid" = "$expected $expected $expected $expected" ] || { WHY="Uid line [$uid], expected $expected"; return 1; }
    roundtrip asnobody -h 127.0.0.1 -p "$port" || return 1
    stop "$PID"
}

# logrotate `nocreate`: the file is moved, then SIGHUP; the next line must land in a new file at the old path.
check_log_rotation_sighup() {
    local port
    port=$(free_port)
    printf 'listener %s 127.0.0.1\nallow_anonymous true\nlog_dest file %s/broker.log\nlog_type all\n' \
        "$port" "$DIR" >"$DIR/rotate.conf"
    LOGFILE="$DIR/broker.log" start rotate -c "$DIR/rotate.conf" || return 1
    mv "$DIR/broker.log" "$DIR/broker.log.1"
    kill -HUP "$PID"
    until_true $WAIT_SECS grep -qs "Received SIGHUP" "$DIR/broker.log" || {
        WHY="no new broker.log after SIGHUP: $(ls "$DIR")"
        return 1
    }
    roundtrip rotated -h 127.0.0.1 -p "$port" -i rotated-client || return 1
    until_true $WAIT_SECS grep -qs "rotated-client" "$DIR/broker.log" || { WHY="client lines not in new log"; return 1; }
    ! grep -q "rotated-client" "$DIR/broker.log.1" || { WHY="lines went on into the rotated file"; return 1; }
    # log_type all includes subscribe and unsubscribe, worded as mosquitto's: `ID QOS FILTER` and `ID FILTER`.
    grep -q ": rotated-client 0 rotated$" "$DIR/broker.log" || { WHY="subscription not logged"; return 1; }
    timeout $WAIT_SECS mosquitto_sub -h 127.0.0.1 -p "$port" -i unsub-client -q 1 -t gone -U gone -E >/dev/null 2>&1
    until_true $WAIT_SECS grep -qs ": unsub-client 1 gone$" "$DIR/broker.log" || { WHY="no subscribe line"; return 1; }
    until_true $WAIT_SECS grep -qs ": unsub-client gone$" "$DIR/broker.log" || {
        WHY="unsubscription not logged"
        return 1
    }
    stop "$PID"
}

check_signals_usr1_usr2() {
    local port
    port=$(free_port)
    printf 'listener %s 127.0.0.1\nallow_anonymous true\npersistence true\npersistence_location %s/store\n' \
        "$port" "$DIR" >"$DIR/signals.conf"
    start signals -c "$DIR/signals.conf" || return 1
    kill -USR1 "$PID"
    until_true $WAIT_SECS grep -q "Received SIGUSR1" "$DIR/signals.out" || { WHY="no SIGUSR1 line"; return 1; }
    # A persistent session keeps its subscription after the client leaves: SIGUSR2 lists it, as mosquitto's tree.
    timeout $WAIT_SECS mosquitto_sub -h 127.0.0.1 -p "$port" -c -i tree-client -q 1 -t 'tree/+' -E >/dev/null 2>&1
    kill -USR2 "$PID"
    until_true $WAIT_SECS grep -q "Received SIGUSR2" "$DIR/signals.out" || { WHY="no SIGUSR2 line"; return 1; }
    until_true $WAIT_SECS grep -q "tree/+ (tree-client, 1)" "$DIR/signals.out" || {
        WHY="subscription not in the SIGUSR2 tree: $(grep -A2 SIGUSR2 "$DIR/signals.out" | tr '\n' ' ')"
        return 1
    }
    kill -0 "$PID" 2>/dev/null || { WHY="broker exited after SIGUSR1/SIGUSR2"; return 1; }
    roundtrip aftersignals -h 127.0.0.1 -p "$port" || return 1
    stop "$PID"
}

# upgrade_outgoing_qos true: a QoS 0 message reaches a QoS 2 subscriber at QoS 2, live and as a retained replay.
check_upgrade_outgoing_qos() {
    local port got
    port=$(free_port)
    printf 'listener %s 127.0.0.1\nallow_anonymous true\nupgrade_outgoing_qos true\n' "$port" >"$DIR/upgrade.conf"
    start upgrade -c "$DIR/upgrade.conf" || return 1
    timeout $WAIT_SECS mosquitto_pub -h 127.0.0.1 -p "$port" -q 0 -r -t up/kept -m kept || { WHY="publish"; return 1; }
    got=$(timeout $WAIT_SECS mosquitto_sub -h 127.0.0.1 -p "$port" -q 2 -t up/kept -C 1 -W $WAIT_SECS \
        -F '%q %r %p' 2>&1)
    [ "$got" = "2 1 kept" ] || { WHY="retained replay arrived as [$got], expected QoS 2"; return 1; }
    timeout $WAIT_SECS mosquitto_sub -h 127.0.0.1 -p "$port" -q 2 -t up/live -C 1 -W $WAIT_SECS -F '%q %r %p' \
        >"$DIR/live.sub" 2>&1 &
    PIDS+=("$!")
    until_true $WAIT_SECS eval "timeout 2 mosquitto_pub -h 127.0.0.1 -p $port -q 0 -t up/live -m live; \
        grep -qs live '$DIR/live.sub'" || { WHY="live message never arrived"; return 1; }
    [ "$(head -n 1 "$DIR/live.sub")" = "2 0 live" ] || {
        WHY="live message arrived as [$(cat "$DIR/live.sub")]"
        return 1
    }
    stop "$PID"
}

# check_retain_source (on by default, as in mosquitto): once an ACL reload takes the setter's write permission
# away, its retained message is no longer replayed (mosquitto's test for CVE-2018-12546).
check_check_retain_source() {
    local port got
    port=$(free_port)
    printf 'topic readwrite test/topic\n' >"$DIR/acl"
    printf 'listener %s 127.0.0.1\nallow_anonymous true\nacl_file %s/acl\n' "$port" "$DIR" >"$DIR/source.conf"
    start source -c "$DIR/source.conf" || return 1
    roundtrip test/topic -h 127.0.0.1 -p "$port" -i retain-check || return 1
    printf 'topic read test/topic\n' >"$DIR/acl"
    kill -HUP "$PID"
    until_true $WAIT_SECS grep -qs "Reloaded the ACL file" "$DIR/source.out" || { WHY="ACL not reloaded"; return 1; }
    got=$(timeout $WAIT_SECS mosquitto_sub -h 127.0.0.1 -p "$port" -i retain-check -t test/topic -C 1 -W 2 2>&1)
    case "$got" in
        "" | "Timed out") ;;
        *) WHY="retained message replayed after its setter lost write access: [$got]"; return 1 ;;
    esac
    stop "$PID"
}

# log_dest topic: a line logged while a client subscribes to $SYS/broker/log/N reaches it.
check_log_dest_topic() {
    local port i
    port=$(free_port)
    printf 'listener %s 127.0.0.1\nallow_anonymous true\nlog_dest topic\nlog_dest stderr\n' "$port" >"$DIR/topic.conf"
    start topic -c "$DIR/topic.conf" || return 1
    timeout $WAIT_SECS stdbuf -oL mosquitto_sub -h 127.0.0.1 -p "$port" -d -t '$SYS/broker/log/N' -W $WAIT_SECS \
        >"$DIR/topic.sub" 2>&1 &
    PIDS+=("$!")
    until_true $WAIT_SECS grep -qs "received SUBACK" "$DIR/topic.sub" || { WHY="no SUBACK"; return 1; }
    kill -USR1 "$PID"
    until_true $WAIT_SECS grep -qs "Received SIGUSR1" "$DIR/topic.sub" || {
        WHY="log line not published: $(tail -n 3 "$DIR/topic.sub" | tr '\n' ' ')"
        return 1
    }
    stop "$PID"
}

check_daemonize() {
    local port pid status=0
    port=$(free_port)
    printf 'listener %s 127.0.0.1\nallow_anonymous true\npid_file %s/d.pid\nlog_dest file %s/d.log\n' \
        "$port" "$DIR" "$DIR" >"$DIR/daemon.conf"
    timeout $WAIT_SECS "$BROKER" -c "$DIR/daemon.conf" -d </dev/null >"$DIR/daemon.out" 2>&1 || status=$?
    [ $status -eq 0 ] || { WHY="midge -d exited $status: $(head -c 300 "$DIR/daemon.out")"; return 1; }
    pid=$(cat "$DIR/d.pid" 2>/dev/null)
    [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null || { WHY="no running daemon (pid file: [$pid])"; return 1; }
    PIDS+=("$pid")
    roundtrip daemon -h 127.0.0.1 -p "$port" || return 1
    kill -TERM "$pid"
    until_true $WAIT_SECS eval "! kill -0 $pid 2>/dev/null" || { WHY="daemon did not stop"; return 1; }
    # A start that fails reports it through -d's exit status.
    status=0
    timeout $WAIT_SECS "$BROKER" -c "$DIR/missing.conf" -d </dev/null >"$DIR/daemon-bad.out" 2>&1 || status=$?
    [ $status -eq 1 ] || { WHY="midge -d with a missing config exited $status"; return 1; }
}

# A test NOTIFY_SOCKET: a datagram socket that records what the broker sends.
check_sd_notify_ready() {
    local port
    port=$(free_port)
    "$PYTHON" - "$DIR/notify.sock" "$DIR/notify.txt" <<'PY' &
import socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind(sys.argv[1])
s.settimeout(20)
with open(sys.argv[2], "w") as out:
    try:
        while True:
            out.write(s.recv(4096).decode() + "\n---\n")
            out.flush()
    except socket.timeout:
        pass
PY
    PIDS+=("$!")
    until_true $WAIT_SECS test -S "$DIR/notify.sock" || { WHY="test notify socket not created"; return 1; }
    printf 'listener %s 127.0.0.1\n' "$port" >"$DIR/notify.conf"
    NOTIFY_SOCKET="$DIR/notify.sock" start notify -c "$DIR/notify.conf" || return 1
    until_true $WAIT_SECS grep -qx "READY=1" "$DIR/notify.txt" || { WHY="no READY=1: [$(cat "$DIR/notify.txt")]"; return 1; }
    grep -qx "MAINPID=$PID" "$DIR/notify.txt" || { WHY="no MAINPID=$PID: [$(cat "$DIR/notify.txt")]"; return 1; }
    kill -HUP "$PID"
    until_true $WAIT_SECS grep -qx "RELOADING=1" "$DIR/notify.txt" || { WHY="no RELOADING=1 on SIGHUP"; return 1; }
    stop "$PID" || return 1
    until_true $WAIT_SECS grep -qx "STOPPING=1" "$DIR/notify.txt" || { WHY="no STOPPING=1"; return 1; }
}

check_moot_keys_warn_once() {
    local port key count
    port=$(free_port)
    printf 'listener %s 127.0.0.1\n' "$port" >"$DIR/moot.conf"
    for key in "${MOOT_KEYS[@]}"; do echo "$key 1" >>"$DIR/moot.conf"; done
    start moot -c "$DIR/moot.conf" || return 1
    for key in "${MOOT_KEYS[@]}"; do
        count=$(grep -c "Warning: $DIR/moot.conf:[0-9]*: $key: accepted, no effect: " "$DIR/moot.out")
        [ "$count" = 1 ] || { WHY="$count warnings for $key"; return 1; }
    done
    count=$(grep -c "accepted, no effect" "$DIR/moot.out")
    [ "$count" = "${#MOOT_KEYS[@]}" ] || { WHY="$count warnings for ${#MOOT_KEYS[@]} keys"; return 1; }
    stop "$PID"
}

# expect_error NAME PATTERN ARGS...: the broker exits 1 at once with one error line matching PATTERN.
expect_error() {
    local name=$1 pattern=$2 status=0
    shift 2
    timeout $WAIT_SECS "$BROKER" "$@" >"$DIR/$name.out" 2>&1 </dev/null || status=$?
    [ $status -eq 1 ] || { WHY="$name: exit status $status, expected 1"; return 1; }
    grep -q "$pattern" "$DIR/$name.out" || { WHY="$name: no line matching [$pattern]: $(cat "$DIR/$name.out")"; return 1; }
}

check_errors_name_file_line_key() {
    local port holder
    expect_error missing "Error: $DIR/nope.conf: unable to open" -c "$DIR/nope.conf" || return 1
    printf '# a comment\nmax_qos 7\n' >"$DIR/bad.conf"
    expect_error badvalue "Error: $DIR/bad.conf:2: max_qos: " -c "$DIR/bad.conf" || return 1
    printf 'psk_file /x\n' >"$DIR/refused.conf"
    expect_error refused "Error: $DIR/refused.conf:1: psk_file: " -c "$DIR/refused.conf" || return 1
    port=$(free_port)
    printf 'listener %s 127.0.0.1\npid_file %s/busy.pid\n' "$port" "$DIR" >"$DIR/busy.conf"
    "$PYTHON" -c "import socket,time; s=socket.socket(); s.bind(('127.0.0.1', $port)); s.listen(); time.sleep(20)" &
    holder=$!
    PIDS+=("$holder")
    until_true $WAIT_SECS eval "ss -ltn 2>/dev/null | grep -q ':$port ' || ! command -v ss >/dev/null" || true
    expect_error busy "Error: $DIR/busy.conf:1: listener: Unable to listen on 127.0.0.1 port $port: it is in use" \
        -c "$DIR/busy.conf" || return 1
    kill "$holder" 2>/dev/null
    [ ! -e "$DIR/busy.pid" ] || { WHY="pid file left by a failed start"; return 1; }
}

check_systemd_unit() {
    local unit="$DIR/midge.service"
    # verify checks that ExecStart's program exists: point it at the broker under test.
    sed "s#/usr/sbin/midge#$BROKER#" "$REPO/Docs/packaging/midge.service" >"$unit"
    grep -q '^Type=notify$' "$unit" && grep -q '^ExecReload=/bin/kill -HUP \$MAINPID$' "$unit" || {
        WHY="unit lacks Type=notify or ExecReload"
        return 1
    }
    if command -v systemd-analyze >/dev/null; then
        # verify also opens the Documentation= man pages: serve them from the repository.
        mkdir -p "$DIR/man/man8" "$DIR/man/man5"
        cp "$REPO/Docs/man/midge.8" "$DIR/man/man8/"
        cp "$REPO/Docs/man/midge.conf.5" "$DIR/man/man5/"
        # Complaints about the host's own units are not ours: keep only lines about this file.
        MANPATH="$DIR/man" systemd-analyze verify "$unit" >"$DIR/verify.out" 2>&1
        if grep -q "midge.service" "$DIR/verify.out"; then
            WHY="systemd-analyze verify: $(grep midge.service "$DIR/verify.out" | head -n 3 | tr '\n' ' ')"
            return 1
        fi
    else
        # No systemd here: every line is a section header, a comment, blank, or Key=value.
        if grep -vqE '^(\[[A-Za-z]+\]|#.*|[A-Za-z]+=.*|)$' "$unit"; then
            WHY="malformed unit lines: $(grep -vE '^(\[[A-Za-z]+\]|#.*|[A-Za-z]+=.*|)$' "$unit" | head -n 2)"
            return 1
        fi
    fi
}

# The .deb, installed into a throwaway root: its files, its man pages, and the installed broker starting with the
# packaged configuration (paths moved into the root, `user midge` replaced by an account that exists).
check_deb_install() {
    local deb root="$DIR/root" port file
    command -v dpkg-deb >/dev/null || { WHY="dpkg-deb not found"; return 1; }
    deb=$(bash "$REPO/Docs/packaging/build-deb.sh" "$BROKER" "$DIR/deb" 2>"$DIR/build-deb.err" | tail -n 1)
    [ -f "$deb" ] || { WHY="build-deb.sh wrote no package: $(tail -n 3 "$DIR/build-deb.err")"; return 1; }
    mkdir -p "$root/var/lib/dpkg/updates" "$root/var/lib/dpkg/info"
    touch "$root/var/lib/dpkg/status"
    dpkg --root="$root" --force-script-chrootless --force-not-root --force-depends -i "$deb" >"$DIR/dpkg.out" 2>&1 || {
        WHY="dpkg -i failed: $(tail -n 3 "$DIR/dpkg.out" | tr '\n' ' ')"
        return 1
    }
    for file in usr/sbin/midge lib/systemd/system/midge.service etc/midge/midge.conf etc/midge/conf.d/README \
        etc/logrotate.d/midge usr/share/man/man8/midge.8.gz usr/share/man/man5/midge.conf.5.gz \
        usr/share/doc/midge/broker.conf.example var/lib/midge; do
        [ -e "$root/$file" ] || { WHY="package did not install /$file"; return 1; }
    done
    if command -v man >/dev/null; then
        man -l "$root/usr/share/man/man8/midge.8.gz" 2>/dev/null | grep -q "SIGUSR1" || { WHY="midge(8) does not render"; return 1; }
        man -l "$root/usr/share/man/man5/midge.conf.5.gz" 2>/dev/null | grep -q "include_dir" || {
            WHY="midge.conf(5) does not render"
            return 1
        }
    fi
    port=$(free_port)
    mkdir -p "$root/run/midge" "$root/var/log/midge"
    chmod 777 "$root/run/midge" "$root/var/log/midge" "$root/var/lib/midge"
    sed -e "s#/run/#$root/run/#; s#/var/#$root/var/#; s#/etc/#$root/etc/#; s#^user midge#user nobody#" \
        "$root/etc/midge/midge.conf" >"$root/etc/midge/test.conf"
    printf 'listener %s 127.0.0.1\nallow_anonymous true\n' "$port" >"$root/etc/midge/conf.d/test.conf"
    BROKER="$root/usr/sbin/midge" LOGFILE="$root/var/log/midge/midge.log" start installed -c "$root/etc/midge/test.conf" \
        || { WHY="$WHY; log: $(tail -n 3 "$root/var/log/midge/midge.log" 2>/dev/null | tr '\n' ' ')"; return 1; }
    roundtrip packaged -h 127.0.0.1 -p "$port" || return 1
    stop "$PID"
}

# The real mosquitto writes a mosquitto.db (a retained message, a persistent session with a queued message);
# `midge import-mosquitto` carries both into midge's store, where a restarted client finds them.
check_import_mosquitto_db() {
    local port mpid got
    command -v mosquitto >/dev/null || { WHY="mosquitto not installed"; return 1; }
    port=$(free_port)
    mkdir -p "$DIR/mosq"
    chmod 777 "$DIR/mosq"
    printf 'listener %s 127.0.0.1\nallow_anonymous true\npersistence true\npersistence_location %s/mosq/\n' \
        "$port" "$DIR" >"$DIR/mosq.conf"
    [ "$(id -u)" != 0 ] || echo "user root" >>"$DIR/mosq.conf"
    mosquitto -c "$DIR/mosq.conf" >"$DIR/mosq.log" 2>&1 &
    mpid=$!
    PIDS+=("$mpid")
    until_true $WAIT_SECS grep -qs "mosquitto version .* running" "$DIR/mosq.log" || { WHY="mosquitto did not start"; return 1; }
    timeout $WAIT_SECS mosquitto_pub -p "$port" -h 127.0.0.1 -q 1 -r -t mig/retained -m kept || { WHY="pub"; return 1; }
    timeout $WAIT_SECS mosquitto_sub -p "$port" -h 127.0.0.1 -i migrant -c -q 1 -t 'mig/queue/#' -E >/dev/null 2>&1
    timeout $WAIT_SECS mosquitto_pub -p "$port" -h 127.0.0.1 -q 1 -t mig/queue/1 -m waiting || { WHY="pub"; return 1; }
    kill -TERM "$mpid"
    until_true $WAIT_SECS eval "! kill -0 $mpid 2>/dev/null" || { WHY="mosquitto did not stop"; return 1; }
    [ -s "$DIR/mosq/mosquitto.db" ] || { WHY="mosquitto wrote no mosquitto.db"; return 1; }
    port=$(free_port)
    printf 'listener %s 127.0.0.1\nallow_anonymous true\npersistence true\npersistence_location %s/store\n' \
        "$port" "$DIR" >"$DIR/midge.conf"
    "$BROKER" import-mosquitto -c "$DIR/midge.conf" "$DIR/mosq" >"$DIR/import.out" 2>&1 || {
        WHY="import failed: $(cat "$DIR/import.out")"
        return 1
    }
    grep -q "Imported 1 retained messages and 1 persistent sessions" "$DIR/import.out" || {
        WHY="import said: $(cat "$DIR/import.out")"
        return 1
    }
    start imported -c "$DIR/midge.conf" || return 1
    got=$(timeout $WAIT_SECS mosquitto_sub -p "$port" -h 127.0.0.1 -t mig/retained -C 1 -W $WAIT_SECS 2>&1)
    [ "$got" = "kept" ] || { WHY="retained message: [$got]"; return 1; }
    got=$(timeout $WAIT_SECS mosquitto_sub -p "$port" -h 127.0.0.1 -i migrant -c -q 1 -t 'mig/queue/#' -C 1 -W $WAIT_SECS 2>&1)
    [ "$got" = "waiting" ] || { WHY="queued message: [$got]"; return 1; }
    stop "$PID"
}

run_checks mosquitto_sub mosquitto_pub timeout "$PYTHON"
