#!/usr/bin/env python3
"""pushbench: drives an HTTP push server over loopback and charges the server's CPU and memory per delivery.

One thread, one epoll set, non-blocking sockets. Servers: `midge` (Midge's gateway: /publish, /subscribe),
`nchan` (the locations of Tests/bench/nchan.conf.template: /pub/ID, /sse/ID, /lp/ID) and `floor`
(Tests/bench/push-floor.c, which takes Midge's URLs). Scenarios:

  sse          SUBSCRIBERS Server-Sent Events streams spread over TOPICS topics, one HTTP publisher at RATE msg/s
               (publishes go round-robin over the topics, so with TOPICS = SUBSCRIBERS each publish is one
               delivery: the "HTTP publish -> SSE delivery" row)
  longpoll     SUBSCRIBERS long-poll loops on TOPICS topics, the same publisher
  idle         one stream opened on a topic, HISTORY messages published to it, then SUBSCRIBERS streams opened on
               it ("newest" first message) and one more message published, which each must get; the server's RSS
               and PSS before the streams and after, per stream

Every payload is `t=TOPIC;n=SEQ;` padded with `x` to --payload bytes, so each subscriber counts what it got
against what was published to its topic: lost, duplicated, out of order, foreign. Publishes are made at fixed times (k / RATE)
on --publishers keep-alive connections, one request at a time each; every answer must be 2xx. Every phase is bounded in time.
Prints one line `RESULT key=value ...`.
"""
import argparse
import collections
import os
import re
import resource
import select
import socket
import sys
import time

EVENT = re.compile(rb"t=(\d+);n=(\d+);")
TICKS = os.sysconf("SC_CLK_TCK")


def payload(topic, seq, size):
    head = b"t=%d;n=%d;" % (topic, seq)
    return head + b"x" * max(0, size - len(head))


# -- the server's processes ------------------------------------------------------------------------------------------

def server_pids(roots):
    """The given pids and their children (nginx's workers are the master's children)."""
    pids = set(roots)
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                ppid = int(f.read().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        if ppid in roots:
            pids.add(int(entry))
    return sorted(pids)


def cpu_seconds(pids):
    total = 0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])
        except (OSError, IndexError, ValueError):
            pass
    return total / TICKS


def memory_kb(pids):
    """(RSS, PSS) in kB summed over the processes; PSS charges shared pages (nginx's shared memory) once."""
    rss = pss = 0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/smaps_rollup") as f:
                for line in f:
                    if line.startswith("Rss:"):
                        rss += int(line.split()[1])
                    elif line.startswith("Pss:"):
                        pss += int(line.split()[1])
        except OSError:
            pass
    return rss, pss


# -- URLs of each server ---------------------------------------------------------------------------------------------

class Dialect:
    def __init__(self, server, port):
        self.nchan = server == "nchan"
        self.host = b"Host: 127.0.0.1:%d\r\n" % port

    def sse(self, topic):
        path = b"/sse/%d" % topic if self.nchan else b"/subscribe?topic=bench/%d&since=newest&format=raw" % topic
        return b"GET " + path + b" HTTP/1.1\r\n" + self.host + b"Accept: text/event-stream\r\n\r\n"

    def longpoll(self, topic, cursor):
        if self.nchan:
            extra = b""
            if cursor:
                extra = b"If-Modified-Since: " + cursor[0] + b"\r\nIf-None-Match: " + cursor[1] + b"\r\n"
            return b"GET /lp/%d HTTP/1.1\r\n" % topic + self.host + extra + b"\r\n"
        start = b"&last_event_id=" + cursor if cursor else b"&since=newest"
        return (b"GET /subscribe?topic=bench/%d&mode=longpoll&timeout=60" % topic + start + b" HTTP/1.1\r\n"
                + self.host + b"\r\n")

    def publish(self, topic, body):
        path = b"/pub/%d" % topic if self.nchan else b"/publish?topic=bench/%d" % topic
        return (b"POST " + path + b" HTTP/1.1\r\n" + self.host + b"Content-Type: text/plain\r\nContent-Length: %d\r\n\r\n"
                % len(body) + body)

    def info(self, topic):
        path = b"/pub/%d" % topic if self.nchan else b"/topic?topic=bench/%d" % topic
        return b"GET " + path + b" HTTP/1.1\r\n" + self.host + b"Accept: application/json\r\n\r\n"

    def cursor(self, headers):
        """Where the next long poll starts, from the last answer's headers."""
        if self.nchan:
            if b"last-modified" in headers and b"etag" in headers:
                return (headers[b"last-modified"], headers[b"etag"])
            return None
        return headers.get(b"last-event-id")


def parse_response(buf):
    """One complete HTTP response at the start of buf: (length consumed, status, headers, body), or None."""
    end = buf.find(b"\r\n\r\n")
    if end < 0:
        return None
    lines = bytes(buf[:end]).split(b"\r\n")
    status = int(lines[0].split()[1])
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(b":")
        headers[name.strip().lower()] = value.strip()
    start = end + 4
    if status in (204, 304) or 100 <= status < 200:
        return start, status, headers, b""
    if headers.get(b"transfer-encoding", b"").lower() == b"chunked":
        body, pos = bytearray(), start
        while True:
            eol = buf.find(b"\r\n", pos)
            if eol < 0:
                return None
            size = int(bytes(buf[pos:eol]).split(b";")[0], 16)
            if size == 0:
                trailer = buf.find(b"\r\n\r\n", eol)
                if trailer < 0:
                    return None
                return trailer + 4, status, headers, bytes(body)
            if len(buf) < eol + 2 + size + 2:
                return None
            body += buf[eol + 2:eol + 2 + size]
            pos = eol + 2 + size + 2
    length = int(headers.get(b"content-length", b"0"))
    if len(buf) < start + length:
        return None
    return start + length, status, headers, bytes(buf[start:start + length])


# -- subscribers -----------------------------------------------------------------------------------------------------

class Subscriber:
    __slots__ = ("sock", "topic", "raw", "body", "headers", "chunked", "count", "last", "duplicates",
                 "out_of_order", "foreign", "closed", "cursor", "polls", "first")

    def __init__(self, sock, topic):
        self.sock, self.topic = sock, topic
        self.raw, self.body = bytearray(), bytearray()
        self.headers = False
        self.chunked = False
        self.count = self.duplicates = self.out_of_order = self.foreign = self.polls = 0
        self.last = -1
        self.first = None
        self.closed = False
        self.cursor = None

    def take(self, data):
        """Counts every `t=;n=;` in data (complete events or answers only)."""
        for topic, seq in EVENT.findall(data):
            topic, seq = int(topic), int(seq)
            if topic != self.topic:
                self.foreign += 1
                continue
            if self.first is None:
                self.first = seq
            if seq == self.last:
                self.duplicates += 1
            elif seq < self.last:
                self.out_of_order += 1
            else:
                self.count += 1
                self.last = seq

    def sse_input(self, data):
        """Returns True when the response head arrived with this data."""
        opened = False
        if not self.headers:
            self.raw += data
            end = self.raw.find(b"\r\n\r\n")
            if end < 0:
                return False
            head = bytes(self.raw[:end]).lower()
            if not head.startswith(b"http/1.1 200") and not head.startswith(b"http/1.0 200"):
                raise SystemExit("subscriber refused: " + head.split(b"\r\n")[0].decode())
            self.chunked = b"transfer-encoding: chunked" in head
            data = bytes(self.raw[end + 4:])
            self.raw = bytearray()
            self.headers = opened = True
        if self.chunked:
            self.raw += data
            pos = 0
            while True:
                eol = self.raw.find(b"\r\n", pos)
                if eol < 0:
                    break
                size = int(bytes(self.raw[pos:eol]).split(b";")[0], 16)
                if len(self.raw) < eol + 2 + size + 2:
                    break
                self.body += self.raw[eol + 2:eol + 2 + size]
                pos = eol + 2 + size + 2
            del self.raw[:pos]
        else:
            self.body += data
        cut = self.body.rfind(b"\n\n")
        if cut >= 0:
            self.take(bytes(self.body[:cut]))
            del self.body[:cut + 2]
        return opened


def connect(port):
    sock = socket.create_connection(("127.0.0.1", port), timeout=10)
    sock.setblocking(False)
    return sock


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--server", choices=["midge", "nchan", "floor"], required=True)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--pid", type=int, action="append", required=True, help="server pid (children counted too)")
    parser.add_argument("--scenario", choices=["sse", "longpoll", "idle"], required=True)
    parser.add_argument("--subscribers", type=int, default=1000)
    parser.add_argument("--topics", type=int, default=1)
    parser.add_argument("--rate", type=float, default=50, help="publishes per second")
    parser.add_argument("--duration", type=float, default=10, help="seconds of publishing")
    parser.add_argument("--history", type=int, default=100, help="idle: messages published before the streams")
    parser.add_argument("--publishers", type=int, default=4, help="publishing connections (topics spread over them)")
    parser.add_argument("--payload", type=int, default=100)
    parser.add_argument("--drain", type=float, default=10, help="seconds at most to wait for the last deliveries")
    args = parser.parse_args()
    if args.topics < 1 or args.subscribers < 1 or args.rate <= 0 or args.duration <= 0:
        parser.error("counts, rate and duration must be positive")

    dialect = Dialect(args.server, args.port)
    roots = set(args.pid)
    pids = server_pids(roots)
    epoll = select.epoll()
    subscribers = {}  # fd -> Subscriber
    published = [0] * args.topics  # accepted publishes per topic

    def fail(message):
        print(f"RESULT scenario={args.scenario} server={args.server} error={message.replace(' ', '_')}")
        sys.exit(1)

    # Publishing: --publishers keep-alive connections, topic T always on connection T % publishers (so each topic's
    # messages are published in order), one request in flight per connection (no pipelining), the rest queued.
    class Publisher:
        def __init__(self):
            self.sock = connect(args.port)
            self.buf = bytearray()
            self.queue = collections.deque()  # (topic, request) not yet sent
            self.inflight = None  # topic of the request sent and not yet answered

        def send_next(self):
            if self.inflight is None and self.queue:
                self.inflight, request = self.queue.popleft()
                self.sock.sendall(request)

        def readable(self):
            try:
                data = self.sock.recv(65536)
            except BlockingIOError:
                return
            except ConnectionError:
                data = b""
            if not data:
                fail("a publisher connection was closed by the server")
            self.buf += data
            while self.inflight is not None:
                parsed = parse_response(self.buf)
                if parsed is None:
                    break
                used, status, _, body = parsed
                del self.buf[:used]
                if not 200 <= status < 300:
                    fail(f"publish answered {status}: {body[:80]!r}")
                published[self.inflight] += 1
                self.inflight = None
                self.send_next()

    publishers = [Publisher() for _ in range(max(1, min(args.publishers, args.topics)))]
    publisher_fds = {p.sock.fileno(): p for p in publishers}
    for fd in publisher_fds:
        epoll.register(fd, select.EPOLLIN)

    def publish(topic, seq):
        publisher = publishers[topic % len(publishers)]
        publisher.queue.append((topic, dialect.publish(topic, payload(topic, seq, args.payload))))
        publisher.send_next()

    def unanswered():
        return sum(len(p.queue) + (p.inflight is not None) for p in publishers)

    def info_subscribers(topic):
        """What the server says about a topic's subscribers (midge: /topic, nchan: channel info); None if unknown."""
        if args.server == "floor":
            return None
        with socket.create_connection(("127.0.0.1", args.port), timeout=5) as s:
            s.sendall(dialect.info(topic))
            buf = bytearray()
            deadline = time.monotonic() + 5
            while time.monotonic() < deadline:
                parsed = parse_response(buf)
                if parsed:
                    match = re.search(rb'"subscribers"\s*:\s*(\d+)', parsed[3])
                    return int(match.group(1)) if match else None
                chunk = s.recv(65536)
                if not chunk:
                    return None
                buf += chunk
        return None

    # Idle: one stream first (Midge records a topic's history from its first subscriber on), then the history, then
    # the streams measured; at the end one more message, which every stream must get.
    if args.scenario == "idle":
        recorder = connect(args.port)
        recorder.sendall(dialect.sse(0))
        recorder_head = bytearray()
        recorder_deadline = time.monotonic() + 10
        while b"\r\n\r\n" not in recorder_head and time.monotonic() < recorder_deadline:
            select.select([recorder], [], [], 0.1)
            try:
                recorder_head += recorder.recv(65536)
            except BlockingIOError:
                pass
        for seq in range(args.history):
            publish(0, seq)
        history_deadline = time.monotonic() + 10
        while unanswered() and time.monotonic() < history_deadline:
            for fd, _ in epoll.poll(0.05):
                publisher_fds[fd].readable()
        if unanswered():
            fail("history publishes not answered")
        time.sleep(1)
        rss_before, pss_before = memory_kb(pids)

    # Subscribers: at most 256 handshakes outstanding, so no listen backlog overflows.
    opened = 0
    outstanding = 0
    deadline = time.monotonic() + 120
    next_index = 0
    while opened < args.subscribers:
        if time.monotonic() > deadline:
            fail(f"only {opened} of {args.subscribers} subscribers opened in 120 s")
        while next_index < args.subscribers and outstanding < 256:
            topic = next_index % args.topics
            sock = connect(args.port)
            sub = Subscriber(sock, topic)
            subscribers[sock.fileno()] = sub
            if args.scenario == "longpoll":
                sock.sendall(dialect.longpoll(topic, None))
                sub.headers = True
                opened += 1
            else:
                sock.sendall(dialect.sse(topic))
                outstanding += 1
            epoll.register(sock.fileno(), select.EPOLLIN)
            next_index += 1
        if args.scenario == "longpoll":
            break
        for fd, _ in epoll.poll(0.1):
            sub = subscribers.get(fd)
            if sub is None:
                publisher_fds[fd].readable()
                continue
            data = sub.sock.recv(65536)
            if not data:
                fail("a subscriber was closed while opening")
            if sub.sse_input(data):
                opened += 1
                outstanding -= 1

    if args.scenario == "longpoll":
        # A waiting long poll sends nothing back; the server's own count says when every poll is in place.
        wait_until = time.monotonic() + 20
        for topic in range(args.topics):
            want = sum(1 for s in subscribers.values() if s.topic == topic)
            while time.monotonic() < wait_until:
                count = info_subscribers(topic)
                if count is None or count >= want:
                    break
                time.sleep(0.1)
        time.sleep(0.5)

    def handle(fd):
        if fd in publisher_fds:
            publisher_fds[fd].readable()
            return
        sub = subscribers.get(fd)
        if sub is None:
            return
        try:
            data = sub.sock.recv(32768)
        except (BlockingIOError, InterruptedError):
            return
        except ConnectionError:
            data = b""
        if not data:
            sub.closed = True
            epoll.unregister(fd)
            return
        if args.scenario != "longpoll":
            sub.sse_input(data)
            return
        sub.raw += data
        while True:
            parsed = parse_response(sub.raw)
            if parsed is None:
                return
            used, status, headers, body = parsed
            del sub.raw[:used]
            if status == 200:
                sub.take(body)
            elif status not in (304, 408):
                fail(f"long poll answered {status}: {body[:80]!r}")
            sub.polls += 1
            cursor = dialect.cursor(headers)
            if cursor is not None:
                sub.cursor = cursor
            if headers.get(b"connection", b"").lower() == b"close":
                epoll.unregister(fd)
                sub.sock.close()
                del subscribers[fd]
                sub.sock = connect(args.port)
                subscribers[sub.sock.fileno()] = sub
                epoll.register(sub.sock.fileno(), select.EPOLLIN)
            sub.sock.sendall(dialect.longpoll(sub.topic, sub.cursor))

    def delivered():
        return sum(s.count for s in subscribers.values())

    def expected():
        return sum(published[s.topic] for s in subscribers.values())

    # The measured window: publishing at fixed times, then until every delivery arrived (or --drain passed).
    usage0 = resource.getrusage(resource.RUSAGE_SELF)
    pids = server_pids(roots)
    cpu0 = cpu_seconds(pids)
    start = time.monotonic()
    total = int(args.rate * args.duration)
    sent = 0
    if args.scenario != "idle":
        while sent < total:
            now = time.monotonic()
            if now > start + args.duration + 30:
                fail("publishing fell more than 30 s behind")
            while sent < total and start + sent / args.rate <= now:
                topic = sent % args.topics
                publish(topic, sent // args.topics)
                sent += 1
            wait = start + sent / args.rate - time.monotonic() if sent < total else 0
            for fd, _ in epoll.poll(max(0.0, min(wait, 0.05))):
                handle(fd)
        answer_deadline = time.monotonic() + args.drain
        while unanswered() and time.monotonic() < answer_deadline:
            for fd, _ in epoll.poll(0.05):
                handle(fd)
        if unanswered():
            fail(f"{unanswered()} publishes not answered")
    publish_end = time.monotonic()
    if args.scenario == "idle":
        publish(0, args.history)

    def complete():
        if args.scenario == "idle":
            return all(s.last == args.history for s in subscribers.values())
        return delivered() >= want

    want = expected() if args.scenario != "idle" else len(subscribers)
    drain_deadline = publish_end + args.drain
    while not complete() and time.monotonic() < drain_deadline:
        for fd, _ in epoll.poll(0.05):
            handle(fd)
    end = time.monotonic()
    cpu1 = cpu_seconds(server_pids(roots))
    usage1 = resource.getrusage(resource.RUSAGE_SELF)
    # A short settle for the memory figure (and for deliveries that would be duplicates).
    settle = time.monotonic() + (2 if args.scenario == "idle" else 0.5)
    while time.monotonic() < settle:
        for fd, _ in epoll.poll(0.05):
            handle(fd)
    rss, pss = memory_kb(server_pids(roots))

    got = delivered()
    window = end - start
    server_cpu = cpu1 - cpu0
    own_cpu = (usage1.ru_utime + usage1.ru_stime) - (usage0.ru_utime + usage0.ru_stime)
    fields = {
        "scenario": args.scenario, "server": args.server, "subscribers": len(subscribers), "topics": args.topics,
        "published": sum(published), "expected": want, "delivered": got,
        "lost": want - got if args.scenario != "idle" else sum(1 for s in subscribers.values() if s.last != args.history),
        "duplicates": sum(s.duplicates for s in subscribers.values()),
        "out_of_order": sum(s.out_of_order for s in subscribers.values()),
        "foreign": sum(s.foreign for s in subscribers.values()),
        "closed": sum(1 for s in subscribers.values() if s.closed),
        "window_s": f"{window:.2f}", "drain_s": f"{end - publish_end:.2f}",
        "server_cpu_s": f"{server_cpu:.2f}",
        "gen_cpu_pct": f"{100 * own_cpu / window:.0f}" if window > 0 else "0",
        "rss_kb": rss, "pss_kb": pss, "processes": len(server_pids(roots)),
    }
    if args.scenario == "idle":
        # Midge's since=newest starts with the newest kept message (HISTORY-1); Nchan's `newest` with the next one.
        fields["started_at_newest_kept"] = sum(1 for s in subscribers.values() if s.first == args.history - 1)
        fields["rss_before_kb"], fields["pss_before_kb"] = rss_before, pss_before
        fields["rss_per_subscriber"] = f"{(rss - rss_before) * 1024 / len(subscribers):.0f}"
        fields["pss_per_subscriber"] = f"{(pss - pss_before) * 1024 / len(subscribers):.0f}"
    else:
        fields["deliveries_per_s"] = f"{got / window:.0f}" if window > 0 else "0"
        fields["cpu_us_per_delivery"] = f"{1e6 * server_cpu / got:.2f}" if got else "n/a"
        fields["polls"] = sum(s.polls for s in subscribers.values())
        fields["rss_per_subscriber"] = f"{rss * 1024 / len(subscribers):.0f}"
    print("RESULT " + " ".join(f"{k}={v}" for k, v in fields.items()), flush=True)
    for sub in subscribers.values():
        sub.sock.close()
    for publisher in publishers:
        publisher.sock.close()
    if args.scenario == "idle":
        recorder.close()


if __name__ == "__main__":
    main()
