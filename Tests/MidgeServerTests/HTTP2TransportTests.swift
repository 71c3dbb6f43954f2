// The HTTP/2 transport on a running broker, driven by nghttp2's client session over a TLS socket: resets, flow
// control, malformed frames and shutdown. Every wait is a socket read bounded by its receive timeout.
import HTTP2TestSupport
import MQTTTestSupport
import XCTest

@testable import MidgeServer

/// One h2 connection: nghttp2's client session on a TLS channel that negotiated `h2`.
private final class H2Connection {
    let channel: TLSChannel
    let client: HTTP2TestClient
    private(set) var closed = false

    init(port: UInt16, window: UInt32 = 65_535, autoWindowUpdate: Bool = true) throws {
        channel = try TLSChannel(port: port, applicationProtocols: ["h2", "http/1.1"])
        client = HTTP2TestClient(window: window, autoWindowUpdate: autoWindowUpdate)
    }

    /// Sends what the client has to say, then reads from the broker until `done` holds or the connection ends.
    func run(until done: (HTTP2TestClient) -> Bool) throws {
        for _ in 0..<10_000 {
            try channel.write(client.output())
            if done(client) { return }
            guard !closed, let bytes = try channel.read() else {
                closed = true
                if done(client) { return }
                throw TestError("the broker closed the connection")
            }
            client.input(bytes)
        }
        throw TestError("no end in sight")
    }

    /// Reads until the broker closes the connection.
    func runUntilClosed() throws {
        for _ in 0..<10_000 {
            try? channel.write(client.output())
            guard let bytes = try channel.read() else {
                closed = true
                return
            }
            client.input(bytes)
        }
    }
}

final class HTTP2TransportTests: XCTestCase {
    private func start() throws -> (server: RunningServer, mqtt: UInt16, https: UInt16) {
        let server = try RunningServer(
            threads: 2, config: "listener 0 127.0.0.1\nprotocol http\n" + TLSFixture.serverSettings())
        return (server, server.server.listeners[0].port, server.server.listeners[1].port)
    }

    private func waitForOpenStreams(_ server: RunningServer, _ count: Int) {
        for _ in 0..<2000 where server.metrics.gateway.openStreams.load(ordering: .relaxed) != count {
            usleep(5000)
        }
        XCTAssertEqual(server.metrics.gateway.openStreams.load(ordering: .relaxed), count)
    }

    private func opened(_ client: HTTP2TestClient, _ stream: Int32) -> Bool {
        client.responses[stream]?.text.contains("retry:") == true
    }

    func testResetOfOneStreamEndsOnlyItsSubscription() throws {
        let (server, mqtt, https) = try start()
        defer { server.stop() }
        let h2 = try H2Connection(port: https)
        XCTAssertEqual(h2.channel.selectedApplicationProtocol, "h2")
        let a = h2.client.request("GET", "/subscribe?topic=reset/t")
        let b = h2.client.request("GET", "/subscribe?topic=reset/t")
        try h2.run { self.opened($0, a) && self.opened($0, b) }
        XCTAssertEqual(h2.client.responses[a]?.status, 200)
        XCTAssertEqual(h2.client.responses[a]?["content-type"], "text/event-stream")
        waitForOpenStreams(server, 2)

        h2.client.reset(a)
        try h2.channel.write(h2.client.output())
        waitForOpenStreams(server, 1)

        let publisher = try RawClient(port: mqtt)
        _ = try publisher.connect("pub")
        try publisher.publish("reset/t", Array("after-reset".utf8))
        try h2.run { $0.responses[b]?.text.contains("after-reset") == true }
        XCTAssertFalse(h2.client.responses[a]?.text.contains("after-reset") ?? true)
        XCTAssertNil(h2.client.responses[b]?.closedWith, "the other stream stays open")
    }

    func testOrdinaryRequestsAreAnsweredOnTheirOwnStreamsBesideAnOpenStream() throws {
        let (server, _, https) = try start()
        defer { server.stop() }
        let h2 = try H2Connection(port: https)
        let sse = h2.client.request("GET", "/subscribe?topic=mix/t")
        let poll = h2.client.request("GET", "/subscribe?topic=mix/t&mode=longpoll&timeout=30")
        try h2.run { self.opened($0, sse) }
        waitForOpenStreams(server, 1)
        let metrics = h2.client.request("GET", "/metrics")
        let publish = h2.client.request("POST", "/publish?topic=mix/t", body: Array("on-h2".utf8))
        try h2.run {
            $0.responses[publish]?.closedWith != nil && $0.responses[metrics]?.closedWith != nil
                && $0.responses[poll]?.closedWith != nil && $0.responses[sse]?.text.contains("on-h2") == true
        }
        XCTAssertEqual(h2.client.responses[publish]?.status, 200)
        XCTAssertEqual(h2.client.responses[publish]?.text, #"{"published":1}"#)
        XCTAssertEqual(h2.client.responses[metrics]?.status, 200)
        XCTAssertTrue(h2.client.responses[metrics]?.text.contains("midge_") == true)
        XCTAssertEqual(h2.client.responses[poll]?.status, 200)
        XCTAssertTrue(h2.client.responses[poll]?.text.contains(#""payload":"on-h2""#) == true)
        XCTAssertNotNil(h2.client.responses[poll]?["last-event-id"])
        let topic = h2.client.request("GET", "/topic?topic=mix/t")
        try h2.run { $0.responses[topic]?.closedWith != nil }
        XCTAssertEqual(h2.client.responses[topic]?.status, 200)
        XCTAssertTrue(h2.client.responses[topic]?.text.contains(#""subscribers":1"#) == true, "the SSE stream")
        XCTAssertNil(h2.client.responses[sse]?.closedWith, "the stream stays open throughout")
    }

    func testSlowReaderGetsEveryEventInOrderAsItsWindowOpens() throws {
        let (server, mqtt, https) = try start()
        defer { server.stop() }
        let h2 = try H2Connection(port: https, window: 100, autoWindowUpdate: false)
        let id = h2.client.request("GET", "/subscribe?topic=slow")
        try h2.run { self.opened($0, id) }
        let publisher = try RawClient(port: mqtt)
        _ = try publisher.connect("pub")
        for index in 0..<20 { try publisher.publish("slow", Array("event-\(index)".utf8)) }
        try h2.run { ($0.responses[id]?.body.count ?? 0) >= 100 }
        XCTAssertEqual(h2.client.responses[id]?.body.count, 100, "never more than the window")
        var taken = 0
        for _ in 0..<1000 {
            let body = h2.client.responses[id]?.body.count ?? 0
            if h2.client.responses[id]?.text.contains("\"payload\":\"event-19\"") == true { break }
            h2.client.consume(id, body - taken)
            taken = body
            try h2.run { ($0.responses[id]?.body.count ?? 0) > body }
        }
        let text = h2.client.responses[id]?.text ?? ""
        let order = (0..<20).compactMap { text.range(of: "\"payload\":\"event-\($0)\"")?.lowerBound }
        XCTAssertEqual(order.count, 20, text)
        XCTAssertEqual(order, order.sorted())
    }

    func testStreamsCountAgainstTheListenersMaxConnections() throws {
        let server = try RunningServer(
            threads: 2,
            config: "listener 0 127.0.0.1\nprotocol http\nmax_connections 2\n" + TLSFixture.serverSettings())
        defer { server.stop() }
        let h2 = try H2Connection(port: server.server.listeners[1].port)
        let stream = h2.client.request("GET", "/subscribe?topic=full")
        try h2.run { self.opened($0, stream) }
        let refused = h2.client.request("GET", "/metrics")
        try h2.run { $0.responses[refused]?.closedWith != nil }
        XCTAssertEqual(h2.client.responses[refused]?.status, 503, "the socket and one stream are the listener's two")
        h2.client.reset(stream)
        try h2.channel.write(h2.client.output())
        waitForOpenStreams(server, 0)
        let next = h2.client.request("GET", "/metrics")
        try h2.run { $0.responses[next]?.closedWith != nil }
        XCTAssertEqual(h2.client.responses[next]?.status, 200, "a closed stream gives its place back")
    }

    func testMalformedFramesCloseTheConnectionWithALogLine() throws {
        let (server, _, https) = try start()
        defer { server.stop() }
        let h2 = try H2Connection(port: https)
        let id = h2.client.request("GET", "/metrics")
        try h2.run { $0.responses[id]?.closedWith != nil }
        // A DATA frame on stream 0 is a connection error (RFC 9113 §6.1).
        try h2.channel.write([0, 0, 1, 0, 0, 0, 0, 0, 0, 0x41])
        try h2.runUntilClosed()
        XCTAssertTrue(h2.client.goAwayReceived)
        XCTAssertNotNil(server.log.waitForLine { $0.contains("HTTP/2 client") }, server.log.all.joined(separator: "\n"))

        let next = try H2Connection(port: https)
        let again = next.client.request("GET", "/metrics")
        try next.run { $0.responses[again]?.closedWith != nil }
        XCTAssertEqual(next.client.responses[again]?.status, 200, "the broker serves on")
    }

    func testShutdownSendsGoAway() throws {
        let (server, _, https) = try start()
        let h2 = try H2Connection(port: https)
        let id = h2.client.request("GET", "/subscribe?topic=bye")
        try h2.run { self.opened($0, id) }
        server.stop()
        try h2.runUntilClosed()
        XCTAssertTrue(h2.client.goAwayReceived)
    }
}
