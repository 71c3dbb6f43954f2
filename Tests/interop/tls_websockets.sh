#!/usr/bin/env bash
# Interop checks of the TLS and WebSocket listeners with real clients: mosquitto_pub/mosquitto_sub with --cafile,
# --cert/--key (and a certificate revoked by crlfile), --psk/--psk-identity and -u/-P; a TLS client stalled
# mid-handshake; mqtt.js under Node over ws:// and wss://; headless Chromium running a page whose WebSocket
# connects, subscribes, publishes and receives (MQTT §6, RFC 6455).
#
# Usage: tls_websockets.sh --setup DIR FIXTURES PORT TLS_PORT MTLS_PORT WS_PORT WSS_PORT SUBJECT_PORT PSK_PORT
#            write DIR/passwd, DIR/psk, DIR/broker.conf (a plain listener, TLS, TLS with client certificates,
#            crlfile and use_identity_as_username, WebSocket, WebSocket over TLS, TLS with use_subject_as_username,
#            TLS-PSK with use_identity_as_username) and copy the certificates from FIXTURES
#        tls_websockets.sh DIR HOST PORT [CHECK...]    run the named checks (all when none are named)
#        tls_websockets.sh --list                       print the check names, one a line
# Each check prints `ok NAME` or `FAIL NAME: why`; the exit status is non-zero when any check failed.
set -uo pipefail

CHECKS=(
    tls_cafile_password tls_wrong_password tls_untrusted_server mtls_identity mtls_without_certificate mtls_revoked
    mtls_subject psk_identity psk_tls12 psk_refused psk_sighup
    tls_stalled_handshake ws_mqttjs wss_mqttjs ws_browser sighup_reload
)

ALICE_PASSWORD="alice-Secret-1"
PSK_IDENTITY="interop-device"
PSK_KEY="4d6964676550534b496e7465726f70"
INTEROP_DIR="$(cd "$(dirname "$0")" && pwd)"

# shellcheck source=lib.sh
source "$INTEROP_DIR/lib.sh"

if [ "${1:-}" = "--setup" ]; then
    [ $# -eq 10 ] || {
        echo "usage: $0 --setup DIR FIXTURES PORT TLS_PORT MTLS_PORT WS_PORT WSS_PORT SUBJECT_PORT PSK_PORT" >&2
        exit 2
    }
    dir=$2
    mkdir -p "$dir"
    for file in ca.crt ca.crl server.crt server.key client.crt client.key revoked-client.crt revoked-client.key \
        other-ca.crt; do
        cp "$3/$file" "$dir/$file" || exit 1
    done
    rm -f "$dir/passwd"
    mosquitto_passwd -c -b "$dir/passwd" alice "$ALICE_PASSWORD" || exit 1
    printf '# identity:hexkey\n%s:%s\n' "$PSK_IDENTITY" "$PSK_KEY" >"$dir/psk"
    cat >"$dir/ports" <<PORTS
TLS_PORT=$5
MTLS_PORT=$6
WS_PORT=$7
WSS_PORT=$8
SUBJECT_PORT=$9
PSK_PORT=${10}
PORTS
    cat >"$dir/broker.conf" <<CONF
allow_anonymous false
password_file $dir/passwd
connect_timeout 2

listener $4 127.0.0.1

listener $5 127.0.0.1
cafile $dir/ca.crt
certfile $dir/server.crt
keyfile $dir/server.key

listener $6 127.0.0.1
cafile $dir/ca.crt
certfile $dir/server.crt
keyfile $dir/server.key
require_certificate true
use_identity_as_username true
crlfile $dir/ca.crl

listener $7 127.0.0.1
protocol websockets
websockets_compression true

listener $8 127.0.0.1
protocol websockets
certfile $dir/server.crt
keyfile $dir/server.key

listener $9 127.0.0.1
cafile $dir/ca.crt
certfile $dir/server.crt
keyfile $dir/server.key
require_certificate true
use_subject_as_username true

listener ${10} 127.0.0.1
psk_hint midge-interop
psk_file $dir/psk
use_identity_as_username true
CONF
    chmod 755 "$dir"
    chmod 644 "$dir"/*
    exit 0
fi

if [ "${1:-}" != "--list" ]; then
    DIR=$1
    shift
    # shellcheck disable=SC1091
    source "$DIR/ports"
fi

alice=(-u alice -P "$ALICE_PASSWORD")

# On the plain listener, a subscriber for TOPIC as alice; its output is $WORK/NAME.out.
plain_sub() {
    local name=$1 topic=$2
    shift 2
    sub_ready "$name" "${alice[@]}" -q 1 -C 1 -W $WAIT_SECS -t "$topic" "$@"
}

check_tls_cafile_password() {
    PORT=$TLS_PORT sub_ready tls "${alice[@]}" --cafile "$DIR/ca.crt" -q 1 -C 1 -W $WAIT_SECS -t interop/tls/x \
        || return 1
    PORT=$TLS_PORT pub "${alice[@]}" --cafile "$DIR/ca.crt" -q 1 -t interop/tls/x -m "over TLS" || return 1
    expect tls "1 0 interop/tls/x over TLS"
}

check_tls_wrong_password() {
    timeout $WAIT_SECS mosquitto_sub -h "$HOST" -p "$TLS_PORT" --cafile "$DIR/ca.crt" -d -E -t x \
        -u alice -P wrong >"$WORK/wrong.out" 2>&1
    grep -q 'received CONNACK (5)' "$WORK/wrong.out" && return 0
    WHY="expected CONNACK 5, client printed: $(head -n 4 "$WORK/wrong.out" | tr '\n' ' ')"
    return 1
}

# The client verifies the broker: a CA that did not sign its certificate makes mosquitto_pub give up.
check_tls_untrusted_server() {
    if PORT=$TLS_PORT pub "${alice[@]}" --cafile "$DIR/other-ca.crt" -t interop/tls/no -m x; then
        WHY="mosquitto_pub trusted a server certificate from another CA"
        return 1
    fi
    return 0
}

# require_certificate + use_identity_as_username: the certificate alone logs in (its CN, device-42, is the user
# name; it is not in the password file), and the message reaches a subscriber on the plain listener.
check_mtls_identity() {
    plain_sub mtls interop/mtls/x || return 1
    PORT=$MTLS_PORT pub --cafile "$DIR/ca.crt" --cert "$DIR/client.crt" --key "$DIR/client.key" -q 1 \
        -t interop/mtls/x -m "by certificate" || return 1
    expect mtls "1 0 interop/mtls/x by certificate"
}

check_mtls_without_certificate() {
    if PORT=$MTLS_PORT pub "${alice[@]}" --cafile "$DIR/ca.crt" -t interop/mtls/no -m x; then
        WHY="a client without a certificate got through require_certificate"
        return 1
    fi
    return 0
}

# crlfile on the client-certificate listener: the certificate ca.crl revokes is refused in the handshake, and a
# valid one from the same CA still gets through.
check_mtls_revoked() {
    if PORT=$MTLS_PORT pub --cafile "$DIR/ca.crt" --cert "$DIR/revoked-client.crt" --key "$DIR/revoked-client.key" \
        -t interop/mtls/revoked -m x; then
        WHY="a revoked client certificate got through crlfile"
        return 1
    fi
    PORT=$MTLS_PORT pub --cafile "$DIR/ca.crt" --cert "$DIR/client.crt" --key "$DIR/client.key" \
        -t interop/mtls/valid -m x
}

# use_subject_as_username: the certificate alone logs in (its subject, not in the password file, is the user name)
# and the message reaches a subscriber on the plain listener; a client without a certificate does not get in.
check_mtls_subject() {
    plain_sub subject interop/subject/x || return 1
    PORT=$SUBJECT_PORT pub --cafile "$DIR/ca.crt" --cert "$DIR/client.crt" --key "$DIR/client.key" -q 1 \
        -t interop/subject/x -m "by subject" || return 1
    expect subject "1 0 interop/subject/x by subject" || return 1
    if PORT=$SUBJECT_PORT pub "${alice[@]}" --cafile "$DIR/ca.crt" -t interop/subject/no -m x; then
        WHY="a client without a certificate got through use_subject_as_username"
        return 1
    fi
}

# TLS-PSK with use_identity_as_username: the right key alone logs in (the identity, not in the password file, is the
# user name; allow_anonymous is false), over TLS 1.3 as mosquitto_pub offers it first.
psk=(--psk "$PSK_KEY" --psk-identity "$PSK_IDENTITY")
check_psk_identity() {
    plain_sub psk interop/psk/x || return 1
    PORT=$PSK_PORT pub "${psk[@]}" -q 1 -t interop/psk/x -m "by psk" || return 1
    expect psk "1 0 interop/psk/x by psk"
}

# TLS 1.2 with OpenSSL's own client, since mosquitto_pub applies --tls-version only with --cafile/--capath and so
# always offers TLS 1.3 with --psk: a PSK suite of mosquitto's default list, and CONNECT answered with CONNACK 0.
check_psk_tls12() {
    command -v openssl >/dev/null || { WHY="openssl is not installed"; return 1; }
    local out="$WORK/psk12.out"
    # CONNECT (MQTT 3.1.1, clean session, keepalive 60, client id "psk12"), then DISCONNECT.
    printf '\x10\x11\x00\x04MQTT\x04\x02\x00\x3c\x00\x05psk12\xe0\x00' \
        | timeout $WAIT_SECS openssl s_client -connect "$HOST:$PSK_PORT" -psk "$PSK_KEY" \
            -psk_identity "$PSK_IDENTITY" -tls1_2 -ign_eof >"$out" 2>&1
    grep -aq 'Cipher is .*PSK' "$out" \
        || { WHY="no TLS 1.2 PSK suite: $(grep -a -m 2 'Cipher is\|error' "$out" | tr '\n' ' ')"; return 1; }
    od -An -tx1 -v "$out" | tr -s ' \n' '  ' | grep -q '20 02 00 00' && return 0
    WHY="no CONNACK 0 over TLS 1.2 PSK"
    return 1
}

# A wrong key and an unknown identity fail the handshake, whatever CONNECT would have said.
check_psk_refused() {
    if PORT=$PSK_PORT pub --psk "${PSK_KEY%?}1" --psk-identity "$PSK_IDENTITY" "${alice[@]}" -t interop/psk/no -m x
    then
        WHY="a wrong PSK key got through"
        return 1
    fi
    if PORT=$PSK_PORT pub --psk "$PSK_KEY" --psk-identity stranger --tls-version tlsv1.2 -t interop/psk/no -m x; then
        WHY="an identity missing from psk_file got through"
        return 1
    fi
    return 0
}

# SIGHUP re-reads psk_file: an identity added to it can connect afterwards (INTEROP_BROKER_PID, as sighup_reload).
check_psk_sighup() {
    [ -n "${INTEROP_BROKER_PID:-}" ] || { WHY="INTEROP_BROKER_PID is not set"; return 1; }
    echo "late-device:0123456789abcdef" >>"$DIR/psk"
    kill -HUP "$INTEROP_BROKER_PID" || { WHY="could not signal the broker"; return 1; }
    local i
    for ((i = 0; i < 50; i++)); do
        PORT=$PSK_PORT pub --psk 0123456789abcdef --psk-identity late-device -t interop/psk/late -m x \
            2>/dev/null && return 0
        sleep 0.1
    done
    WHY="late-device, added to psk_file before SIGHUP, could not connect: $WHY"
    return 1
}

# A client that stops in the middle of its handshake: others keep connecting, and connect_timeout (2 s) closes it.
check_tls_stalled_handshake() {
    local out
    out=$(/usr/bin/python3 - "$HOST" "$TLS_PORT" "$DIR/ca.crt" "$ALICE_PASSWORD" <<'PY'
import socket, subprocess, sys, time
host, port, ca, password = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
stalled = socket.create_connection((host, port), timeout=15)
stalled.sendall(bytes([0x16, 0x03, 0x01, 0x02, 0x00, 0x01]))  # a ClientHello record that never completes
pub = subprocess.run(["timeout", "10", "mosquitto_pub", "-h", host, "-p", str(port), "--cafile", ca,
                      "-u", "alice", "-P", password, "-t", "interop/stall", "-m", "x"], capture_output=True)
if pub.returncode != 0:
    print("another TLS client could not publish while one stalled:", pub.stderr.decode()[:200]); sys.exit(1)
started = time.monotonic()
try:
    data = stalled.recv(100)
except socket.timeout:
    print("the stalled client was not closed within 15 s"); sys.exit(1)
except ConnectionResetError:
    data = b""
print("closed after %.1f s" % (time.monotonic() - started) if data == b"" else "unexpected bytes %r" % data[:20])
sys.exit(0 if data == b"" else 1)
PY
    ) && return 0
    WHY=$out
    return 1
}

# mqtt.js from Debian's node-mqtt: subscribe, publish QoS 1, receive its own message; a mosquitto_sub on the plain
# listener sees it too.
mqttjs() {
    local name=$1 url=$2
    shift 2
    plain_sub "$name" "interop/$name/x" || return 1
    local out
    # Debian installs node-mqtt under /usr/share/nodejs, which a node from elsewhere does not search.
    out=$(NODE_PATH=/usr/share/nodejs${NODE_PATH:+:$NODE_PATH} timeout $WAIT_SECS \
        node "$INTEROP_DIR/ws_mqttjs.js" "$url" "interop/$name/x" alice "$ALICE_PASSWORD" "$@" 2>&1) \
        || { WHY="mqtt.js: $(tail -n 3 <<<"$out" | tr '\n' ' ')"; return 1; }
    expect "$name" "1 0 interop/$name/x from mqtt.js"
}
check_ws_mqttjs() { mqttjs ws "ws://$HOST:$WS_PORT/mqtt"; }
check_wss_mqttjs() { mqttjs wss "wss://$HOST:$WSS_PORT/mqtt" "$DIR/ca.crt"; }

# Headless Chromium loads ws_browser.html, whose WebSocket connects, subscribes, publishes, receives its own
# message and then reports on interop/browser/result, which a mosquitto_sub on the plain listener waits for.
check_ws_browser() {
    local chrome
    chrome=$(command -v chromium || command -v chromium-browser || command -v chromium-headless-shell) \
        || { WHY="no chromium installed"; return 1; }
    plain_sub browser interop/browser/result || return 1
    local url="file://$INTEROP_DIR/ws_browser.html?port=$WS_PORT&user=alice&password=$ALICE_PASSWORD"
    # With a remote debugging port, headless Chromium keeps the page running until it is stopped (--dump-dom
    # would end it at the load event, before the WebSocket has done anything).
    timeout 60 "$chrome" --headless --no-sandbox --disable-gpu --disable-dev-shm-usage --no-first-run \
        --user-data-dir="$WORK/chrome" --remote-debugging-port=0 "$url" >"$WORK/browser.err" 2>&1 &
    local browser=$!
    BACKGROUND+=("$browser")
    local status=0
    expect browser "0 0 interop/browser/result received: from the browser" || status=1
    kill "$browser" 2>/dev/null
    wait "$browser" 2>/dev/null
    [ $status -eq 0 ] \
        || WHY="$WHY; chromium: $(grep -v dbus "$WORK/browser.err" | tail -n 2 | tr '\n' ' ' | head -c 300)"
    return $status
}

# SIGHUP (INTEROP_BROKER_PID, the broker the CI script started): a user added to the password file can log in
# afterwards, a subscriber connected before it still gets messages, and a broken certificate file keeps the
# previous certificate.
check_sighup_reload() {
    [ -n "${INTEROP_BROKER_PID:-}" ] || { WHY="INTEROP_BROKER_PID is not set"; return 1; }
    plain_sub kept interop/reload/x || return 1
    mosquitto_passwd -b "$DIR/passwd" carol carol-Secret-3 || { WHY="mosquitto_passwd failed"; return 1; }
    cp "$DIR/server.crt" "$DIR/server.crt.good"
    echo "not a certificate" >"$DIR/server.crt"
    kill -HUP "$INTEROP_BROKER_PID" || { WHY="could not signal the broker"; return 1; }
    local i ok=""
    for ((i = 0; i < 50; i++)); do
        if timeout $WAIT_SECS mosquitto_pub -h "$HOST" -p "$PORT" -u carol -P carol-Secret-3 -t interop/reload/x \
            -q 1 -m "after reload" 2>/dev/null; then
            ok=1
            break
        fi
        sleep 0.1
    done
    cp "$DIR/server.crt.good" "$DIR/server.crt"
    [ -n "$ok" ] || { WHY="carol, added before SIGHUP, could not log in"; return 1; }
    expect kept "1 0 interop/reload/x after reload" || return 1
    # The broken certificate was refused: TLS still works with the previous one.
    PORT=$TLS_PORT pub "${alice[@]}" --cafile "$DIR/ca.crt" -t interop/reload/tls -m x || return 1
    kill -HUP "$INTEROP_BROKER_PID"
}

interop_main "$@"
