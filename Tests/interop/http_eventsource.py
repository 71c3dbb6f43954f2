#!/usr/bin/python3
"""HTTP gateway checks that need a real client library: an EventSource that reconnects with Last-Event-ID, and
/metrics parsed by Prometheus' own text-format parser. Used by http_gateway.sh; prints `ok NAME` or `FAIL NAME: why`.

Usage: http_eventsource.py resume HOST HTTP_PORT MQTT_PORT
       http_eventsource.py metrics HOST HTTP_PORT
"""
import base64
import http.client
import json
import os
import socket
import sys
import time

import paho.mqtt.client as mqtt

TIMEOUT = 10  # seconds for any one wait


class EventSource:
    """The WHATWG EventSource processing model over http.client: `id:`, `data:` and `event:` fields, comments
    ignored, the last id kept and sent back as Last-Event-ID when it reconnects (HTML §9.2)."""

    def __init__(self, host, port, path):
        self.host, self.port, self.path = host, port, path
        self.last_event_id = None
        self.connection = None
        self.response = None

    def connect(self):
        self.connection = http.client.HTTPConnection(self.host, self.port, timeout=TIMEOUT)
        headers = {"Accept": "text/event-stream", "Cache-Control": "no-cache", **credentials()}
        if self.last_event_id is not None:
            headers["Last-Event-ID"] = self.last_event_id
        self.connection.request("GET", self.path, headers=headers)
        # A stream has no length, so http.client hands the socket to the response: keep it to drop it later.
        self.sock = self.connection.sock
        self.response = self.connection.getresponse()
        if self.response.status != 200:
            raise RuntimeError(f"stream answered {self.response.status}: {self.response.read()[:200]!r}")
        content_type = self.response.getheader("Content-Type", "")
        if not content_type.startswith("text/event-stream"):
            raise RuntimeError(f"Content-Type {content_type}")

    def next_event(self):
        """The next dispatched event as (id, data); raises on timeout or end of stream."""
        data, event_id = [], None
        while True:
            line = self.response.fp.readline()
            if not line:
                raise RuntimeError("the stream ended")
            line = line.decode("utf-8").rstrip("\n").rstrip("\r")
            if line == "":
                if data:
                    if event_id is not None:
                        self.last_event_id = event_id
                    return event_id, "\n".join(data)
                continue
            if line.startswith(":"):
                continue
            name, _, value = line.partition(":")
            value = value[1:] if value.startswith(" ") else value
            if name == "data":
                data.append(value)
            elif name == "id":
                event_id = value

    def close(self):
        # Dropping the socket without reading further, as a browser tab going away does.
        self.sock.shutdown(socket.SHUT_RDWR)
        self.response.close()
        self.connection.close()


def credentials():
    """Basic credentials from HTTP_USER / HTTP_PASSWORD, when set."""
    user = os.environ.get("HTTP_USER")
    if not user:
        return {}
    token = base64.b64encode(f"{user}:{os.environ.get('HTTP_PASSWORD', '')}".encode()).decode()
    return {"Authorization": f"Basic {token}"}


def publisher(host, port):
    client = mqtt.Client(client_id=f"es-pub-{time.time_ns()}", clean_session=True)
    if os.environ.get("HTTP_USER"):
        client.username_pw_set(os.environ["HTTP_USER"], os.environ.get("HTTP_PASSWORD"))
    client.connect(host, port, keepalive=30)
    client.loop_start()
    return client


def publish(client, topic, payload):
    info = client.publish(topic, payload, qos=1)
    info.wait_for_publish(timeout=TIMEOUT)
    if not info.is_published():
        raise RuntimeError(f"publish to {topic} not acknowledged")


def check_resume(host, http_port, mqtt_port):
    run = time.time_ns()
    topic = f"interop/es-{run}"
    source = EventSource(host, http_port, f"/subscribe?topic={topic}&qos=1&client_id=es-{run}")
    source.connect()
    pub = publisher(host, mqtt_port)
    try:
        publish(pub, topic, "one")
        publish(pub, topic, "two")
        received = [source.next_event(), source.next_event()]
        payloads = [json.loads(data)["payload"] for _, data in received]
        if payloads != ["one", "two"]:
            raise RuntimeError(f"first connection got {payloads}")
        source.close()
        # While the browser is away: kept in its persistent session, then resumed from Last-Event-ID.
        publish(pub, topic, "three")
        publish(pub, topic, "four")
        source.connect()
        resumed = [source.next_event(), source.next_event()]
        payloads = [json.loads(data)["payload"] for _, data in resumed]
        if payloads != ["three", "four"]:
            raise RuntimeError(f"after reconnecting with Last-Event-ID got {payloads}")
        ids = [int(event_id) for event_id, _ in received + resumed]
        if ids != sorted(ids) or len(set(ids)) != 4:
            raise RuntimeError(f"ids not rising: {ids}")
        source.close()
    finally:
        pub.loop_stop()
        pub.disconnect()


def check_metrics(host, http_port):
    from prometheus_client.parser import text_string_to_metric_families

    connection = http.client.HTTPConnection(host, http_port, timeout=TIMEOUT)
    # With allow_anonymous false, /metrics needs credentials (unless http_metrics_open).
    connection.request("GET", "/metrics", headers=credentials())
    response = connection.getresponse()
    body = response.read().decode("utf-8")
    if response.status != 200:
        raise RuntimeError(f"/metrics answered {response.status}")
    if not response.getheader("Content-Type", "").startswith("text/plain; version=0.0.4"):
        raise RuntimeError(f"Content-Type {response.getheader('Content-Type')}")
    families = {family.name: family for family in text_string_to_metric_families(body)}
    # The parser strips `_total` from counter family names.
    for name in ["midge_clients_connected", "midge_messages_received", "midge_messages_sent", "midge_bytes_received",
                 "midge_messages_dropped", "midge_queued_messages", "midge_inflight_messages",
                 "midge_event_loop_cpu_seconds"]:
        if name not in families:
            raise RuntimeError(f"missing family {name}; have {sorted(families)}")
    qos_labels = {sample.labels.get("qos") for sample in families["midge_messages_received"].samples}
    if not {"0", "1", "2"} <= qos_labels:
        raise RuntimeError(f"messages_received by qos: {qos_labels}")


def main():
    if len(sys.argv) < 2:
        print(__doc__, file=sys.stderr)
        return 2
    name = sys.argv[1]
    try:
        if name == "resume":
            check_resume(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]))
        elif name == "metrics":
            check_metrics(sys.argv[2], int(sys.argv[3]))
        else:
            raise RuntimeError(f"no such check {name}")
    except Exception as error:  # any failure is reported as the check's reason
        print(f"FAIL {name}: {error}")
        return 1
    print(f"ok {name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
