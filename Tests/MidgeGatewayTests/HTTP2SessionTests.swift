// HTTP2Session against nghttp2's client session in memory: concurrent requests and streams on one connection,
// resets, flow control, and malformed input.
import HTTP2TestSupport
import XCTest

@testable import MidgeGateway

final class HTTP2SessionTests: XCTestCase {
    private func requests(_ events: [HTTP2Event]) -> [(Int32, HTTPRequest)] {
        events.compactMap { if case .request(let id, let request) = $0 { (id, request) } else { nil } }
    }

    func testConcurrentRequestsAreAnsweredOnTheirOwnStreams() throws {
        let server = try HTTP2Session()
        let client = HTTP2TestClient()
        let first = client.request("GET", "/topic?topic=a", headers: [("authorization", "Bearer x")])
        let second = client.request("GET", "/metrics")
        let seen = requests(try exchange(client, server))
        XCTAssertEqual(seen.map(\.0), [first, second])
        XCTAssertEqual(seen[0].1.method, "GET")
        XCTAssertEqual(seen[0].1.target, "/topic?topic=a")
        XCTAssertEqual(seen[0].1.headers["Authorization"], "Bearer x")
        XCTAssertEqual(seen[0].1.headers["Host"], "localhost")
        // Answered out of order: each answer goes to its own stream.
        server.respond(stream: second, .json(.ok, "{\"b\":2}", headers: [("Connection", "close")]))
        server.respond(stream: first, .error(.forbidden, "no"))
        try exchange(client, server)
        XCTAssertEqual(client.responses[second]?.status, 200)
        XCTAssertEqual(client.responses[second]?.text, "{\"b\":2}")
        XCTAssertEqual(client.responses[second]?["content-length"], "7")
        XCTAssertNil(client.responses[second]?["connection"], "hop-by-hop fields are not HTTP/2 fields")
        XCTAssertEqual(client.responses[first]?.status, 403)
        XCTAssertEqual(client.responses[first]?["content-type"], "application/json")
        XCTAssertEqual(client.responses[first]?.closedWith, 0)
    }

    func testRequestBodyArrivesWhole() throws {
        let server = try HTTP2Session()
        let client = HTTP2TestClient()
        let body = Array(repeating: UInt8(ascii: "x"), count: 40_000)
        let id = client.request("POST", "/publish?topic=t", body: body)
        let seen = requests(try exchange(client, server))
        XCTAssertEqual(seen.map(\.0), [id])
        XCTAssertEqual(seen.first?.1.body, body)
        server.respond(stream: id, HTTPResponse(status: .noContent))
        let events = try exchange(client, server)
        XCTAssertEqual(client.responses[id]?.status, 204)
        XCTAssertTrue(events.contains(.closed(stream: id)))
    }

    func testTwoStreamsEachGetTheirEventsAsWritten() throws {
        let server = try HTTP2Session()
        let client = HTTP2TestClient()
        let a = client.request("GET", "/subscribe?topic=a")
        let b = client.request("GET", "/subscribe?topic=b")
        try exchange(client, server)
        server.startStream(stream: a, status: .ok, headers: [("Content-Type", "text/event-stream")])
        server.startStream(stream: b, status: .ok, headers: [("Content-Type", "text/event-stream")])
        try exchange(client, server)
        XCTAssertEqual(client.responses[a]?.status, 200)
        XCTAssertEqual(client.responses[b]?["content-type"], "text/event-stream")
        server.write(stream: a, Array("data: 1\n\n".utf8))
        try exchange(client, server)
        XCTAssertEqual(client.responses[a]?.text, "data: 1\n\n", "an event is sent as soon as it is written")
        XCTAssertEqual(client.responses[b]?.text, "")
        server.write(stream: b, Array("data: 2\n\n".utf8))
        server.write(stream: a, Array("data: 3\n\n".utf8))
        try exchange(client, server)
        XCTAssertEqual(client.responses[a]?.text, "data: 1\n\ndata: 3\n\n")
        XCTAssertEqual(client.responses[b]?.text, "data: 2\n\n")
        XCTAssertNil(client.responses[a]?.closedWith, "a stream stays open until finished")
        server.finish(stream: a)
        let events = try exchange(client, server)
        XCTAssertEqual(client.responses[a]?.closedWith, 0)
        XCTAssertEqual(events, [.closed(stream: a)])
    }

    func testResetEndsOnlyThatStream() throws {
        let server = try HTTP2Session()
        let client = HTTP2TestClient()
        let a = client.request("GET", "/subscribe?topic=a")
        let b = client.request("GET", "/subscribe?topic=b")
        try exchange(client, server)
        server.startStream(stream: a, status: .ok, headers: [])
        server.startStream(stream: b, status: .ok, headers: [])
        try exchange(client, server)
        client.reset(a)
        let events = try exchange(client, server)
        XCTAssertEqual(events, [.closed(stream: a)])
        server.write(stream: a, Array("gone".utf8))
        server.write(stream: b, Array("data: b\n\n".utf8))
        try exchange(client, server)
        XCTAssertEqual(client.responses[b]?.text, "data: b\n\n")
        XCTAssertEqual(server.queuedBytes(stream: a), 0, "nothing is kept for a reset stream")
    }

    func testSlowReaderLeavesBytesQueuedUntilItsWindowOpens() throws {
        let server = try HTTP2Session()
        let client = HTTP2TestClient(window: 16, autoWindowUpdate: false)
        let id = client.request("GET", "/subscribe?topic=a")
        try exchange(client, server)
        server.startStream(stream: id, status: .ok, headers: [])
        server.write(stream: id, Array(repeating: UInt8(ascii: "e"), count: 100))
        try exchange(client, server)
        XCTAssertEqual(client.responses[id]?.body.count, 16, "no more than the peer's window is sent")
        XCTAssertEqual(server.queuedBytes(stream: id), 84, "the rest waits, for the owner to see")
        XCTAssertEqual(server.takeDrainedStreams(), [])
        client.consume(id, 16)
        try exchange(client, server)
        XCTAssertEqual(client.responses[id]?.body.count, 32)
        for _ in 0..<6 {
            client.consume(id, 16)
            try exchange(client, server)
        }
        XCTAssertEqual(client.responses[id]?.body.count, 100)
        XCTAssertEqual(server.queuedBytes(stream: id), 0)
        XCTAssertEqual(server.takeDrainedStreams(), [id])
    }

    func testLargeBodyIsRefusedWith413() throws {
        let server = try HTTP2Session(limits: HTTPLimits(maxBodyBytes: 10))
        let client = HTTP2TestClient()
        let id = client.request("POST", "/publish?topic=t", body: Array(repeating: 1, count: 11))
        let events = try exchange(client, server)
        XCTAssertTrue(requests(events).isEmpty)
        XCTAssertEqual(client.responses[id]?.status, 413)
    }

    func testBadPrefaceFails() throws {
        let server = try HTTP2Session()
        let garbage = Array("GET / HTTP/1.1\r\nHost: x\r\n\r\n".utf8)
        XCTAssertThrowsError(try garbage.withUnsafeBytes { try server.receive($0) })
    }

    func testProtocolErrorEndsTheConnectionWithGoAway() throws {
        let server = try HTTP2Session()
        let client = HTTP2TestClient()
        client.request("GET", "/metrics")
        var bytes = client.output()
        // A DATA frame on stream 0 is a connection error (RFC 9113 §6.1).
        bytes += [0, 0, 1, 0, 0, 0, 0, 0, 0, 0x41]
        _ = try? bytes.withUnsafeBytes { try server.receive($0) }
        var toClient: [UInt8] = []
        try server.takeOutput(into: &toClient)
        client.input(toClient)
        XCTAssertTrue(client.goAwayReceived)
        XCTAssertTrue(server.isFinished, "the owner closes the connection")
        XCTAssertNotNil(server.protocolError)
    }

    func testGoAwayTellsTheClient() throws {
        let server = try HTTP2Session()
        let client = HTTP2TestClient()
        let id = client.request("GET", "/subscribe?topic=a")
        try exchange(client, server)
        server.startStream(stream: id, status: .ok, headers: [])
        server.goAway()
        try exchange(client, server)
        XCTAssertTrue(client.goAwayReceived)
    }
}

/// Passes bytes both ways until neither side has anything more to say; returns the server's events in order.
@discardableResult
func exchange(_ client: HTTP2TestClient, _ server: HTTP2Session) throws -> [HTTP2Event] {
    var events: [HTTP2Event] = []
    for _ in 0..<100 {
        let toServer = client.output()
        events += try toServer.withUnsafeBytes { try server.receive($0) }
        var toClient: [UInt8] = []
        try server.takeOutput(into: &toClient)
        events += server.takeEvents()
        client.input(toClient)
        if toServer.isEmpty && toClient.isEmpty { return events }
    }
    return events
}
