#!/usr/bin/env python3
"""Interop scenarios with the unchanged paho-mqtt Python client against any MQTT 3.1.1 broker (spec §3, §4).

Usage: paho_scenarios.py --host H --port P [SCENARIO...]   run the named scenarios (all when none are named)
       paho_scenarios.py --list                           print the scenario names, one a line

Written against the paho-mqtt 1.6 API; on paho 2.x the clients ask for CallbackAPIVersion.VERSION1 so the same
callbacks apply. Each scenario prints `ok NAME` or `FAIL NAME: why`; the exit status is non-zero on any failure.
Every wait is bounded; negative checks ("X is not delivered") publish a sentinel after X on a path that would
carry X first, and assert the sentinel is what arrives.
"""
import argparse
import os
import random
import socket
import sys
import threading
import time
import warnings

import paho.mqtt.client as mqtt

# paho 2.x warns that callback API version 1 is deprecated; these scenarios use it on purpose (see above).
warnings.filterwarnings("ignore", category=DeprecationWarning, module=__name__)

# Longest wait for any single expected event (CONNACK, SUBACK, a message); a healthy broker needs milliseconds.
WAIT_SECONDS = 10.0
RUN = "%d-%d" % (os.getpid(), random.randrange(1 << 16))
PREFIX = "interop/paho-" + RUN


class ScenarioFailure(Exception):
    pass


def abbreviate(messages, limit=3):
    """The first few (topic, payload, qos, retain) tuples, payloads cut short, for failure messages."""
    shown = ["(%s, %r, %d, %s)" % (t, p[:40], q, r) for t, p, q, r in messages[:limit]]
    return "[" + ", ".join(shown) + (", ..." if len(messages) > limit else "") + "]"


def check(condition, why):
    if not condition:
        raise ScenarioFailure(why)


class Peer:
    """One paho client on paho's network thread, recording what its callbacks report. It never reconnects behind
    our back: a scenario must see every disconnect."""

    def __init__(self, client_id="", clean_session=True, protocol=mqtt.MQTTv311, will=None):
        options = dict(client_id=client_id, clean_session=clean_session, protocol=protocol,
                       reconnect_on_failure=False)
        if hasattr(mqtt, "CallbackAPIVersion"):
            self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION1, **options)
        else:
            self.client = mqtt.Client(**options)
        self.changed = threading.Condition()
        self.connack = None            # (flags dict, return code)
        self.disconnect_rc = None      # set when the connection ends, 0 only after our own DISCONNECT
        self.acknowledged = set()      # mids whose publish flow completed (on_publish)
        self.granted = {}              # SUBSCRIBE mid -> granted QoS list (on_subscribe)
        self.unsubscribed = set()      # UNSUBSCRIBE mids acknowledged (on_unsubscribe)
        self.messages = []             # (topic, payload, qos, retain) in arrival order
        self.log = []
        self.client.on_connect = self._on_connect
        self.client.on_disconnect = self._on_disconnect
        self.client.on_publish = self._on_publish
        self.client.on_subscribe = self._on_subscribe
        self.client.on_unsubscribe = self._on_unsubscribe
        self.client.on_message = self._on_message
        self.client.on_log = self._on_log
        if will is not None:
            self.client.will_set(*will)
        self.looping = False

    def connect(self, host, port, keepalive):
        self.client.connect(host, port, keepalive)
        self.client.loop_start()
        self.looping = True
        self.wait_for(lambda: self.connack is not None or self.disconnect_rc is not None, "CONNACK")
        # Without reconnect_on_failure, paho closes on CONNACK 0x01/0x02 rather than retrying, and says "protocol".
        check(self.connack is not None, "connection ended without an accepting CONNACK: %s"
              % mqtt.error_string(self.disconnect_rc))
        check(self.connack[1] == 0, "CONNACK return code %d" % self.connack[1])

    def _notify(self, update):
        with self.changed:
            update()
            self.changed.notify_all()

    def _on_connect(self, client, userdata, flags, rc):
        self._notify(lambda: setattr(self, "connack", (flags, rc)))

    def _on_disconnect(self, client, userdata, rc):
        self._notify(lambda: setattr(self, "disconnect_rc", rc))

    def _on_publish(self, client, userdata, mid):
        self._notify(lambda: self.acknowledged.add(mid))

    def _on_subscribe(self, client, userdata, mid, granted_qos):
        self._notify(lambda: self.granted.__setitem__(mid, list(granted_qos)))

    def _on_unsubscribe(self, client, userdata, mid):
        self._notify(lambda: self.unsubscribed.add(mid))

    def _on_message(self, client, userdata, message):
        entry = (message.topic, bytes(message.payload), message.qos, bool(message.retain))
        self._notify(lambda: self.messages.append(entry))

    def _on_log(self, client, userdata, level, text):
        self._notify(lambda: self.log.append(text))

    def wait_for(self, predicate, what, timeout=WAIT_SECONDS):
        """Wait for predicate; on time-out fail with `what` (a string, or a function giving one then)."""
        with self.changed:
            if not self.changed.wait_for(predicate, timeout):
                raise ScenarioFailure("no %s within %.0f s" % (what() if callable(what) else what, timeout))

    @property
    def session_present(self):
        return bool(self.connack[0].get("session present"))

    def subscribe(self, topics):
        """SUBSCRIBE to [(filter, qos)] and wait for the SUBACK; the grant must be what was asked for."""
        rc, mid = self.client.subscribe(topics)
        check(rc == mqtt.MQTT_ERR_SUCCESS, "subscribe() returned %d" % rc)
        self.wait_for(lambda: mid in self.granted, "SUBACK for mid %d" % mid)
        asked = [qos for _, qos in topics]
        check(self.granted[mid] == asked, "asked for QoS %s, granted %s" % (asked, self.granted[mid]))

    def unsubscribe(self, topic):
        rc, mid = self.client.unsubscribe(topic)
        check(rc == mqtt.MQTT_ERR_SUCCESS, "unsubscribe() returned %d" % rc)
        self.wait_for(lambda: mid in self.unsubscribed, "UNSUBACK for mid %d" % mid)

    def publish(self, topic, payload, qos, retain=False, timeout=WAIT_SECONDS):
        """Publish and wait until paho reports the flow complete (sent for QoS 0, PUBACK / PUBCOMP for 1 / 2)."""
        info = self.client.publish(topic, payload, qos, retain)
        check(info.rc == mqtt.MQTT_ERR_SUCCESS, "publish() returned %d" % info.rc)
        self.wait_for(lambda: info.mid in self.acknowledged, "completion of publish mid %d" % info.mid, timeout)
        return info.mid

    def wait_messages(self, count, timeout=WAIT_SECONDS):
        self.wait_for(lambda: len(self.messages) >= count,
                      lambda: "%d messages (got %d: %s)" % (count, len(self.messages), abbreviate(self.messages)),
                      timeout)
        return self.messages[:count]

    def close(self):
        """Disconnect cleanly (DISCONNECT, so no will) and stop the network thread."""
        if not self.looping:
            return
        if self.disconnect_rc is None:
            self.client.disconnect()
            with self.changed:
                self.changed.wait_for(lambda: self.disconnect_rc is not None, WAIT_SECONDS)
        self.client.loop_stop()
        self.looping = False

    def abort(self):
        """Drop the TCP connection without DISCONNECT, as a crashed device would."""
        self.client.loop_stop()
        self.looping = False
        sock = self.client.socket()
        if sock is not None:
            sock.shutdown(socket.SHUT_RDWR)
            sock.close()


class Scenario:
    """What one scenario needs: the broker address, a topic namespace of its own, and clean-up of its peers."""

    def __init__(self, host, port, name):
        self.host = host
        self.port = port
        self.topic = "%s/%s" % (PREFIX, name)
        self.peers = []

    def peer(self, keepalive=30, **options):
        p = Peer(**options)
        self.peers.append(p)
        p.connect(self.host, self.port, keepalive)
        return p

    def close(self):
        for p in self.peers:
            p.close()


def round_trip(s, qos):
    # Binary payload with every byte value; a second message proves the first arrived exactly once.
    payload = bytes(range(256)) * 4
    sub = s.peer()
    sub.subscribe([(s.topic, qos)])
    pub = s.peer()
    pub.publish(s.topic, payload, qos)
    pub.publish(s.topic, b"end", qos)
    got = sub.wait_messages(2)
    check(got == [(s.topic, payload, qos, False), (s.topic, b"end", qos, False)], "received %s" % abbreviate(got))


def scenario_qos0(s):
    round_trip(s, 0)


def scenario_qos1(s):
    round_trip(s, 1)


def scenario_qos2(s):
    round_trip(s, 2)


def scenario_session_resume(s):
    # [MQTT-3.1.2-4] [MQTT-3.1.2-5] [MQTT-3.2.2-2] queued QoS 1 and 2 messages await a clean_session False client.
    client_id = "interop-paho-" + RUN
    first = s.peer(client_id=client_id, clean_session=False)
    check(not first.session_present, "session present on the first connect of a new client id")  # [MQTT-3.2.2-3]
    first.subscribe([(s.topic, 2)])
    first.close()
    pub = s.peer()
    pub.publish(s.topic, b"queued-1", 1)
    pub.publish(s.topic, b"queued-2", 2)
    back = s.peer(client_id=client_id, clean_session=False)
    try:
        check(back.session_present, "CONNACK session present is 0 on resume")
        got = sorted(back.wait_messages(2))
        check(got == [(s.topic, b"queued-1", 1, False), (s.topic, b"queued-2", 2, False)],
              "resumed session received %r" % got)
    finally:
        back.close()
        s.peer(client_id=client_id, clean_session=True).close()  # [MQTT-3.1.2-6] discard the stored session


def scenario_will_on_abrupt_close(s):
    # [MQTT-3.1.2-8] the will is published when the connection drops without DISCONNECT.
    watcher = s.peer()
    watcher.subscribe([(s.topic, 1)])
    doomed = s.peer(client_id="interop-paho-will-" + RUN, will=(s.topic, b"bye", 1, False))
    doomed.abort()
    got = watcher.wait_messages(1)
    check(got[0] == (s.topic, b"bye", 1, False), "watcher received %r" % got)


def scenario_no_will_on_disconnect(s):
    # [MQTT-3.1.2-10] DISCONNECT discards the will.
    watcher = s.peer()
    watcher.subscribe([(s.topic, 1)])
    polite = s.peer(client_id="interop-paho-nowill-" + RUN, will=(s.topic, b"bye", 1, False))
    polite.close()
    s.peer().publish(s.topic, b"sentinel", 1)
    got = watcher.wait_messages(1)
    check(got[0] == (s.topic, b"sentinel", 1, False), "watcher received %r first" % (got[0],))


def scenario_retained_set_clear(s):
    # [MQTT-3.3.1-5] [MQTT-3.3.1-8] [MQTT-3.3.1-10] [MQTT-3.3.1-11]
    pub = s.peer()
    pub.publish(s.topic, b"kept", 1, retain=True)
    early = s.peer()
    early.subscribe([(s.topic, 1)])
    got = early.wait_messages(1)
    check(got[0] == (s.topic, b"kept", 1, True), "new subscriber received %r" % (got[0],))
    pub.publish(s.topic, b"", 1, retain=True)
    late = s.peer()
    late.subscribe([(s.topic, 1)])
    pub.publish(s.topic, b"live", 1)
    got = late.wait_messages(1)
    check(got[0] == (s.topic, b"live", 1, False), "after clearing, a new subscriber received %r first" % (got[0],))


def scenario_unsubscribe_stops_delivery(s):
    # [MQTT-3.10.4-6] no new messages for a filter once its UNSUBACK is sent.
    other = s.topic + "/other"
    sub = s.peer()
    sub.subscribe([(s.topic, 1), (other, 1)])
    pub = s.peer()
    pub.publish(s.topic, b"before", 1)
    sub.wait_messages(1)
    sub.unsubscribe(s.topic)
    pub.publish(s.topic, b"after", 1)
    pub.publish(other, b"sentinel", 1)
    got = sub.wait_messages(2)
    check(got == [(s.topic, b"before", 1, False), (other, b"sentinel", 1, False)], "received %r" % got)


def scenario_thousand_qos1_in_order(s):
    # [MQTT-4.6.0-5] one publisher's messages on one topic keep their order; QoS 1 loses none.
    count = 1000
    sub = s.peer()
    sub.subscribe([(s.topic, 1)])
    pub = s.peer()
    deadline = time.monotonic() + 45
    mids = [pub.client.publish(s.topic, str(i).encode(), 1).mid for i in range(count)]
    pub.wait_for(lambda: pub.acknowledged.issuperset(mids),
                 lambda: "PUBACK for all %d messages (got %d)" % (count, len(pub.acknowledged)),
                 deadline - time.monotonic())
    got = sub.wait_messages(count, max(1.0, deadline - time.monotonic()))
    expected = [(s.topic, str(i).encode(), 1, False) for i in range(count)]
    if got != expected:
        first = next(i for i in range(count) if got[i] != expected[i])
        raise ScenarioFailure("message %d is %r" % (first, got[first]))


def scenario_keepalive_ping(s):
    # [MQTT-3.1.2-23] a client that sends PINGREQ within its keepalive stays connected (PINGRESP, §3.13).
    idle = s.peer(keepalive=2)
    time.sleep(5)
    check(idle.disconnect_rc is None, "disconnected with rc %s while idle" % idle.disconnect_rc)
    check("Received PINGRESP" in idle.log, "no PINGRESP in 5 s with keepalive 2")
    idle.publish(s.topic, b"still here", 1)


def scenario_empty_client_id(s):
    # [MQTT-3.1.3-6] an empty client id with clean session 1 gets a unique id assigned; two such clients
    # at once must not take each other over.
    first = s.peer(client_id="")
    second = s.peer(client_id="")
    first.subscribe([(s.topic, 1)])
    second.subscribe([(s.topic, 1)])
    s.peer().publish(s.topic, b"both", 1)
    for name, p in (("first", first), ("second", second)):
        got = p.wait_messages(1)
        check(got[0] == (s.topic, b"both", 1, False), "%s received %r" % (name, got[0]))
        check(p.disconnect_rc is None, "%s was disconnected (rc %s)" % (name, p.disconnect_rc))


def scenario_takeover(s):
    # [MQTT-3.1.4-2] a second connection with the same client id closes the first one.
    client_id = "interop-paho-twin-" + RUN
    first = s.peer(client_id=client_id)
    second = s.peer(client_id=client_id)
    first.wait_for(lambda: first.disconnect_rc is not None, "disconnect of the first connection")
    check(first.disconnect_rc != 0, "first connection ended as if it had disconnected itself")
    second.subscribe([(s.topic, 1)])
    second.publish(s.topic, b"alive", 1)
    got = second.wait_messages(1)
    check(got[0] == (s.topic, b"alive", 1, False), "second connection received %r" % (got[0],))
    check(second.disconnect_rc is None, "second connection was disconnected too")


def scenario_mqtt31(s):
    # Protocol name MQIsdp, level 3: mosquitto accepts it and so must a drop-in (§3.1.2.2 allows it).
    old = s.peer(client_id=("i31-" + RUN)[:23], protocol=mqtt.MQTTv31)
    old.subscribe([(s.topic, 1)])
    s.peer().publish(s.topic, b"from 3.1.1", 1)
    got = old.wait_messages(1)
    check(got[0] == (s.topic, b"from 3.1.1", 1, False), "3.1 client received %r" % (got[0],))


SCENARIOS = {name[len("scenario_"):]: fn for name, fn in globals().items() if name.startswith("scenario_")}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=1883)
    parser.add_argument("--list", action="store_true", help="print the scenario names and exit")
    parser.add_argument("scenarios", nargs="*", metavar="SCENARIO")
    args = parser.parse_args()
    if args.list:
        print("\n".join(SCENARIOS))
        return 0
    failed = 0
    for name in args.scenarios or list(SCENARIOS):
        fn = SCENARIOS.get(name)
        if fn is None:
            print("FAIL %s: no such scenario" % name, flush=True)
            failed += 1
            continue
        s = Scenario(args.host, args.port, name)
        try:
            fn(s)
            print("ok " + name, flush=True)
        except ScenarioFailure as e:
            print("FAIL %s: %s" % (name, e), flush=True)
            failed += 1
        except (OSError, ValueError) as e:
            print("FAIL %s: %s: %s" % (name, type(e).__name__, e), flush=True)
            failed += 1
        finally:
            s.close()
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
