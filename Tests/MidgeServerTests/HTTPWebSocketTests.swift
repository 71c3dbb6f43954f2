// GET /subscribe upgraded to a WebSocket: the 101, messages as text frames with their history ids, resuming by
// `last_event_id`, pings, the client's close, and origins that may not open one.
import MQTTCodec
import MidgeCore
import XCTest

@testable import MidgeServer

final class HTTPWebSocketTests: XCTestCase {
    private let upgrade =
        "Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
        + "Sec-WebSocket-Version: 13\r\n"

    /// A masked client frame (RFC 6455 §5.3).
    private func clientFrame(_ opcode: UInt8, _ payload: [UInt8]) -> [UInt8] {
        let mask: [UInt8] = [1, 2, 3, 4]
        return [0x80 | opcode, 0x80 | UInt8(payload.count)] + mask
            + payload.enumerated().map { $0.element ^ mask[$0.offset % 4] }
    }

    /// The text frames after the 101 (the server's frames are unmasked and short here).
    private func textFrames(_ wire: [UInt8]) -> [String] {
        let separator: [UInt8] = [13, 10, 13, 10]
        guard let end = (0..<max(0, wire.count - 3)).first(where: { Array(wire[$0..<($0 + 4)]) == separator }) else {
            return []
        }
        var bytes = Array(wire[(end + 4)...])
        var frames: [String] = []
        while bytes.count >= 2 {
            let length = Int(bytes[1] & 0x7F)
            guard length < 126, bytes.count >= 2 + length else { break }
            if bytes[0] == 0x81 { frames.append(String(decoding: bytes[2..<(2 + length)], as: UTF8.self)) }
            bytes.removeFirst(2 + length)
        }
        return frames
    }

    func testMessagesArriveAsTextFramesAndTheClientCanPingAndClose() {
        let harness = GatewayHarness()
        let socket = harness.openHTTP()
        harness.send("GET /subscribe?topic=ws/%2B HTTP/1.1\r\n\(upgrade)\r\n", on: socket)
        XCTAssertTrue(socket.text.hasPrefix("HTTP/1.1 101 Switching Protocols\r\n"), socket.text)
        XCTAssertTrue(socket.text.contains("Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n"))
        harness.mqttPublish("ws/a", "one")
        harness.mqttPublish("ws/b", "two")
        XCTAssertEqual(
            textFrames(socket.wire),
            [
                #"{"id":"1","topic":"ws/a","payload":"one","qos":0,"retain":false}"#,
                #"{"id":"2","topic":"ws/b","payload":"two","qos":0,"retain":false}"#,
            ])
        let before = socket.wire.count
        harness.send(clientFrame(0x9, Array("hi".utf8)), on: socket)
        XCTAssertEqual(Array(socket.wire[before...]), [0x8A, 2] + Array("hi".utf8), "a pong with the same bytes")
        harness.send(clientFrame(0x8, [0x03, 0xE8]), on: socket)
        XCTAssertNotNil(socket.closed, "closed after the client's close")
    }

    func testResumingByLastEventIDInTheURL() {
        let harness = GatewayHarness()
        let keeper = harness.openHTTP()
        harness.send("GET /subscribe?topic=r HTTP/1.1\r\n\r\n", on: keeper)
        harness.mqttPublish("r", "seen")
        harness.mqttPublish("r", "missed")
        let socket = harness.openHTTP()
        harness.send("GET /subscribe?topic=r&last_event_id=1 HTTP/1.1\r\n\(upgrade)\r\n", on: socket)
        XCTAssertEqual(textFrames(socket.wire), [#"{"id":"2","topic":"r","payload":"missed","qos":0,"retain":false}"#])
    }

    func testOtherOriginsAreRefusedUnlessAllowed() {
        let harness = GatewayHarness()
        let foreign = harness.openHTTP()
        harness.send("GET /subscribe?topic=o HTTP/1.1\r\nOrigin: https://evil.example\r\n\(upgrade)\r\n", on: foreign)
        XCTAssertEqual(ParsedResponse.all(foreign.text).first?.status, 403)
        let same = harness.openHTTP()
        harness.send(
            "GET /subscribe?topic=o HTTP/1.1\r\nOrigin: http://localhost\r\n\(upgrade)\r\n", on: same)
        XCTAssertTrue(same.text.hasPrefix("HTTP/1.1 101"), same.text)
        let wrongMode = harness.openHTTP()
        harness.send("GET /subscribe?topic=o&mode=longpoll HTTP/1.1\r\n\(upgrade)\r\n", on: wrongMode)
        XCTAssertEqual(ParsedResponse.all(wrongMode.text).first?.status, 400)
    }
}
