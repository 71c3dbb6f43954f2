// The HTTP gateway and $SYS in a running server over loopback: publish to MQTT subscribers, an SSE stream, /metrics
// read by a Prometheus text-format parser, `$SYS/#` versus `#`, and bad HTTP requests that leave MQTT alone.
import Foundation
import Glibc
import MQTTCodec
import MQTTTestSupport
import MidgeCore
import XCTest

@testable import MidgeServer

/// A blocking HTTP/1.1 client on a `RawClient` socket: every read is bounded by the socket's timeout.
struct HTTPTestClient {
    let socket: RawClient

    init(port: UInt16) throws {
        socket = try RawClient(port: port, timeoutSeconds: 10)
    }

    func send(_ text: String) throws { try socket.send(Array(text.utf8)) }

    /// One `recv`: what arrived, empty at EOF; throws on the timeout.
    func readSome() throws -> [UInt8] {
        var chunk = [UInt8](repeating: 0, count: 64 * 1024)
        let count = chunk.withUnsafeMutableBytes { recv(socket.fd, $0.baseAddress, $0.count, 0) }
        guard count >= 0 else { throw TestError("recv failed or timed out: \(String(cString: strerror(errno)))") }
        return Array(chunk[0..<count])
    }

    /// Reads until `done` holds for what arrived so far, or EOF; at most 200 reads.
    func read(until done: (String) -> Bool) throws -> String {
        var text = ""
        for _ in 0..<200 {
            if done(text) { return text }
            let bytes = try readSome()
            if bytes.isEmpty { return text }
            text += String(decoding: bytes, as: UTF8.self)
        }
        throw TestError("no end after 200 reads: \(text.prefix(200))")
    }

    /// A request with `Connection: close`, answered whole.
    static func exchange(port: UInt16, _ request: String) throws -> ParsedResponse {
        let client = try HTTPTestClient(port: port)
        try client.send(request)
        let text = try client.read(until: { _ in false })
        guard let response = ParsedResponse.all(text).first else { throw TestError("no response: \(text)") }
        return response
    }
}

/// The Prometheus text format 0.0.4, parsed strictly: every sample belongs to a family announced by TYPE before it,
/// names and labels are well formed, values are numbers, and no family appears twice.
struct PrometheusSamples {
    struct Sample {
        let name: String
        let labels: [String: String]
        let value: Double
    }
    private(set) var types: [String: String] = [:]
    private(set) var samples: [Sample] = []

    init(parsing text: String) throws {
        var current: String?
        for line in text.split(separator: "\n", omittingEmptySubsequences: false) {
            if line.isEmpty { continue }
            if line.hasPrefix("# HELP ") { continue }
            if line.hasPrefix("# TYPE ") {
                let parts = line.split(separator: " ")
                guard parts.count == 4, ["counter", "gauge", "untyped", "histogram", "summary"].contains(parts[3])
                else { throw TestError("bad TYPE line: \(line)") }
                let name = String(parts[2])
                guard types[name] == nil else { throw TestError("family \(name) twice") }
                types[name] = String(parts[3])
                current = name
                continue
            }
            guard !line.hasPrefix("#") else { continue }
            let nameEnd = line.firstIndex { $0 == "{" || $0 == " " } ?? line.endIndex
            let name = String(line[..<nameEnd])
            guard name.range(of: "^[a-zA-Z_:][a-zA-Z0-9_:]*$", options: .regularExpression) != nil else {
                throw TestError("bad metric name in \(line)")
            }
            guard let family = current, name.hasPrefix(family) else {
                throw TestError("sample outside its family: \(line)")
            }
            var labels: [String: String] = [:]
            var rest = line[nameEnd...]
            if rest.first == "{" {
                guard let close = rest.firstIndex(of: "}") else { throw TestError("unclosed labels: \(line)") }
                for pair in rest[rest.index(after: rest.startIndex)..<close].split(separator: ",") {
                    let parts = pair.split(separator: "=", maxSplits: 1)
                    guard parts.count == 2, parts[1].hasPrefix("\""), parts[1].hasSuffix("\"") else {
                        throw TestError("bad label in \(line)")
                    }
                    labels[String(parts[0])] = String(parts[1].dropFirst().dropLast())
                }
                rest = rest[rest.index(after: close)...]
            }
            let valueText = rest.trimmingCharacters(in: .whitespaces)
            guard let value = Double(valueText) ?? (valueText == "+Inf" ? .infinity : nil) else {
                throw TestError("bad value in \(line)")
            }
            samples.append(Sample(name: name, labels: labels, value: value))
        }
    }

    func value(_ name: String, _ labels: [String: String] = [:]) -> Double? {
        samples.first { $0.name == name && $0.labels == labels }?.value
    }
}

final class HTTPLoopbackTests: XCTestCase {
    private func start(_ extra: String = "") throws -> (server: RunningServer, mqtt: UInt16, http: UInt16) {
        let server = try RunningServer(threads: 2, config: "listener 0 127.0.0.1\nprotocol http\n" + extra)
        return (server, server.server.listeners[0].port, server.server.listeners[1].port)
    }

    func testPublishOverHTTPReachesAnMQTTSubscriberAfterItIsAccepted() throws {
        let (server, mqtt, http) = try start()
        defer { server.stop() }
        let subscriber = try RawClient(port: mqtt)
        _ = try subscriber.connect("sub")
        try subscriber.subscribe("api/#", qos: .atLeastOnce)
        let response = try HTTPTestClient.exchange(
            port: http,
            "POST /publish?topic=api/one&qos=1 HTTP/1.1\r\nHost: t\r\nConnection: close\r\n"
                + "Content-Length: 3\r\n\r\nabc")
        XCTAssertEqual(response.status, 200)
        XCTAssertEqual(response.body, #"{"published":1}"#)
        let publish = try subscriber.receivePublish()
        XCTAssertEqual(publish.topic.description, "api/one")
        XCTAssertEqual(publish.payload, Array("abc".utf8))
    }

    func testPipelinedPublishesAreAllAnsweredWithoutMoreBytes() throws {
        // Three POSTs in one segment: each waits for the broker's acknowledgement, and the ones behind the first
        // were once left in the parser until the client sent something else.
        let (server, _, http) = try start()
        defer { server.stop() }
        let client = try HTTPTestClient(port: http)
        let one = "POST /publish?topic=pipe/a&qos=1 HTTP/1.1\r\nHost: t\r\nContent-Length: 1\r\n\r\nx"
        try client.send(one + one + one)
        let text = try client.read(until: { $0.components(separatedBy: #"{"published":1}"#).count == 4 })
        XCTAssertEqual(text.components(separatedBy: "HTTP/1.1 200").count - 1, 3, text)
    }

    func testServerSentEventsOverASocket() throws {
        let (server, mqtt, http) = try start()
        defer { server.stop() }
        let stream = try HTTPTestClient(port: http)
        try stream.send("GET /subscribe?topic=live HTTP/1.1\r\nHost: t\r\nAccept: text/event-stream\r\n\r\n")
        let head = try stream.read(until: { $0.contains("\r\n\r\n") })
        XCTAssertTrue(head.hasPrefix("HTTP/1.1 200 OK\r\n"), head)
        let publisher = try RawClient(port: mqtt)
        _ = try publisher.connect("pub")
        try publisher.publish("live", Array("tick".utf8))
        let events = try stream.read(until: { $0.contains("\"payload\":\"tick\"") })
        // Ids start at the start-up time in microseconds, so none repeats one a client kept from an earlier run.
        let started = UInt64(time(nil) - 3600) * 1_000_000
        let id = events.split(separator: "\n").first { $0.hasPrefix("id: ") }.flatMap { UInt64($0.dropFirst(4)) }
        XCTAssertGreaterThan(id ?? 0, started, events)
        XCTAssertTrue(events.contains("\ndata: {\"topic\":\"live\""), events)
    }

    func testMetricsParseAsPrometheusTextAndCountTraffic() throws {
        let (server, mqtt, http) = try start()
        defer { server.stop() }
        let client = try RawClient(port: mqtt)
        _ = try client.connect("counted")
        try client.subscribe("m", qos: .atLeastOnce)
        try client.publish("m", Array("x".utf8), qos: .atLeastOnce, id: 9)
        _ = try client.receive()  // PUBACK or the delivery: both mean the broker counted the PUBLISH
        var parsed: PrometheusSamples?
        // The core's figures come from loop 0's once-a-second snapshot: poll, bounded.
        for _ in 0..<50 {
            let response = try HTTPTestClient.exchange(
                port: http, "GET /metrics HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
            XCTAssertEqual(response.status, 200)
            XCTAssertEqual(response.header("Content-Type"), "text/plain; version=0.0.4; charset=utf-8")
            let samples = try PrometheusSamples(parsing: response.body)
            parsed = samples
            if samples.value("midge_clients_connected") == 1 { break }
            usleep(100_000)
        }
        guard let samples = parsed else { return XCTFail("no metrics") }
        XCTAssertEqual(samples.value("midge_clients_connected"), 1)
        XCTAssertEqual(samples.value("midge_subscriptions"), 1)
        XCTAssertGreaterThanOrEqual(samples.value("midge_messages_received_total", ["qos": "1"]) ?? 0, 1)
        XCTAssertGreaterThan(samples.value("midge_bytes_received_total") ?? 0, 0)
        XCTAssertEqual(samples.types["midge_messages_dropped_total"], "counter")
        XCTAssertNotNil(samples.value("midge_messages_dropped_total", ["reason": "queue_full"]))
        XCTAssertEqual(samples.types["midge_event_loop_cpu_seconds_total"], "counter")
        XCTAssertNotNil(samples.value("midge_event_loop_cpu_seconds_total", ["loop": "0"]))
        XCTAssertNotNil(samples.value("midge_event_loop_cpu_seconds_total", ["loop": "1"]))
    }

    func testMetricsShowTheStoreWhenPersistenceIsOn() throws {
        let directory = "/tmp/midge-http-metrics-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        defer { _ = try? FileManager.default.removeItem(atPath: directory) }
        let (server, _, http) = try start("persistence true\npersistence_location \(directory)\n")
        defer { server.stop() }
        let publish = try HTTPTestClient.exchange(
            port: http,
            "POST /publish?topic=kept&qos=1&retain=1 HTTP/1.1\r\nHost: t\r\nConnection: close\r\n"
                + "Content-Length: 1\r\n\r\nk")
        XCTAssertEqual(publish.status, 200, "answered once the store has it")
        var samples: PrometheusSamples?
        for _ in 0..<50 {
            let response = try HTTPTestClient.exchange(
                port: http, "GET /metrics HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
            samples = try PrometheusSamples(parsing: response.body)
            if (samples?.value("midge_store_records_total") ?? 0) > 0 { break }
            usleep(100_000)
        }
        XCTAssertGreaterThan(samples?.value("midge_store_records_total") ?? 0, 0)
        XCTAssertEqual(samples?.value("midge_store_healthy"), 1)
        XCTAssertNotNil(samples?.value("midge_store_last_fsync_seconds"))
    }

    func testSysTopicsReachSysSubscribersButNotHash() throws {
        let (server, mqtt, _) = try start("sys_interval 1\n")
        defer { server.stop() }
        let all = try RawClient(port: mqtt)
        _ = try all.connect("everything")
        try all.subscribe("#", qos: .atMostOnce)
        let sys = try RawClient(port: mqtt)
        _ = try sys.connect("sys")
        try sys.subscribe("$SYS/#", qos: .atMostOnce)
        var topics: [String: String] = [:]
        for _ in 0..<200 where topics["$SYS/broker/version"] == nil || topics["$SYS/broker/uptime"] == nil {
            let publish = try sys.receivePublish()
            topics[publish.topic.description] = String(decoding: publish.payload, as: UTF8.self)
        }
        XCTAssertEqual(topics["$SYS/broker/version"], "midge version \(midgeVersion)")
        XCTAssertTrue(topics["$SYS/broker/uptime"]?.hasSuffix(" seconds") ?? false)
        // `#` never matches `$SYS` [MQTT-4.7.2-1]: a marker published after the rounds is the first thing it gets.
        try all.publish("marker", Array("m".utf8))
        XCTAssertEqual(try all.receivePublish().topic.description, "marker")
    }

    func testBadHTTPRequestsGetTheir4xxAndLeaveMQTTClientsAlone() throws {
        let (server, mqtt, http) = try start()
        defer { server.stop() }
        let client = try RawClient(port: mqtt)
        _ = try client.connect("bystander")
        let cases: [(String, Int)] = [
            ("GET /nope HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n", 404),
            ("DELETE /publish HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n", 405),
            ("POST /publish HTTP/1.1\r\nHost: t\r\nConnection: close\r\nContent-Length: 4\r\n\r\n{no}", 400),
            ("GET /metrics HTTP/1.1\r\nHost: t\r\nX: \(String(repeating: "y", count: 40_000))\r\n\r\n", 431),
        ]
        for (request, status) in cases {
            let response = try HTTPTestClient.exchange(port: http, request)
            XCTAssertEqual(response.status, status, String(request.prefix(30)))
            XCTAssertTrue(response.body.contains("\"error\""))
        }
        try client.ping()
    }
}
