#!/usr/bin/env python3
"""Counting clients for bridge.sh's kill checks (paho-mqtt 1.x API).

  bridge_counts.py sub PORT TOPIC CLIENT_ID OUT SECONDS
      A persistent-session subscriber (clean_session False, QoS 1, fixed client id) that reconnects whenever the
      broker goes away. Appends each received message number to OUT, one a line, for at most SECONDS, or until
      the file OUT.stop exists. Prints "subscribed" to OUT.ready once its first SUBACK has arrived.

  bridge_counts.py pub PORT TOPIC CLIENT_ID OUT COUNT RATE SECONDS
      Publishes COUNT numbered QoS 1 messages (payload = number, topic TOPIC/number) at RATE messages per
      second with clean_session False, reconnecting when the broker goes away (paho resends what was not
      acknowledged). When every message is acknowledged, or after SECONDS, writes the acknowledged numbers to
      OUT, one a line.

  bridge_counts.py tally ACKED RECEIVED
      Prints `acknowledged=A, received=R, lost=L, duplicated=D`, exits 1 when L > 0.
"""
import os
import sys
import threading
import time

import paho.mqtt.client as mqtt

HOST = "127.0.0.1"


def subscriber(port, topic, client_id, out, seconds):
    ready = out + ".ready"
    stop = out + ".stop"
    lock = threading.Lock()
    sink = open(out, "a", buffering=1)

    def on_connect(client, userdata, flags, rc):
        if rc == 0:
            client.subscribe(topic, qos=1)

    def on_subscribe(client, userdata, mid, granted):
        with open(ready, "w") as f:
            f.write("subscribed\n")

    def on_message(client, userdata, message):
        with lock:
            sink.write(message.payload.decode() + "\n")

    client = mqtt.Client(client_id=client_id, clean_session=False)
    client.on_connect = on_connect
    client.on_subscribe = on_subscribe
    client.on_message = on_message
    client.reconnect_delay_set(min_delay=1, max_delay=1)
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            client.connect(HOST, port, keepalive=5)
            break
        except OSError:
            time.sleep(0.2)
    client.loop_start()
    while time.monotonic() < deadline and not os.path.exists(stop):
        time.sleep(0.1)
    client.loop_stop()
    sink.close()


def publisher(port, topic, client_id, out, count, rate, seconds):
    # on_publish runs on paho's thread while paho holds its own lock: it only records the mid (no lock of ours,
    # which publish() below would otherwise wait on while paho waits on it). Mids are not reused below 65535.
    acked_mids = set()
    mids = {}

    def on_publish(client, userdata, mid):
        acked_mids.add(mid)

    client = mqtt.Client(client_id=client_id, clean_session=False)
    client.on_publish = on_publish
    client.max_queued_messages_set(0)
    client.max_inflight_messages_set(20)
    client.reconnect_delay_set(min_delay=1, max_delay=1)
    deadline = time.monotonic() + seconds
    client.connect(HOST, port, keepalive=5)
    client.loop_start()
    start = time.monotonic()
    for number in range(1, count + 1):
        # Bounded rate: message n leaves no earlier than n / RATE seconds after the start.
        delay = start + number / rate - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        # Kept by paho even while disconnected (QoS 1), and sent or resent once connected again.
        info = client.publish("%s/%d" % (topic, number), str(number), qos=1)
        mids[info.mid] = number
    while time.monotonic() < deadline and len(acked_mids) < count:
        time.sleep(0.1)
    client.loop_stop()
    with open(out, "w") as sink:
        for mid in sorted(set(acked_mids)):
            if mid in mids:
                sink.write("%d\n" % mids[mid])


def numbers(path):
    try:
        with open(path) as f:
            return [int(line) for line in f if line.strip()]
    except FileNotFoundError:
        return []


def tally(acked_path, received_path):
    acked = set(numbers(acked_path))
    received = numbers(received_path)
    distinct = set(received)
    lost = len(acked - distinct)
    print("acknowledged=%d, received=%d, lost=%d, duplicated=%d"
          % (len(acked), len(distinct), lost, len(received) - len(distinct)))
    return 1 if lost else 0


def main(argv):
    mode = argv[1]
    if mode == "sub":
        subscriber(int(argv[2]), argv[3], argv[4], argv[5], float(argv[6]))
    elif mode == "pub":
        publisher(int(argv[2]), argv[3], argv[4], argv[5], int(argv[6]), float(argv[7]), float(argv[8]))
    elif mode == "tally":
        return tally(argv[2], argv[3])
    else:
        print(__doc__, file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
