#!/usr/bin/env python3
"""Writes the hand-made seed corpus of midge-fuzz: valid and malformed MQTT 3.1.1 packets for the decoder entry
point, and scripted sessions of three clients for the core entry point (§2, §3, §4).

Usage: python3 Tests/fuzz/seeds.py [CORPUS_DIR]   (default: Tests/fuzz/corpus next to this script)

Seed files are named `seed-*`; files a fuzz run adds (named by libFuzzer after their SHA-1) are left alone.
The core input format is described in Sources/midge-fuzz/CoreTarget.swift.
"""
import os
import struct
import sys

# ---------------------------------------------------------------------------------------------------------------
# Packet builders (§2.2, §3)


def varint(n):
    out = bytearray()
    while True:
        byte = n & 0x7F
        n >>= 7
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)


def frame(first, body):
    return bytes([first]) + varint(len(body)) + body


def s(text):
    raw = text.encode() if isinstance(text, str) else text
    return struct.pack(">H", len(raw)) + raw


def u16(n):
    return struct.pack(">H", n)


def connect(client_id="c", clean=True, keepalive=60, will=None, user=None, password=None,
            name="MQTT", level=4, flags_extra=0):
    """will = (topic, payload, qos, retain)."""
    flags = flags_extra
    if clean:
        flags |= 0x02
    payload = s(client_id)
    if will:
        topic, message, qos, retain = will
        flags |= 0x04 | (qos << 3) | (0x20 if retain else 0)
        payload += s(topic) + s(message)
    if user is not None:
        flags |= 0x80
        payload += s(user)
    if password is not None:
        flags |= 0x40
        payload += s(password)
    return frame(0x10, s(name) + bytes([level, flags]) + u16(keepalive) + payload)


def publish(topic, payload=b"", qos=0, pid=1, retain=False, dup=False):
    first = 0x30 | (qos << 1) | (0x01 if retain else 0) | (0x08 if dup else 0)
    body = s(topic) + (u16(pid) if qos else b"") + (payload.encode() if isinstance(payload, str) else payload)
    return frame(first, body)


def ack(kind, pid):
    first = {"puback": 0x40, "pubrec": 0x50, "pubrel": 0x62, "pubcomp": 0x70, "unsuback": 0xB0}[kind]
    return frame(first, u16(pid))


def subscribe(pid, *requests):
    return frame(0x82, u16(pid) + b"".join(s(f) + bytes([q]) for f, q in requests))


def unsubscribe(pid, *filters):
    return frame(0xA2, u16(pid) + b"".join(s(f) for f in filters))


def connack(present, code):
    return frame(0x20, bytes([1 if present else 0, code]))


def suback(pid, *codes):
    return frame(0x90, u16(pid) + bytes(codes))


PINGREQ = bytes([0xC0, 0x00])
PINGRESP = bytes([0xD0, 0x00])
DISCONNECT = bytes([0xE0, 0x00])

# ---------------------------------------------------------------------------------------------------------------
# Decoder seeds: one stream of bytes each

VALID = {
    "connect-minimal": connect("a"),
    "connect-empty-id": connect("", keepalive=0),
    "connect-will-user-password": connect("c1", clean=False, keepalive=300, will=("w/t", b"bye", 1, True),
                                          user="user", password=b"\x00\xff\x10"),
    "connect-31": connect("abc", name="MQIsdp", level=3, keepalive=10),
    "connect-31-password-only": connect("abc", name="MQIsdp", level=3, password=b"pw"),
    "connect-non-ascii-id-qos2-will": connect("\u00e9", will=("a", b"", 2, False), user="u"),
    "connect-long-id": connect("x" * 300),
    "connack-codes": b"".join(connack(c == 0, c) for c in range(6)),
    "publish-qos0": publish("a/b", "hi"),
    "publish-retain-empty": publish("a/b", retain=True),
    "publish-qos1": publish("a/b", "x", qos=1, pid=10),
    "publish-qos2-dup-retain": publish("t", b"\x00\xff", qos=2, pid=65535, retain=True, dup=True),
    "publish-bom-topic": publish("\ufefft"),
    "publish-sys": publish("$SYS/broker/uptime", "1"),
    "publish-2-byte-length": publish("big", b"a" * 200),
    "publish-empty-levels": publish("/a//b/", "x"),
    "acks": ack("puback", 1) + ack("pubrec", 0x1234) + ack("pubrel", 0x1234) + ack("pubcomp", 65535)
    + ack("unsuback", 9),
    "subscribe-one": subscribe(1, ("a/b", 1)),
    "subscribe-wildcards": subscribe(0x0102, ("#", 0), ("+/x", 1), ("$SYS/#", 2), ("a/+/c", 2), ("+", 0)),
    "suback-codes": suback(0x0102, 0, 1, 2, 0x80),
    "unsubscribe-two": unsubscribe(9, "a/b", "#"),
    "heartbeat": PINGREQ + PINGRESP + DISCONNECT,
    "session": connect("s", clean=False) + subscribe(1, ("s/#", 2)) + publish("s/1", "a", qos=1, pid=2)
    + publish("s/2", "b", qos=2, pid=3) + ack("pubrel", 3) + ack("puback", 1) + PINGREQ
    + unsubscribe(4, "s/#") + DISCONNECT,
    "non-minimal-length": bytes([0xC0, 0x80, 0x00]) + bytes([0x30, 0x84, 0x00, 0x00, 0x01, 0x61]),
}

CONNECT_HEAD = s("MQTT") + bytes([4])

MALFORMED = {
    "type-0": bytes([0x00, 0x00]),
    "type-15": bytes([0xF0, 0x00]),
    "flags-puback": bytes([0x41, 0x02, 0x00, 0x01]),
    "flags-pubrel-0": bytes([0x60, 0x02, 0x00, 0x01]),
    "flags-subscribe-0": bytes([0x80, 0x06, 0x00, 0x01, 0x00, 0x01, 0x61, 0x00]),
    "flags-unsubscribe-3": bytes([0xA3, 0x05, 0x00, 0x01, 0x00, 0x01, 0x61]),
    "flags-connect": bytes([0x11, 0x00]),
    "flags-disconnect": bytes([0xE1, 0x00]),
    "flags-pingreq": bytes([0xC1, 0x00]),
    "publish-qos3": bytes([0x36, 0x05, 0x00, 0x01, 0x61, 0x00, 0x01]),
    "publish-dup-qos0": bytes([0x38, 0x03, 0x00, 0x01, 0x61]),
    "varint-5-bytes": bytes([0x30, 0xFF, 0xFF, 0xFF, 0xFF, 0x7F]),
    "varint-5-bytes-zero": bytes([0xC0, 0x80, 0x80, 0x80, 0x80, 0x00]),
    "varint-5th-announced": bytes([0x30, 0x80, 0x80, 0x80, 0x80]),
    "length-max": bytes([0x30, 0xFF, 0xFF, 0xFF, 0x7F]),
    "length-over-small-limits": bytes([0x30, 0x0B]) + s("abcdefghi"),
    "length-200-declared": bytes([0x30, 0xC8, 0x01, 0x00, 0x01, 0x61]),
    "puback-length-3": bytes([0x40, 0x03, 0x00, 0x01, 0x00]),
    "pingreq-length-1": bytes([0xC0, 0x01, 0x00]),
    "connack-length-3": bytes([0x20, 0x03, 0x00, 0x00, 0x00]),
    "id-0-puback": bytes([0x40, 0x02, 0x00, 0x00]),
    "id-0-publish": bytes([0x32, 0x05, 0x00, 0x01, 0x61, 0x00, 0x00]),
    "id-0-subscribe": bytes([0x82, 0x06, 0x00, 0x00, 0x00, 0x01, 0x61, 0x00]),
    "topic-empty": bytes([0x30, 0x02, 0x00, 0x00]),
    "topic-plus": publish("a/+"),
    "topic-hash": publish("sensors/t#"),
    "topic-surrogate": bytes([0x30, 0x05, 0x00, 0x03, 0xED, 0xA0, 0x80]),
    "topic-overlong": bytes([0x30, 0x05, 0x00, 0x03, 0x61, 0xC0, 0xAF]),
    "topic-nul": bytes([0x30, 0x05, 0x00, 0x03, 0x61, 0x00, 0x62]),
    "topic-ff": bytes([0x30, 0x04, 0x00, 0x02, 0x61, 0xFF]),
    "topic-truncated-sequence": bytes([0x30, 0x04, 0x00, 0x02, 0x61, 0xE2]),
    "topic-noncharacter": bytes([0x30, 0x05, 0x00, 0x03, 0xEF, 0xBF, 0xBF]),
    "topic-control-char": bytes([0x30, 0x04, 0x00, 0x02, 0x61, 0x01]),
    "topic-past-length": bytes([0x30, 0x03, 0x00, 0x05, 0x61]),
    "publish-length-0": bytes([0x30, 0x00]),
    "publish-qos1-no-id": bytes([0x32, 0x04, 0x00, 0x01, 0x61, 0x00]),
    "connect-name-mqtx": frame(0x10, s("MQTX") + bytes([4, 2]) + u16(60) + s("a")),
    "connect-name-lowercase": frame(0x10, s("mqtt") + bytes([4, 2]) + u16(60) + s("a")),
    "connect-mqtt-level-3": frame(0x10, s("MQTT") + bytes([3, 2]) + u16(60) + s("a")),
    "connect-level-5": frame(0x10, CONNECT_HEAD[:-1] + bytes([5, 2]) + u16(60) + s("a")),
    "connect-mqisdp-level-4": frame(0x10, s("MQIsdp") + bytes([4, 2]) + u16(60) + s("a")),
    "connect-reserved-flag": frame(0x10, CONNECT_HEAD + bytes([0x03]) + u16(60) + s("a")),
    "connect-will-qos-without-will": frame(0x10, CONNECT_HEAD + bytes([0x0A]) + u16(60) + s("a")),
    "connect-will-retain-without-will": frame(0x10, CONNECT_HEAD + bytes([0x22]) + u16(60) + s("a")),
    "connect-will-qos3": frame(0x10, CONNECT_HEAD + bytes([0x1E]) + u16(60) + s("a") + s("t") + s("m")),
    "connect-password-without-user": frame(0x10, CONNECT_HEAD + bytes([0x42]) + u16(60) + s("a") + s("p")),
    "connect-id-invalid-utf8": frame(0x10, CONNECT_HEAD + bytes([0x02]) + u16(60) + s(b"\xc3\x28")),
    "connect-id-nul": frame(0x10, CONNECT_HEAD + bytes([0x02]) + u16(60) + s(b"a\x00")),
    "connect-will-topic-wildcard": connect("a", will=("t/#", b"m", 0, False)),
    "connect-will-topic-empty": connect("a", will=("", b"m", 0, False)),
    "connect-user-invalid-utf8": connect("a", user=b"\xed\xbf\xbf"),
    "connect-truncated-id": frame(0x10, CONNECT_HEAD + bytes([0x02]) + u16(60) + u16(5) + b"ab"),
    "connect-truncated-will": frame(0x10, CONNECT_HEAD + bytes([0x06]) + u16(60) + s("a") + s("t")),
    "connect-trailing-bytes": frame(0x10, CONNECT_HEAD + bytes([0x02]) + u16(60) + s("a") + b"zz"),
    "connect-no-payload": frame(0x10, CONNECT_HEAD + bytes([0x02]) + u16(60)),
    "connect-header-only": frame(0x10, s("MQTT")),
    "subscribe-no-filters": frame(0x82, u16(1)),
    "subscribe-qos3": subscribe(1, ("a", 3)),
    "subscribe-qos-upper-bits": subscribe(1, ("a", 0x81)),
    "subscribe-filter-a-hash": subscribe(1, ("a#", 0)),
    "subscribe-filter-hash-middle": subscribe(1, ("a/#/b", 0)),
    "subscribe-filter-a-plus": subscribe(1, ("a+", 0)),
    "subscribe-filter-empty": subscribe(1, ("", 0)),
    "subscribe-missing-qos": frame(0x82, u16(1) + s("a")),
    "unsubscribe-no-filters": frame(0xA2, u16(1)),
    "unsubscribe-filter-invalid": unsubscribe(1, "a/#/b"),
    "suback-bad-code": suback(1, 0x03),
    "suback-no-codes": frame(0x90, u16(1)),
    "truncated-stream": connect("a")[:-1],
    "valid-then-garbage": PINGREQ + publish("a", "b") + bytes([0x00, 0x00]) + PINGREQ,
}

# ---------------------------------------------------------------------------------------------------------------
# Core seeds: a configuration byte, then records (see CoreTarget.swift)

STEP = {0: 0, "1ms": 1, "100ms": 2, "1s": 3, "10s": 4, "45s": 5, "100s": 6, "10000s": 7}
# Configuration byte 0, then byte 1.
INFLIGHT_2, SMALL_QUEUE, QUEUE_QOS0, MAX_QOS_1, NO_RETAIN, NO_EMPTY_ID, MAX_KEEPALIVE_60, NO_ANONYMOUS = (
    1 << i for i in range(8))
BLOCK, UNLIMITED_INFLIGHT, QUEUE_BYTES_ONLY, DURABLE, EXPIRY_60S = (1 << i for i in range(5))
EOF_, SOCKET_ERROR, SHUTDOWN, MALFORMED_CLOSE = range(4)
SYSTEM_TOPICS = ["$SYS/broker/uptime", "a/b", "w", "r/x", "q/1", "f", "$SYS/x", "a/b (delete)"]


class Session:
    def __init__(self, config=0, config2=0):
        self.out = bytearray([config, config2])

    def send(self, slot, data, step=0):
        """Bytes from a client: one record per 255 bytes, as successive reads."""
        data = bytes(data)
        first = True
        while data or first:
            chunk, data = data[:255], data[255:]
            self.out += bytes([(STEP[step] << 5) | slot, len(chunk)]) + chunk
            step, first = 0, False
        return self

    def tick(self, step=0):
        self.out += bytes([(STEP[step] << 5) | 3, 0x00])
        return self

    def end(self, slot, reason=EOF_, step=0):
        self.out += bytes([(STEP[step] << 5) | 3, 0x01 | (slot << 1) | (reason << 3)])
        return self

    def appends_complete(self, all_of_them=True, step=0):
        self.out += bytes([(STEP[step] << 5) | 3, (2 << 1) | (0 if all_of_them else 0x10)])
        return self

    def store_writable(self, writable, step=0):
        self.out += bytes([(STEP[step] << 5) | 3, (3 << 1) | (0 if writable else 0x10)])
        return self

    def congested(self, slot, step=0):
        self.out += bytes([(STEP[step] << 5) | 3, (4 << 1) | (slot << 4)])
        return self

    def drained(self, slot, step=0):
        self.out += bytes([(STEP[step] << 5) | 3, (5 << 1) | (slot << 4)])
        return self

    def system_publish(self, topic_index, retain, qos1=False, step=0):
        """The broker's own message; the payload is the event byte, empty for the last topic."""
        kind = 6 if retain else 7
        self.out += bytes([(STEP[step] << 5) | 3, (kind << 1) | (topic_index << 4) | (0x80 if qos1 else 0)])
        return self


def core_sessions():
    sessions = {}

    # QoS 0/1/2 both ways between a subscriber and a publisher, every acknowledgement.
    sessions["qos-flows"] = (Session()
        .send(0, connect("sub") + subscribe(1, ("a/#", 2)))
        .send(1, connect("pub") + publish("a/0", "zero") + publish("a/1", "one", qos=1, pid=7)
              + publish("a/2", "two", qos=2, pid=8))
        .send(0, ack("puback", 1) + ack("pubrec", 2) + ack("pubcomp", 2))
        .send(1, ack("pubrel", 8) + PINGREQ + DISCONNECT)
        .send(0, unsubscribe(3, "a/#", "nothing") + DISCONNECT))

    # Retained messages: stored, delivered on subscribe with RETAIN=1, replaced, cleared by an empty payload.
    sessions["retained"] = (Session()
        .send(1, connect("pub") + publish("r/x", "old", retain=True) + publish("r/x", "new", qos=1, pid=1, retain=True)
              + publish("r/y", "y", qos=2, pid=2, retain=True) + ack("pubrel", 2))
        .send(0, connect("sub") + subscribe(1, ("r/+", 1), ("r/#", 2)))
        .send(1, publish("r/x", retain=True))
        .send(0, subscribe(2, ("#", 0)) + ack("puback", 1) + ack("pubrec", 2)))

    # A persistent session collects QoS 1/2 while away, then gets them resent on reconnect.
    sessions["persistent-resume"] = (Session(QUEUE_QOS0)
        .send(0, connect("p", clean=False) + subscribe(1, ("q/#", 2)))
        .send(1, connect("pub") + publish("q/1", "1", qos=1, pid=1) + publish("q/2", "2", qos=2, pid=2))
        .send(0, ack("pubrec", 2))
        .end(0, SOCKET_ERROR, step="1s")
        .send(1, publish("q/3", "3", qos=1, pid=3) + publish("q/0", "0"))
        .send(2, connect("p", clean=False), step="10s")
        .send(2, ack("puback", 1) + ack("pubcomp", 2) + ack("puback", 3) + DISCONNECT)
        .send(0, connect("p", clean=True)))

    # Takeover: a second connection with the same client id closes the first, which fires its Will.
    sessions["takeover"] = (Session()
        .send(2, connect("watch") + subscribe(1, ("will/#", 2)))
        .send(0, connect("same", will=("will/same", b"gone", 1, False)))
        .send(1, connect("same", clean=False))
        .send(0, PINGREQ)
        .send(2, ack("puback", 1)))

    # Keepalive: a silent client is closed after 1.5 x keepalive and its retained Will is published.
    sessions["keepalive-will"] = (Session()
        .send(1, connect("watch", keepalive=0) + subscribe(1, ("w", 1)))
        .send(0, connect("quiet", keepalive=10, will=("w", b"timeout", 1, True)))
        .tick(step="10s")
        .send(0, PINGREQ, step="1s")
        .tick(step="10s")
        .tick(step="10s")
        .send(1, ack("puback", 1))
        .send(2, connect("late") + subscribe(1, ("w", 0))))

    # A small in-flight window and queue: deliveries wait, are dropped when the queue is full, then pumped.
    sessions["window-and-queue"] = (Session(INFLIGHT_2 | SMALL_QUEUE)
        .send(0, connect("slow") + subscribe(1, ("f", 2)))
        .send(1, connect("fast") + b"".join(publish("f", bytes([i]) * 20, qos=1 + i % 2, pid=i + 1) for i in range(8)))
        .send(0, ack("puback", 1) + ack("pubrec", 2) + ack("pubcomp", 2) + ack("puback", 3) + ack("pubrec", 4)
              + ack("pubcomp", 4)))

    # Protocol errors the core judges: second CONNECT, a server-only packet, QoS above max_qos.
    sessions["protocol-errors"] = (Session(MAX_QOS_1)
        .send(2, connect("watch") + subscribe(1, ("#", 2)))
        .send(0, connect("twice", will=("w/0", b"w", 0, False)) + connect("twice"))
        .send(0, connect("server-only", will=("w/1", b"w", 1, False)) + PINGRESP)
        .send(0, connect("greedy", will=("w/2", b"w", 2, False)) + publish("x", "y", qos=2, pid=1))
        .send(1, connect("acker") + connack(False, 0)))

    # What the driver judges: a first packet that is not CONNECT, an unknown protocol level, a malformed frame.
    sessions["driver-errors"] = (Session()
        .send(2, connect("watch") + subscribe(1, ("#", 1)))
        .send(0, PINGREQ + connect("never"))
        .send(0, frame(0x10, s("MQTT") + bytes([5, 2]) + u16(60) + s("v5")))
        .send(1, connect("bad", will=("bad/will", b"w", 0, False)) + publish("a", "b"))
        .send(1, bytes([0x30, 0x02, 0x00, 0x00]))
        .send(0, connect("ok") + bytes([0xF0, 0x00])))

    # Refusals: anonymous clients, empty ids with persistent sessions, long 3.1 ids, keepalive above max.
    sessions["refusals"] = (Session(NO_ANONYMOUS | NO_EMPTY_ID | MAX_KEEPALIVE_60)
        .send(0, connect("anon") + PINGREQ)
        .send(0, connect("", user="u"))
        .send(0, connect("", clean=False, user="u"))
        .send(0, connect("x" * 30, name="MQIsdp", level=3, user="u"))
        .send(0, connect("ka", keepalive=120, user="u"))
        .send(0, connect("fine", keepalive=60, user="u", password=b"p") + subscribe(1, ("#", 2))))

    # Reads split inside frames and several frames per read, including packets after DISCONNECT.
    stream = (connect("split", will=("s/w", b"w", 2, True)) + subscribe(1, ("s/#", 2))
              + publish("s/a", "1", qos=1, pid=1))
    sessions["split-reads"] = (Session()
        .send(0, stream[:3])
        .send(0, stream[3:17])
        .send(0, stream[17:] + ack("puback", 1))
        .send(1, connect("other") + publish("s/b", "2", qos=2, pid=9) + DISCONNECT + publish("s/c", "lost"))
        .send(0, ack("pubrec", 2) + DISCONNECT + PINGREQ))

    # $SYS is not for clients; overlapping subscriptions get one delivery at the best QoS; empty client ids.
    sessions["sys-overlap-empty-id"] = (Session(NO_RETAIN)
        .send(0, connect("") + subscribe(1, ("a/#", 0), ("a/+", 1), ("#", 2), ("$SYS/#", 2), ("+/b", 1)))
        .send(1, connect("", will=("a/b", b"will", 2, True)) + publish("$SYS/x", "no")
              + publish("a/b", "yes", qos=2, pid=4)
              + publish("a/b", "r", retain=True))
        .end(1, MALFORMED_CLOSE)
        .send(0, ack("pubrec", 1) + ack("pubrec", 1) + ack("pubcomp", 1) + ack("puback", 7) + ack("pubcomp", 9)))

    # Packet id rotation with a long series of QoS 1 messages, acknowledged in reverse order.
    many = Session(INFLIGHT_2).send(0, connect("r") + subscribe(1, ("n", 1))).send(1, connect("n"))
    for i in range(1, 6):
        many.send(1, publish("n", str(i), qos=1, pid=i))
    many.send(0, b"".join(ack("puback", i) for i in range(6, 0, -1)))
    sessions["id-rotation"] = many

    # queue_full_policy block: a full queue holds its publisher, whose PUBLISHes wait while its acks pass.
    sessions["block-hold-release"] = (Session(INFLIGHT_2 | SMALL_QUEUE, BLOCK)
        .send(0, connect("slow") + subscribe(1, ("f", 1)))
        .send(1, connect("fast") + subscribe(1, ("back", 1)))
        .send(2, connect("other") + publish("back", "b", qos=1, pid=1))
        .send(1, b"".join(publish("f", bytes([i]) * 8, qos=1, pid=i + 1) for i in range(8))
              + ack("puback", 1) + PINGREQ)
        .send(1, publish("f", "late", qos=1, pid=20) + DISCONNECT)
        .send(0, ack("puback", 1) + ack("puback", 2))
        .send(0, ack("puback", 3) + ack("puback", 4) + ack("puback", 5) + ack("puback", 6))
        .tick(step="100s"))

    # A held publisher that closes: what it sent before EOF is handed on first.
    sessions["block-eof"] = (Session(SMALL_QUEUE | INFLIGHT_2, BLOCK)
        .send(0, connect("slow") + subscribe(1, ("f", 2)))
        .send(1, connect("fast", will=("f", b"will", 1, False))
              + b"".join(publish("f", "x", qos=2, pid=i) for i in range(1, 9))
              + DISCONNECT)
        .end(1, EOF_)
        .send(0, ack("pubrec", 1) + ack("pubcomp", 1) + ack("pubrec", 2) + ack("pubcomp", 2)))

    # Congested output: deliveries, QoS 0 included, wait in the queue until the output drains.
    sessions["congestion"] = (Session(SMALL_QUEUE, QUEUE_BYTES_ONLY)
        .send(0, connect("sub") + subscribe(1, ("#", 1)))
        .send(1, connect("pub"))
        .congested(0)
        .send(1, publish("c/0", "zero") + publish("c/1", "one", qos=1, pid=1) + publish("c/2", "x" * 70, qos=1, pid=2))
        .drained(0)
        .congested(0)
        .congested(2)
        .send(0, ack("puback", 1))
        .drained(0)
        .drained(1))

    # The broker's own messages: $SYS, retained and deleted, at QoS 0 and 1.
    sessions["system-publish"] = (Session(0, UNLIMITED_INFLIGHT)
        .send(0, connect("sys") + subscribe(1, ("$SYS/#", 1), ("a/#", 2), ("w", 0)))
        .system_publish(0, retain=True)
        .system_publish(1, retain=True, qos1=True)
        .system_publish(2, retain=False)
        .send(1, connect("late") + subscribe(1, ("#", 2), ("$SYS/#", 0)))
        .system_publish(7, retain=True)
        .send(2, connect("later") + subscribe(1, ("a/b", 1))))

    # Persistence on: acknowledgements, CONNACKs and persistent deliveries wait for the store's appends.
    sessions["durable-flows"] = (Session(INFLIGHT_2, DURABLE)
        .send(0, connect("keep", clean=False) + subscribe(1, ("d/#", 2)))
        .send(1, connect("pub") + publish("d/1", "1", qos=1, pid=1) + publish("d/2", "2", qos=2, pid=2))
        .appends_complete(all_of_them=False)
        .send(1, ack("pubrel", 2) + publish("d/3", "3", qos=1, pid=3, retain=True))
        .appends_complete()
        .send(0, ack("puback", 1) + ack("pubrec", 2) + DISCONNECT)
        .send(1, publish("d/4", "4", qos=2, pid=4))
        .send(2, connect("keep", clean=False))
        .appends_complete(all_of_them=False)
        .send(2, ack("pubcomp", 2) + ack("puback", 3))
        .appends_complete())

    # The store cannot write: QoS 1/2 PUBLISHes are neither routed nor acknowledged until it can again.
    sessions["durable-unwritable"] = (Session(0, DURABLE)
        .send(0, connect("sub") + subscribe(1, ("u", 2)))
        .appends_complete()
        .store_writable(False)
        .send(1, connect("pub") + publish("u", "0") + publish("u", "1", qos=1, pid=1) + publish("u", "2", qos=2, pid=2))
        .store_writable(True)
        .send(1, publish("u", "1", qos=1, pid=1, dup=True) + publish("u", "2", qos=2, pid=2, dup=True))
        .appends_complete())

    # persistent_client_expiration: a persistent session left offline past the limit is gone on return.
    sessions["expiry"] = (Session(0, EXPIRY_60S)
        .send(0, connect("old", clean=False) + subscribe(1, ("x", 1)))
        .end(0, EOF_)
        .tick(step="45s")
        .tick(step="100s")
        .send(1, connect("old", clean=False), step="1s")
        .send(2, connect("pub") + publish("x", "1", qos=1, pid=1)))

    return {name: bytes(session.out) for name, session in sessions.items()}


def write(directory, name, data):
    os.makedirs(directory, exist_ok=True)
    with open(os.path.join(directory, "seed-" + name), "wb") as file:
        file.write(data)


def main():
    root = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(os.path.abspath(__file__)), "corpus")
    for name, data in {**VALID, **{"bad-" + k: v for k, v in MALFORMED.items()}}.items():
        write(os.path.join(root, "decoder"), name, data)
    core = core_sessions()
    for name, data in core.items():
        write(os.path.join(root, "core"), name, data)
    # The decoder's packets also make sessions: every valid packet after a CONNECT, on one connection.
    for name, data in VALID.items():
        write(os.path.join(root, "core"), "packets-" + name,
              bytes(Session().send(0, connect("d") + subscribe(1, ("#", 2))).send(1, connect("e") + data).out))
    print(f"wrote {len(VALID) + len(MALFORMED)} decoder seeds and {len(core) + len(VALID)} core seeds under {root}")


if __name__ == "__main__":
    main()
