// Amplification: for every path that stores something, the worst input a client can send for it, and how much
// resident memory the broker gains per byte it received. Each row has a bound and fails above it; the table in
// `Docs/security.md` is what this prints (set AMPLIFICATION_TABLE=path to have it written there too).
//
// Bytes received are what the test's clients wrote (MQTT, WebSocket and HTTP bytes), or for TLS the broker's own
// read count (`/proc/PID/io` rchar), since the handshake is OpenSSL's. Growth is VmRSS after minus before, with the
// broker warmed up by the same traffic first, so pools and arenas that any traffic fills are not charged to a row.

import Foundation
import Glibc
import MQTTCodec
import MQTTTestSupport
import XCTest

final class AmplificationTests: ConformanceCase {
    private struct Row {
        let path: String
        let attack: String
        let bytes: Int
        let growth: Int
        let bound: Double
        var ratio: Double { bytes == 0 ? 0 : Double(growth) / Double(bytes) }
    }

    nonisolated(unsafe) private static var rows: [Row] = []

    override class func tearDown() {
        let table = renderTable(rows)
        print(table)
        if let path = ProcessInfo.processInfo.environment["AMPLIFICATION_TABLE"] {
            try? table.write(toFile: path, atomically: true, encoding: .utf8)
        }
        super.tearDown()
    }

    private static func renderTable(_ rows: [Row]) -> String {
        var lines = [
            "| path | worst input | bytes received | RSS growth | growth per byte | bound |",
            "|---|---|---|---|---|---|",
        ]
        for row in rows {
            lines.append(
                "| \(row.path) | \(row.attack) | \(row.bytes) | \(row.growth / 1024) KiB | "
                    + String(format: "%.1f×", row.ratio) + " | \(Int(row.bound))× |")
        }
        return lines.joined(separator: "\n")
    }

    /// Starts a broker of its own for the row, runs `warmUp` and then `attack` (each returning the bytes it sent),
    /// and records resident growth per byte of the attack. Fails when it passes `bound`.
    private func measure(
        _ path: String, _ attack: String, bound: Double, config: [String] = [],
        warmUp: ((BrokerProcess) throws -> Int)? = nil, bytesFromBroker: Bool = false,
        _ body: (BrokerProcess) throws -> Int, file: StaticString = #filePath, line: UInt = #line
    ) throws {
        try skipOnMosquitto("the amplification bounds are Midge's")
        let isolated = try startBroker(config: config)
        let bystander = try connect(uniqueID("bystander"), to: isolated)
        _ = try warmUp?(isolated)
        try bystander.sync()
        usleep(200_000)
        let before = try isolated.memory()
        let readBefore = try isolated.bytesRead()
        var bytes = try body(isolated)
        try bystander.sync()
        usleep(300_000)
        let after = try isolated.memory()
        if bytesFromBroker { bytes = try isolated.bytesRead() - readBefore }
        let row = Row(
            path: path, attack: attack, bytes: bytes, growth: max(0, (after.residentKB - before.residentKB) * 1024),
            bound: bound)
        Self.rows.append(row)
        print(
            "amplification: \(path) / \(attack): \(bytes) bytes, RSS \(before) -> \(after), "
                + String(format: "%.2f", row.ratio) + " per byte")
        XCTAssertLessThanOrEqual(row.ratio, bound, "\(path): \(attack)", file: file, line: line)
        XCTAssertTrue(isolated.isRunning)
    }

    /// `levels` levels that part from every other name at the first one, so no two share a trie node: the
    /// worst case for a per-level trie.
    private func deepName(_ levels: Int, leaf: String) -> [UInt8] {
        Array(([leaf] + Array(repeating: "l", count: levels - 1)).joined(separator: "/").utf8)
    }

    /// Short distinct names: `a`, `b`, … then two and three characters of [a-zA-Z0-9].
    private func shortName(_ index: Int) -> [UInt8] {
        let alphabet = Array("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789".utf8)
        var value = index
        var name: [UInt8] = []
        repeat {
            name.append(alphabet[value % alphabet.count])
            value /= alphabet.count
        } while value > 0
        return name
    }

    /// Subscribes `count` filters made by `make`, 100 per SUBSCRIBE, on one new connection; returns bytes sent.
    private func subscribeMany(
        _ broker: BrokerProcess, _ count: Int, offset: Int = 0, keep: inout [RawClient], _ make: (Int) -> [UInt8]
    ) throws -> Int {
        let (client, connected) = try openCounted(broker, name: "subscriber")
        var sent = connected
        var packetID: UInt16 = 1
        for batchStart in stride(from: 0, to: count, by: 100) {
            let filters = (batchStart..<min(count, batchStart + 100)).map { (filter: make(offset + $0), qos: UInt8(1)) }
            let packet = Wire.subscribe(id: packetID, filters)
            try client.send(packet)
            sent += packet.count
            _ = try client.readSubAck()
            packetID &+= 1
        }
        keep.append(client)
        return sent
    }

    /// A connected client and the bytes its CONNECT took.
    private func openCounted(_ broker: BrokerProcess, name: String) throws -> (RawClient, Int) {
        let client = try RawClient(port: broker.port, name: name)
        let connect = Wire.connect(uniqueID(name))
        try client.send(connect)
        _ = try client.readConnAck()
        return (client, connect.count)
    }

    // MARK: Subscriptions

    func test_amplification_subscribeWithAFilterPastTheDepthLimit() throws {
        var deepClients: [RawClient] = []
        try measure(
            "subscription trie",
            "SUBSCRIBE of one 64 KB filter of 32,000 levels, distinct per connection, 20 connections", bound: 1
        ) { broker in
            var sent = 0
            for round in 0..<20 {
                let filter = Array((["r\(round)"] + Array(repeating: "x", count: 32_000)).joined(separator: "/").utf8)
                let client = try RawClient(port: broker.port, name: "deep \(round)")
                let packets = Wire.connect(uniqueID("deep")) + Wire.subscribe(id: 1, [(filter: filter, qos: 0)])
                try client.send(packets)
                sent += packets.count
                // Closed at once since max_topic_levels; before it, the SUBACK granted the filter.
                _ = client.readFrame(timeout: 5)
                _ = client.readFrame(timeout: 5)
                deepClients.append(client)
            }
            return sent
        }
    }

    func test_amplification_subscribeDistinctFiltersAtTheDepthLimit() throws {
        var clients: [RawClient] = []
        let warmUp: (BrokerProcess) throws -> Int = { broker in
            try self.subscribeMany(broker, 100, offset: 1_000_000, keep: &clients) {
                self.deepName(200, leaf: "w\($0)")
            }
        }
        try measure(
            "subscription trie", "SUBSCRIBE of 200-level filters distinct from the first level, 3 × 3,000", bound: 16,
            warmUp: warmUp
        ) { broker in
            var sent = 0
            for client in 0..<3 {
                sent += try subscribeMany(broker, 3000, offset: client * 3000, keep: &clients) {
                    deepName(200, leaf: "\($0)")
                }
            }
            return sent
        }
    }

    func test_amplification_subscribeDistinctShortFilters() throws {
        // The fixed cost of a subscription (trie node, subscriber entry, the session's own record) against a
        // 6-byte SUBSCRIBE entry: not boundable near 16×; max_subscriptions caps it per client.
        var clients: [RawClient] = []
        let warmUp: (BrokerProcess) throws -> Int = { broker in
            try self.subscribeMany(broker, 100, offset: 200_000, keep: &clients, self.shortName)
        }
        try measure(
            "subscription trie", "SUBSCRIBE of distinct 1-3 byte filters, 5 × 10,000 (max_subscriptions)", bound: 80,
            warmUp: warmUp
        ) { broker in
            var sent = 0
            for client in 0..<5 {
                sent += try subscribeMany(broker, 10_000, offset: client * 10_000, keep: &clients, shortName)
            }
            return sent
        }
    }

    // MARK: Retained messages

    private func publishMany(
        _ broker: BrokerProcess, _ count: Int, offset: Int = 0, qos: UInt8 = 0, retain: Bool,
        topic: (Int) -> [UInt8], payload: [UInt8]
    ) throws -> Int {
        let (client, connected) = try openCounted(broker, name: "publisher")
        var sent = connected
        for batchStart in stride(from: 0, to: count, by: 200) {
            var batch: [UInt8] = []
            for index in batchStart..<min(count, batchStart + 200) {
                batch += Wire.publish(
                    topic: topic(offset + index), payload: payload, qos: qos, retain: retain,
                    id: qos > 0 ? UInt16(index % 60_000 + 1) : nil)
            }
            try client.send(batch)
            sent += batch.count
            if qos == 0 {
                try client.sync(timeout: 10)
            } else {
                for _ in batchStart..<min(count, batchStart + 200) { _ = try client.readPacket(timeout: 10) }
            }
        }
        client.close()
        return sent
    }

    func test_amplification_retainedDeepTopics() throws {
        let warmUp: (BrokerProcess) throws -> Int = {
            try self.publishMany(
                $0, 200, offset: 900_000, retain: true, topic: { self.deepName(200, leaf: "\($0)") }, payload: [1])
        }
        try measure(
            "retained store", "retained PUBLISH, 200-level topics distinct from the first level, 1-byte payload, 5,000",
            bound: 16,
            warmUp: warmUp
        ) { broker in
            try publishMany(broker, 5000, retain: true, topic: { deepName(200, leaf: "\($0)") }, payload: [1])
        }
    }

    func test_amplification_retainedShortTopics() throws {
        // A retained message's fixed cost (node, message object, topic and payload arrays) against a 6-byte
        // PUBLISH: capped by retained_messages_max and retained_bytes_max, not per byte.
        let warmUp: (BrokerProcess) throws -> Int = {
            try self.publishMany($0, 500, offset: 200_000, retain: true, topic: self.shortName, payload: [1])
        }
        try measure(
            "retained store", "retained PUBLISH, distinct 1-3 byte topics, 1-byte payload, 50,000", bound: 64,
            warmUp: warmUp
        ) { broker in
            try publishMany(broker, 50_000, retain: true, topic: shortName, payload: [1])
        }
    }

    func test_amplification_retainedLargePayloads() throws {
        let payload = [UInt8](repeating: 0x70, count: 4096)
        let warmUp: (BrokerProcess) throws -> Int = {
            try self.publishMany($0, 100, offset: 900_000, retain: true, topic: self.shortName, payload: payload)
        }
        try measure(
            "retained store", "retained PUBLISH, 4 KB payloads, 5,000", bound: 2,
            warmUp: warmUp
        ) { broker in
            try publishMany(broker, 5000, retain: true, topic: shortName, payload: payload)
        }
    }

    // MARK: Queued and in-flight messages

    /// A persistent session subscribed to `#` with QoS 1, then disconnected: everything published is queued for it.
    private func leaveOfflineSubscriber(_ broker: BrokerProcess) throws -> Int {
        let id = uniqueID("offline")
        let client = try RawClient(port: broker.port, name: id)
        let packets = Wire.connect(id, clean: false) + Wire.subscribe(id: 1, "#", qos: 1)
        try client.send(packets)
        _ = try client.readConnAck()
        _ = try client.readSubAck()
        client.sendIgnoringClose(Wire.disconnect)
        client.close()
        return packets.count
    }

    func test_amplification_queuedSmallMessages() throws {
        // Each queued delivery holds a shared message (object, topic, payload) and a queue slot: a fixed cost
        // against an 8-byte QoS 1 PUBLISH; max_queued_messages and max_queued_bytes cap it per session.
        let warmUp: (BrokerProcess) throws -> Int = { broker in
            _ = try self.leaveOfflineSubscriber(broker)
            return try self.publishMany(broker, 500, qos: 1, retain: false, topic: { _ in [0x71] }, payload: [1])
        }
        try measure(
            "offline queue", "QoS 1 PUBLISH, 1-byte topic and payload, 20,000 queued for an offline session",
            bound: 48, config: ["max_queued_messages 100000"],
            warmUp: warmUp
        ) { broker in
            try publishMany(broker, 20_000, qos: 1, retain: false, topic: { _ in [0x71] }, payload: [1])
        }
    }

    func test_amplification_queuedLargeMessages() throws {
        let payload = [UInt8](repeating: 0x71, count: 1024)
        let warmUp: (BrokerProcess) throws -> Int = { broker in
            _ = try self.leaveOfflineSubscriber(broker)
            return try self.publishMany(
                broker, 200, qos: 1, retain: false, topic: { _ in [0x71] }, payload: payload)
        }
        try measure(
            "offline queue", "QoS 1 PUBLISH, 1 KB payload, 20,000 queued for an offline session", bound: 2,
            config: ["max_queued_messages 100000"],
            warmUp: warmUp
        ) { broker in
            try publishMany(broker, 20_000, qos: 1, retain: false, topic: { _ in [0x71] }, payload: payload)
        }
    }

    func test_amplification_inflightMessagesNeverAcknowledged() throws {
        // A connected QoS 1 subscriber that reads but never sends PUBACK: every delivery stays in flight.
        var subscriber: RawClient?
        let warmUp: (BrokerProcess) throws -> Int = { broker in
            let client = try RawClient(port: broker.port, name: "never acks")
            try client.send(Wire.connect(self.uniqueID("noack")) + Wire.subscribe(id: 1, "#", qos: 1))
            _ = try client.readConnAck()
            _ = try client.readSubAck()
            subscriber = client
            return try self.publishMany(broker, 500, qos: 1, retain: false, topic: { _ in [0x71] }, payload: [1])
        }
        try measure(
            "in-flight window", "QoS 1 PUBLISH, 1-byte payload, 20,000 in flight to a subscriber that never acks",
            bound: 48, config: ["max_inflight_messages 0", "max_queued_messages 100000"],
            warmUp: warmUp
        ) { broker in
            let sent = try publishMany(broker, 20_000, qos: 1, retain: false, topic: { _ in [0x71] }, payload: [1])
            _ = try subscriber?.drainPublishes(window: 0.5)
            return sent
        }
    }

    // MARK: Sessions and connections

    func test_amplification_persistentSessionsLeftOffline() throws {
        // A session record per client id, kept after its connection: bounded by persistent_client_expiration.
        let warmUp: (BrokerProcess) throws -> Int = { broker in try self.connectAndLeave(broker, 200, prefix: "w") }
        try measure(
            "sessions", "CONNECT with clean session 0 then DISCONNECT, 10,000 client ids", bound: 16,
            warmUp: warmUp
        ) { broker in
            try connectAndLeave(broker, 10_000, prefix: "s")
        }
    }

    private func connectAndLeave(_ broker: BrokerProcess, _ count: Int, prefix: String) throws -> Int {
        var sent = 0
        for index in 0..<count {
            let client = try RawClient(port: broker.port, name: "session \(index)")
            let packets = Wire.connect("\(prefix)\(index)", clean: false)
            try client.send(packets)
            _ = try client.readConnAck()
            client.sendIgnoringClose(Wire.disconnect)
            client.close()
            sent += packets.count + Wire.disconnect.count
        }
        return sent
    }

    func test_amplification_idleConnections() throws {
        // Every connection has a socket, a session, buffers and bookkeeping on its loop: bounded by max_connections
        // (and the descriptor limit), not per byte: 14 bytes of CONNECT cannot pay for a socket's share of a loop.
        var open: [RawClient] = []
        let warmUp: (BrokerProcess) throws -> Int = { broker in try self.openConnections(broker, 50, keep: &open) }
        try measure(
            "connections", "MQTT CONNECT with an empty client id, held open, 1,000 connections", bound: 128,
            warmUp: warmUp
        ) { broker in
            try openConnections(broker, 1000, keep: &open)
        }
    }

    private func openConnections(_ broker: BrokerProcess, _ count: Int, keep: inout [RawClient]) throws -> Int {
        var sent = 0
        for _ in 0..<count {
            let client = try RawClient(port: broker.port, name: "idle")
            let packet = Wire.connect(clientID: [], keepAlive: 0)
            try client.send(packet)
            _ = try client.readConnAck()
            keep.append(client)
            sent += packet.count
        }
        return sent
    }

    func test_amplification_webSocketConnections() throws {
        try measureWebSockets(compression: false, bound: 16)
    }

    func test_amplification_webSocketConnectionsWithCompression() throws {
        // zlib keeps a window and hash chains per stream: the price of permessage-deflate, which is off unless
        // `websockets_compression true`, and capped by max_connections.
        try measureWebSockets(compression: true, bound: 768)
    }

    private func measureWebSockets(compression: Bool, bound: Double) throws {
        let wsPort = try BrokerProcess.freePort()
        var config = ["listener \(wsPort) 127.0.0.1", "protocol websockets"]
        if compression { config.append("websockets_compression true") }
        var open: [WebSocketClient] = []
        // With compression, the worst client makes the broker build both zlib streams: it subscribes to a retained
        // message large enough to be compressed, and sends a compressed frame (one stored deflate block holding a
        // PINGREQ, RSV1 set).
        let compressedPingreq: [UInt8] = [0x00, 0x02, 0x00, 0xFD, 0xFF, 0xC0, 0x00]
        func openMany(_ count: Int) throws -> Int {
            var sent = 0
            for _ in 0..<count {
                let client = try WebSocketClient(
                    port: wsPort, extensions: compression ? "permessage-deflate; client_max_window_bits" : nil)
                if compression {
                    XCTAssertEqual(client.header("Sec-WebSocket-Extensions")?.hasPrefix("permessage-deflate"), true)
                }
                let connect = Wire.connect(clientID: [], keepAlive: 0)
                try client.sendBinary(connect)
                _ = try client.readPacket()
                sent += client.requestBytes + connect.count + 6
                if compression {
                    let subscribe = Wire.subscribe(id: 1, "big", qos: 0)
                    try client.sendBinary(subscribe)
                    try client.sendFrame(opcode: 0x42, compressedPingreq)
                    _ = try? client.readFrame(timeout: 0.02)
                    sent += subscribe.count + compressedPingreq.count + 12
                }
                open.append(client)
            }
            return sent
        }
        let warmUp: (BrokerProcess) throws -> Int = { broker in
            let publisher = try self.connect(self.uniqueID("big"), to: broker)
            try self.publish(
                publisher, topic: Array("big".utf8), payload: [UInt8](repeating: 0x62, count: 4096), retain: true)
            return try openMany(20)
        }
        try measure(
            "WebSocket state",
            "upgrade request and CONNECT, held open, 500 connections"
                + (compression ? ", permessage-deflate with both streams in use" : ""),
            bound: bound, config: config,
            warmUp: warmUp
        ) { _ in try openMany(500) }
    }

    func test_amplification_tlsConnections() throws {
        // OpenSSL's per-connection state (SSL object, record buffers) after a full handshake: bounded by
        // max_connections. The client is Python's ssl module; bytes are what the broker read.
        let tlsPort = try BrokerProcess.freePort()
        let fixtures = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("MidgeTLSTests/Fixtures")
        let config = [
            "listener \(tlsPort) 127.0.0.1", "certfile \(fixtures.path)/server.crt",
            "keyfile \(fixtures.path)/server.key",
        ]
        var clients: [Process] = []
        defer {
            for client in clients where client.isRunning { client.terminate() }
        }
        func openMany(_ count: Int) throws -> Int {
            let process = Process()
            process.executableURL = URL(fileURLWithPath: "/usr/bin/python3")
            process.arguments = ["-c", Self.tlsHolder, String(tlsPort), String(count), "\(fixtures.path)/ca.crt"]
            let output = Pipe()
            process.standardOutput = output
            process.standardInput = Pipe()
            try process.run()
            clients.append(process)
            let line = output.fileHandleForReading.availableData
            guard String(decoding: line, as: UTF8.self).hasPrefix("open") else {
                throw TestError("TLS client: \(String(decoding: line, as: UTF8.self))")
            }
            return 0
        }
        let warmUp: (BrokerProcess) throws -> Int = { _ in try openMany(20) }
        try measure(
            "TLS state", "TLS handshake and CONNECT, held open, 300 connections", bound: 64, config: config,
            warmUp: warmUp, bytesFromBroker: true
        ) { _ in try openMany(300) }
    }

    /// Opens N TLS connections, sends CONNECT on each, reads the CONNACKs, prints `open`, waits for stdin to close.
    private static let tlsHolder = """
        import socket, ssl, sys
        port, count, ca = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
        context = ssl.create_default_context(cafile=ca)
        context.check_hostname = False
        held = []
        for i in range(count):
            raw = socket.create_connection(("127.0.0.1", port), timeout=10)
            conn = context.wrap_socket(raw)
            conn.sendall(bytes([0x10, 12, 0, 4]) + b"MQTT" + bytes([4, 2, 0, 0, 0, 0]))
            if conn.recv(4)[:1] != bytes([0x20]): sys.exit("no CONNACK")
            held.append(conn)
        print("open", flush=True)
        sys.stdin.read()
        """

    // MARK: HTTP gateway

    func test_amplification_serverSentEventStreams() throws {
        // One SSE stream per GET: the stream and its MQTT session in the core; the events go to the gateway's one
        // history per topic (bounded by the http_history_* keys), not to a copy per stream as they once did (401x).
        let httpPort = try BrokerProcess.freePort()
        var streams: [RawClient] = []
        func openStreams(_ count: Int, _ broker: BrokerProcess) throws -> Int {
            var sent = 0
            for index in 0..<count {
                let client = try RawClient(port: httpPort, name: "sse \(index)")
                let request = Array(
                    "GET /subscribe?topic=feed HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: text/event-stream\r\n\r\n".utf8)
                try client.send(request)
                _ = client.readBytes(timeout: 5)
                streams.append(client)
                sent += request.count
            }
            return sent
        }
        let warmUp: (BrokerProcess) throws -> Int = { broker in try openStreams(20, broker) }
        try measure(
            "HTTP streams and history", "SSE GET, 500 streams, then 200 QoS 0 PUBLISHes of 8 bytes to all of them",
            bound: 128, config: ["listener \(httpPort) 127.0.0.1", "protocol http"],
            warmUp: warmUp
        ) { broker in
            var sent = try openStreams(500, broker)
            sent += try publishMany(
                broker, 200, retain: false, topic: { _ in Array("feed".utf8) }, payload: Array("12345678".utf8))
            for stream in streams { _ = stream.readBytes(timeout: 0.01) }
            return sent
        }
    }
}

extension BrokerProcess {
    /// Bytes the broker process has read through read-like calls (`/proc/PID/io` rchar): its sockets, chiefly.
    func bytesRead() throws -> Int {
        guard let text = try? String(contentsOfFile: "/proc/\(pid)/io", encoding: .utf8),
            let line = text.split(separator: "\n").first(where: { $0.hasPrefix("rchar:") }),
            let value = Int(line.dropFirst("rchar:".count).trimmingCharacters(in: .whitespaces))
        else { throw TestError("cannot read /proc/\(pid)/io") }
        return value
    }
}
