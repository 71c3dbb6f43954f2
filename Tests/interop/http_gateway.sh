#!/usr/bin/env bash
# Interop checks of the HTTP gateway with curl, a Python EventSource and Prometheus' parser, and of `$SYS` with
# mosquitto_sub: POST /publish (answered once accepted) to MQTT subscribers, SSE with `curl -N`, resume with
# Last-Event-ID, long poll, /metrics, the password file and ACL over HTTP, bad requests that leave MQTT alone,
# and HTTP/2 (`curl --http2`) on a TLS HTTP listener the setup adds on a port of its choosing.
#
# Usage: http_gateway.sh --setup DIR MQTT_PORT HTTP_PORT   write DIR/passwd, DIR/acl and DIR/broker.conf: an MQTT
#                                                          listener and a `protocol http` listener on loopback
#        http_gateway.sh HOST MQTT_PORT HTTP_PORT [CHECK...]   run the named checks (all when none are named)
#        http_gateway.sh --list                            print the check names, one a line
# Each check prints `ok NAME` or `FAIL NAME: why`; the exit status is non-zero when any check failed.
set -uo pipefail

CHECKS=(
    http_publish_qos0 http_publish_qos1 http_publish_qos2 http_publish_bulk_json http_auth_and_acl
    http_sse_curl http_eventsource_resume http_longpoll http_metrics_prometheus http_bad_requests
    sys_topics sys_not_matched_by_hash
    http_unescaped_hash http_resume_without_client_id http_longpoll_new_connection http_short_poll http_topic_info
    http_metrics_credentials http_cors_preflight http_gzip http_console http2_sse_curl
)

BACKEND_PASSWORD="backend-Secret-1"
READER_PASSWORD="reader-Secret-2"
PYTHON=/usr/bin/python3
HERE=$(dirname "$0")

# shellcheck source=lib.sh
source "$HERE/lib.sh"

if [ "${1:-}" = "--setup" ]; then
    [ $# -eq 4 ] || { echo "usage: $0 --setup DIR MQTT_PORT HTTP_PORT" >&2; exit 2; }
    dir=$2
    mkdir -p "$dir"
    for file in ca.crt server.crt server.key; do
        cp "$HERE/../MidgeTLSTests/Fixtures/$file" "$dir/$file" || exit 1
    done
    # The TLS listener's port: the checks are called with the MQTT and HTTP ports only, and find this file next to
    # the running broker's configuration.
    "$PYTHON" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])' \
        >"$dir/https_port" || exit 1
    rm -f "$dir/passwd"
    mosquitto_passwd -c -b "$dir/passwd" backend "$BACKEND_PASSWORD" || exit 1
    mosquitto_passwd -b "$dir/passwd" reader "$READER_PASSWORD" || exit 1
    cat >"$dir/acl" <<'ACL'
# backend writes and reads the interop tree and reads $SYS; reader only reads.
user backend
topic readwrite interop/#
topic read $SYS/#

user reader
topic read interop/#
ACL
    cat >"$dir/broker.conf" <<CONF
listener $3 127.0.0.1
listener $4 127.0.0.1
protocol http
http_cors_origins http://app.test
http_compression true
http_console true
allow_anonymous false
password_file $dir/passwd
acl_file $dir/acl
sys_interval 1
listener $(cat "$dir/https_port") 127.0.0.1
protocol http
certfile $dir/server.crt
keyfile $dir/server.key
CONF
    chmod 755 "$dir"
    chmod 644 "$dir/passwd" "$dir/acl" "$dir/broker.conf" "$dir/https_port" "$dir/ca.crt" "$dir/server.crt" \
        "$dir/server.key"
    exit 0
fi

if [ "${1:-}" != "--list" ]; then
    [ $# -ge 3 ] || { echo "usage: $0 HOST MQTT_PORT HTTP_PORT [CHECK...] | --list" >&2; exit 2; }
    HTTP_PORT=$3
    set -- "$1" "$2" "${@:4}"
fi

RUN="$$-$RANDOM"
PREFIX="interop/http-$RUN"
backend=(-u backend -P "$BACKEND_PASSWORD")

# http METHOD PATH [CURL ARGS...]: one request; the status in STATUS, the body in $WORK/body.
http() {
    local method=$1 path=$2
    shift 2
    STATUS=$(curl -s -o "$WORK/body" -w '%{http_code}' --max-time $WAIT_SECS -X "$method" \
        "http://$HOST:$HTTP_PORT$path" "$@") || { WHY="curl $method $path failed"; return 1; }
}

# expect_http STATUS [BODY]: the last answer had this status (and exactly this body).
expect_http() {
    if [ "$STATUS" != "$1" ]; then
        WHY="expected HTTP $1, got $STATUS: $(head -c 200 "$WORK/body")"
        return 1
    fi
    if [ $# -ge 2 ] && [ "$(cat "$WORK/body")" != "$2" ]; then
        WHY="expected body [$2], got [$(head -c 200 "$WORK/body")]"
        return 1
    fi
}

# wait_for FILE TEXT: at most 10 s for TEXT to appear in FILE.
wait_for() {
    local i
    for ((i = 0; i < 100; i++)); do
        grep -qsF -- "$2" "$1" && return 0
        sleep 0.1
    done
    WHY="'$2' never appeared in $(basename "$1"): $(tail -c 300 "$1" 2>/dev/null | tr '\n' '|')"
    return 1
}

publish_over_http() {
    local qos=$1 topic="$PREFIX/qos$1" payload="http at qos $1: ünïcødé"
    sub_ready rt "${backend[@]}" -q 2 -C 1 -W $WAIT_SECS -t "$topic" || return 1
    http POST "/publish?topic=$topic&qos=$qos" -u "backend:$BACKEND_PASSWORD" --data-binary "$payload" || return 1
    expect_http 200 '{"published":1}' || return 1
    expect rt "$qos 0 $topic $payload"
}

check_http_publish_qos0() { publish_over_http 0; }
check_http_publish_qos1() { publish_over_http 1; }
check_http_publish_qos2() { publish_over_http 2; }

# The bulk form: one request, many messages, in order, each with its own QoS and retain flag.
check_http_publish_bulk_json() {
    local topic="$PREFIX/bulk"
    sub_ready bulk "${backend[@]}" -q 2 -C 3 -W $WAIT_SECS -t "$topic/#" || return 1
    http POST /publish -u "backend:$BACKEND_PASSWORD" -H 'Content-Type: application/json' --data-binary \
        "[{\"topic\":\"$topic/a\",\"payload\":\"one\"},{\"topic\":\"$topic/b\",\"payload\":\"two\",\"qos\":1},
          {\"topic\":\"$topic/c\",\"payload_base64\":\"dGhyZWU=\",\"qos\":2}]" || return 1
    expect_http 200 '{"published":3}' || return 1
    expect bulk "0 0 $topic/a one
1 0 $topic/b two
2 0 $topic/c three"
}

# The same password file and ACL as MQTT clients: 401 without or with refused credentials, 403 where the ACL refuses
# a publish. (Subscriptions are granted and deliveries filtered by the ACL, as in mosquitto.)
check_http_auth_and_acl() {
    http POST "/publish?topic=$PREFIX/auth" --data-binary x || return 1
    expect_http 401 || return 1
    grep -q '"error"' "$WORK/body" || { WHY="no error message"; return 1; }
    http POST "/publish?topic=$PREFIX/auth" -u "backend:wrong" --data-binary x || return 1
    expect_http 401 || return 1
    http POST "/publish?topic=$PREFIX/auth" -u "reader:$READER_PASSWORD" --data-binary x || return 1
    expect_http 403 || return 1
    http POST "/publish?topic=elsewhere/x" -u "backend:$BACKEND_PASSWORD" --data-binary x || return 1
    expect_http 403
}

# `curl -N` on the stream: events with rising ids as MQTT clients publish.
check_http_sse_curl() {
    local topic="$PREFIX/sse"
    curl -sN -i --max-time 20 -u "reader:$READER_PASSWORD" "http://$HOST:$HTTP_PORT/subscribe?topic=$topic" \
        >"$WORK/sse.out" 2>&1 &
    BACKGROUND+=("$!")
    # The head comes once the subscription is in place; `retry:` is the stream's first line.
    wait_for "$WORK/sse.out" "retry:" || return 1
    grep -q '^Content-Type: text/event-stream' "$WORK/sse.out" || { WHY="no event-stream head"; return 1; }
    pub "${backend[@]}" -q 1 -t "$topic" -m first || return 1
    pub "${backend[@]}" -q 1 -t "$topic" -m second || return 1
    wait_for "$WORK/sse.out" '"payload":"second"' || return 1
    # Ids are the listener's history ids (the start-up time in microseconds, then one more per message).
    local first second
    first=$(grep '^id: ' "$WORK/sse.out" | sed -n 1p | cut -c5-)
    second=$(grep '^id: ' "$WORK/sse.out" | sed -n 2p | cut -c5-)
    [ -n "$first" ] && [ -n "$second" ] && [ "$second" -gt "$first" ] && return 0
    WHY="ids not rising: $(grep '^id:' "$WORK/sse.out" | tr '\n' ' ')"
    return 1
}

check_http_eventsource_resume() {
    local output
    output=$(HTTP_USER=backend HTTP_PASSWORD=$BACKEND_PASSWORD \
        "$PYTHON" "$HERE/http_eventsource.py" resume "$HOST" "$HTTP_PORT" "$PORT" 2>&1)
    grep -qx "ok resume" <<<"$output" && return 0
    WHY=$(tail -n 3 <<<"$output" | tr '\n' ' ')
    return 1
}

# A persistent long-poll client: the first poll (timeout 0) creates the subscription; a message published while
# no poll waits is kept in its session and answered at once by the next poll, which names the last id it saw.
check_http_longpoll() {
    local topic="$PREFIX/poll" query
    query="topic=$topic&mode=longpoll&qos=1&client_id=poll-$RUN"
    http GET "/subscribe?$query&timeout=0" -u "reader:$READER_PASSWORD" || return 1
    expect_http 200 '{"messages":[]}' || return 1
    pub "${backend[@]}" -q 1 -t "$topic" -m waiting || return 1
    http GET "/subscribe?$query&timeout=10&last_event_id=0" -u "reader:$READER_PASSWORD" || return 1
    expect_http 200 || return 1
    grep -q '"payload":"waiting"' "$WORK/body" && return 0
    WHY="the poll answered $(head -c 200 "$WORK/body")"
    return 1
}

check_http_metrics_prometheus() {
    local output
    output=$(HTTP_USER=backend HTTP_PASSWORD=$BACKEND_PASSWORD \
        "$PYTHON" "$HERE/http_eventsource.py" metrics "$HOST" "$HTTP_PORT" 2>&1)
    grep -qx "ok metrics" <<<"$output" && return 0
    WHY=$(tail -n 3 <<<"$output" | tr '\n' ' ')
    return 1
}

# Unknown routes, wrong methods, bad JSON, oversized headers: the right 4xx with a message, and MQTT carries on.
check_http_bad_requests() {
    http GET /nowhere || return 1
    expect_http 404 || return 1
    http DELETE /publish || return 1
    expect_http 405 || return 1
    http POST /publish -u "backend:$BACKEND_PASSWORD" -H 'Content-Type: application/json' --data-binary '{"topic":' \
        || return 1
    expect_http 400 || return 1
    http GET /metrics -H "X-Big: $(head -c 40000 /dev/zero | tr '\0' a)" || return 1
    expect_http 431 || return 1
    grep -q '"error"' "$WORK/body" || { WHY="no error message"; return 1; }
    sub_ready after "${backend[@]}" -q 1 -C 1 -W $WAIT_SECS -t "$PREFIX/after" || return 1
    pub "${backend[@]}" -q 1 -t "$PREFIX/after" -m still-fine || return 1
    expect after "1 0 $PREFIX/after still-fine"
}

# --- The examples of Docs/http-api.md, one check each. ---

reader_http() { http "$@" -u "reader:$READER_PASSWORD"; }

# header NAME: the value of a header in $WORK/head (written by curl -D).
header() { tr -d '\r' <"$WORK/head" | sed -n "s/^$1: //Ip" | tail -n 1; }

# A filter ending in / is what topic=a/# becomes once the client cut the fragment: 400 with the %23 hint.
check_http_unescaped_hash() {
    reader_http GET "/subscribe?topic=$PREFIX/" || return 1
    expect_http 400 || return 1
    grep -q '%23' "$WORK/body" && return 0
    WHY="no %23 hint: $(head -c 200 "$WORK/body")"
    return 1
}

# An SSE stream without client_id, dropped; what is published meanwhile comes on a new connection that sends the
# last id it saw.
check_http_resume_without_client_id() {
    local topic="$PREFIX/resume" last
    curl -sN --max-time 20 -u "reader:$READER_PASSWORD" "http://$HOST:$HTTP_PORT/subscribe?topic=$topic" \
        >"$WORK/first.out" 2>&1 &
    local first=$!
    BACKGROUND+=("$first")
    wait_for "$WORK/first.out" "retry:" || return 1
    pub "${backend[@]}" -q 1 -t "$topic" -m before || return 1
    wait_for "$WORK/first.out" '"payload":"before"' || return 1
    kill "$first" 2>/dev/null
    last=$(grep '^id: ' "$WORK/first.out" | tail -n 1 | cut -c5-)
    [ -n "$last" ] || { WHY="no id on the first stream"; return 1; }
    pub "${backend[@]}" -q 1 -t "$topic" -m "while away" || return 1
    curl -sN --max-time 20 -u "reader:$READER_PASSWORD" -H "Last-Event-ID: $last" \
        "http://$HOST:$HTTP_PORT/subscribe?topic=$topic" >"$WORK/second.out" 2>&1 &
    BACKGROUND+=("$!")
    wait_for "$WORK/second.out" '"payload":"while away"' || return 1
    grep -q '"payload":"before"' "$WORK/second.out" || return 0
    WHY="the resumed stream repeated what the client had"
    return 1
}

# Two polls on separate connections (curl closes each): what came between them is in the second answer.
check_http_longpoll_new_connection() {
    local topic="$PREFIX/polls" cursor
    reader_http GET "/subscribe?topic=$topic&mode=poll" -D "$WORK/head" || return 1
    expect_http 200 '{"messages":[]}' || return 1
    cursor=$(header Last-Event-ID)
    [ -n "$cursor" ] || { WHY="no Last-Event-ID header"; return 1; }
    pub "${backend[@]}" -q 0 -t "$topic" -m "between polls" || return 1
    reader_http GET "/subscribe?topic=$topic&mode=longpoll&timeout=10&last_event_id=$cursor" || return 1
    expect_http 200 || return 1
    grep -q '"payload":"between polls"' "$WORK/body" && return 0
    WHY="the second poll answered $(head -c 200 "$WORK/body")"
    return 1
}

# A short poll answers at once: since=oldest gives what the history holds, since=<the last id> nothing.
check_http_short_poll() {
    local topic="$PREFIX/short" last
    reader_http GET "/subscribe?topic=$topic&mode=poll" || return 1
    pub "${backend[@]}" -q 1 -t "$topic" -m first || return 1
    pub "${backend[@]}" -q 1 -t "$topic" -m second || return 1
    reader_http GET "/subscribe?topic=$topic&mode=poll&since=oldest" -D "$WORK/head" || return 1
    expect_http 200 || return 1
    grep -q '"payload":"first".*"payload":"second"' "$WORK/body" || { WHY="got $(head -c 300 "$WORK/body")"; return 1; }
    last=$(header Last-Event-ID)
    reader_http GET "/subscribe?topic=$topic&mode=poll&since=$last" || return 1
    expect_http 200 '{"messages":[]}'
}

check_http_topic_info() {
    local topic="$PREFIX/info"
    reader_http GET "/subscribe?topic=$topic&mode=poll" || return 1
    pub "${backend[@]}" -q 1 -t "$topic" -m counted || return 1
    reader_http GET "/topic?topic=$topic" || return 1
    expect_http 200 || return 1
    grep -q "^{\"topic\":\"$topic\",\"subscribers\":0,\"messages\":1,\"last_id\":\"[0-9]*\"}$" "$WORK/body" \
        || { WHY="got $(head -c 300 "$WORK/body")"; return 1; }
    reader_http GET "/topic?topic=elsewhere/x" || return 1
    expect_http 403
}

# allow_anonymous is false here: /metrics needs credentials.
check_http_metrics_credentials() {
    http GET /metrics || return 1
    expect_http 401 || return 1
    reader_http GET /metrics || return 1
    expect_http 200 || return 1
    grep -q '^midge_clients_connected ' "$WORK/body" && return 0
    WHY="no midge_clients_connected in the metrics"
    return 1
}

check_http_cors_preflight() {
    http OPTIONS /publish -D "$WORK/head" -H 'Origin: http://app.test' -H 'Access-Control-Request-Method: POST' \
        -H 'Access-Control-Request-Headers: authorization, content-type' || return 1
    expect_http 204 || return 1
    [ "$(header Access-Control-Allow-Origin)" = "http://app.test" ] || { WHY="Allow-Origin: $(header Access-Control-Allow-Origin)"; return 1; }
    [ "$(header Access-Control-Allow-Methods)" = "POST, OPTIONS" ] || { WHY="Allow-Methods: $(header Access-Control-Allow-Methods)"; return 1; }
    http OPTIONS /publish -H 'Origin: http://evil.test' -H 'Access-Control-Request-Method: POST' || return 1
    expect_http 403
}

# With http_compression: a stream and a poll answer gzip-coded for a client that asks, decoded by curl.
check_http_gzip() {
    local topic="$PREFIX/gzip"
    curl -sN -D "$WORK/gzip.head" --compressed --max-time 20 -u "reader:$READER_PASSWORD" \
        "http://$HOST:$HTTP_PORT/subscribe?topic=$topic" >"$WORK/gzip.out" 2>&1 &
    BACKGROUND+=("$!")
    wait_for "$WORK/gzip.out" "retry:" || return 1
    grep -qi '^Content-Encoding: gzip' "$WORK/gzip.head" || { WHY="the stream is not gzip-coded"; return 1; }
    pub "${backend[@]}" -q 1 -t "$topic" -m "compressed $(head -c 300 /dev/zero | tr '\0' z)" || return 1
    wait_for "$WORK/gzip.out" '"payload":"compressed zzz' || return 1
    reader_http GET "/subscribe?topic=$topic&mode=poll&since=oldest" --compressed -D "$WORK/head" || return 1
    expect_http 200 || return 1
    [ "$(header Content-Encoding)" = "gzip" ] || { WHY="the poll answer is not gzip-coded"; return 1; }
    grep -q '"payload":"compressed zzz' "$WORK/body" && return 0
    WHY="curl could not decode the answer: $(head -c 100 "$WORK/body")"
    return 1
}

check_http_console() {
    http GET /console -D "$WORK/head" || return 1
    expect_http 200 || return 1
    [ "$(header Content-Type)" = "text/html; charset=utf-8" ] || { WHY="Content-Type $(header Content-Type)"; return 1; }
    grep -q 'new EventSource' "$WORK/body" && return 0
    WHY="not the console page"
    return 1
}

# HTTP/2 on the TLS listener: curl negotiates h2 by ALPN and multiplexes two SSE streams on one connection (-Z);
# a POST over h2 reaches both.
check_http2_sse_curl() {
    local conf dir port base topic="$PREFIX/h2" i
    curl -V | grep -q 'HTTP2' || { WHY="this curl has no HTTP/2"; return 1; }
    # The broker's own configuration, through the pid .ci/run exports, names the setup directory.
    conf=$(tr '\0' '\n' <"/proc/${INTEROP_BROKER_PID:-0}/cmdline" 2>/dev/null | sed -n '/^-c$/{n;p;}')
    dir=$(dirname "${conf:-/nonexistent/x}")
    [ -f "$dir/https_port" ] || { WHY="no TLS listener from --setup (INTEROP_BROKER_PID unset?)"; return 1; }
    port=$(cat "$dir/https_port")
    base="https://localhost:$port"
    local tls=(--cacert "$dir/ca.crt" --resolve "localhost:$port:$HOST")
    curl -sS -v -N -Z --http2 --max-time 20 "${tls[@]}" -u "reader:$READER_PASSWORD" \
        "$base/subscribe?topic=$topic" "$base/subscribe?topic=$topic" >"$WORK/h2.out" 2>"$WORK/h2.err" &
    BACKGROUND+=("$!")
    for ((i = 0; i < 100; i++)); do
        [ "$(grep -c '^retry:' "$WORK/h2.out")" -ge 2 ] && break
        sleep 0.1
    done
    if [ "$(grep -c '^retry:' "$WORK/h2.out")" -lt 2 ]; then
        WHY="two streams did not open: $(tail -c 300 "$WORK/h2.err")"
        return 1
    fi
    grep -q 'ALPN: server accepted h2' "$WORK/h2.err" || { WHY="h2 not negotiated"; return 1; }
    if [ "$(grep -c 'Connected to' "$WORK/h2.err")" -ne 1 ]; then
        WHY="the streams did not share one connection"
        return 1
    fi
    # The same password file and ACL per request as over HTTP/1.1.
    STATUS=$(curl -sS --http2 "${tls[@]}" -o "$WORK/body" -w '%{http_code}' --max-time $WAIT_SECS \
        -u "reader:$READER_PASSWORD" --data-binary x "$base/publish?topic=$topic") || { WHY="curl failed"; return 1; }
    expect_http 403 || return 1
    STATUS=$(curl -sS --http2 "${tls[@]}" -o "$WORK/body" -w '%{http_code}' --max-time $WAIT_SECS \
        --data-binary x "$base/publish?topic=$topic") || { WHY="curl failed"; return 1; }
    expect_http 401 || return 1
    STATUS=$(curl -sS --http2 "${tls[@]}" -o "$WORK/body" -w '%{http_version} %{http_code}' --max-time $WAIT_SECS \
        -u "backend:$BACKEND_PASSWORD" --data-binary h2-event "$base/publish?topic=$topic") \
        || { WHY="curl --http2 POST failed"; return 1; }
    expect_http "2 200" '{"published":1}' || return 1
    for ((i = 0; i < 100; i++)); do
        [ "$(grep -c '"payload":"h2-event"' "$WORK/h2.out")" -ge 2 ] && return 0
        sleep 0.1
    done
    WHY="the event did not reach both streams: $(tail -c 300 "$WORK/h2.out" | tr '\n' '|')"
    return 1
}

# mosquitto's $SYS names, retained, so a new subscriber has them at once.
check_sys_topics() {
    sub_start sys "${backend[@]}" -C 2 -W $WAIT_SECS -t '$SYS/broker/version' -t '$SYS/broker/clients/connected'
    wait "$SUB_PID" 2>/dev/null
    grep -q '^MSG 0 1 \$SYS/broker/version midge version ' "$WORK/sys.out" \
        && grep -q '^MSG 0 1 \$SYS/broker/clients/connected [0-9]' "$WORK/sys.out" && return 0
    WHY="got: $(grep '^MSG' "$WORK/sys.out" | tr '\n' '|')"
    return 1
}

# [MQTT-4.7.2-1] `#` does not match $SYS.
check_sys_not_matched_by_hash() {
    # Retained $SYS messages exist from the first round on, so a `#` that matched them would get them first.
    sub_ready hash "${backend[@]}" -q 0 -C 1 -W $WAIT_SECS -t '#' || return 1
    pub "${backend[@]}" -q 0 -t "$PREFIX/sentinel" -m sentinel || return 1
    expect hash "0 0 $PREFIX/sentinel sentinel"
}

interop_main "$@"
