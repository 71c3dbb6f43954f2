// WebSocket framing for MQTT: the RFC 6455 §5.7 examples, reassembly [MQTT-6.0.0-2], every close-code path.

import MQTTCodec
import MQTTTestSupport
import XCTest

@testable import MidgeGateway

final class WebSocketFrameTests: XCTestCase {
    let hello = Array("Hello".utf8)

    // MARK: - RFC 6455 §5.7 examples

    /// §5.7 "A single-frame masked text message", sent as binary: the mask is undone.
    func testMaskedHelloFrame() {
        let frame: [UInt8] = [0x82, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58]
        let outcome = feedWebSocket(frame)
        XCTAssertEqual(outcome, WebSocketOutcome(stream: hello))
    }

    /// §5.7 masked text "Hello" as the RFC gives it: a text frame fails the connection with 1003 [MQTT-6.0.0-1].
    func testTextFrameClosesWith1003() {
        let frame: [UInt8] = [0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58]
        let outcome = feedWebSocket(frame)
        XCTAssertEqual(outcome.stream, [])
        XCTAssertEqual(outcome.closure, .failed(.unsupportedData, reason: "text frames do not carry MQTT"))
        let frames = parseServerFrames(outcome.reply)
        XCTAssertEqual(frames.count, 1)
        XCTAssertEqual(frames.first?.opcode, 0x8)
        XCTAssertEqual(frames.first?.payload.prefix(2), [0x03, 0xEB])
    }

    /// §5.7 "A single-frame unmasked text message", as binary: client frames must be masked (§5.1), so 1002.
    func testUnmaskedClientFrameClosesWith1002() {
        let outcome = feedWebSocket([0x82, 0x05] + hello)
        XCTAssertEqual(outcome.closure, .failed(.protocolError, reason: "client frames must be masked"))
        XCTAssertEqual(Array(outcome.reply.prefix(4)), [0x88, UInt8(2 + 28), 0x03, 0xEA])
    }

    /// §5.7 "A fragmented unmasked text message" ("Hel" + "lo"), as masked binary fragments.
    func testFragmentedMessageIsReassembled() {
        let bytes = clientFrame(0x2, Array("Hel".utf8), fin: false) + clientFrame(0x0, Array("lo".utf8))
        XCTAssertEqual(feedWebSocket(bytes), WebSocketOutcome(stream: hello))
    }

    /// §5.4: control frames may come between the fragments of a message.
    func testPingBetweenFragmentsIsAnswered() {
        let bytes =
            clientFrame(0x2, Array("Hel".utf8), fin: false) + clientFrame(0x9, Array("ping".utf8))
            + clientFrame(0x0, Array("lo".utf8))
        let outcome = feedWebSocket(bytes)
        XCTAssertEqual(outcome.stream, hello)
        XCTAssertEqual(outcome.reply, [0x8A, 0x04] + Array("ping".utf8))
        XCTAssertNil(outcome.closure)
    }

    /// §5.7 "Unmasked Ping request and masked Ping response", reversed roles: the client's masked Ping "Hello" is
    /// answered with the unmasked Pong `0x8a 0x05 Hello`.
    func testPingIsAnsweredWithPong() {
        let outcome = feedWebSocket(clientFrame(0x9, hello))
        XCTAssertEqual(outcome, WebSocketOutcome(reply: [0x8A, 0x05] + hello))
        XCTAssertEqual(feedWebSocket(clientFrame(0x9, [])), WebSocketOutcome(reply: [0x8A, 0x00]))
    }

    func testUnsolicitedPongNeedsNoAnswer() {
        XCTAssertEqual(feedWebSocket(clientFrame(0xA, hello)), WebSocketOutcome())
    }

    /// §5.7 "256 bytes binary message in a single unmasked frame" and "64KiB binary message": the 16-bit and 64-bit
    /// length forms, both ways.
    func testExtendedLengths() {
        for (count, header) in [
            (256, [0x82, 0x7E, 0x01, 0x00] as [UInt8]), (65536, [0x82, 0x7F, 0, 0, 0, 0, 0, 1, 0, 0]),
            (125, [0x82, 0x7D]), (126, [0x82, 0x7E, 0x00, 0x7E]), (65535, [0x82, 0x7E, 0xFF, 0xFF]),
        ] {
            let payload = (0..<count).map { UInt8(truncatingIfNeeded: $0 * 7) }
            var out: [UInt8] = []
            WebSocketFrameEncoder().encodeBinaryMessage(payload, into: &out)
            XCTAssertEqual(Array(out.prefix(header.count)), header, "header for \(count) bytes")
            XCTAssertEqual(Array(out.dropFirst(header.count)), payload)
            let connection = WebSocketConnection()
            var stream: [UInt8] = []
            let receipt = connection.receive(clientFrame(0x2, payload), appendingDataTo: &stream)
            XCTAssertEqual(stream, payload)
            XCTAssertEqual(receipt, WebSocketConnection.Receipt())
        }
    }

    // MARK: - MQTT packets and frame boundaries [MQTT-6.0.0-2]

    /// A CONNECT split over three frames of one message.
    func testPacketSplitAcrossFrames() {
        let connect = DeflateFixtures.connectSubscribePingPlain.prefix(17)
        let bytes =
            clientFrame(0x2, Array(connect.prefix(3)), fin: false)
            + clientFrame(0x0, Array(connect[3..<10]), fin: false)
            + clientFrame(0x0, Array(connect[10...]))
        let packets = mqttPackets(feedWebSocket(bytes).stream)
        XCTAssertEqual(packets.count, 1)
        guard case .connect(let decoded)? = packets.first else { return XCTFail("expected CONNECT") }
        XCTAssertEqual(decoded.clientID, "ws1")
    }

    /// A packet whose bytes straddle two messages: message boundaries are not packet boundaries either.
    func testPacketSplitAcrossMessages() {
        let stream = DeflateFixtures.connectSubscribePingPlain
        let bytes = clientFrame(0x2, Array(stream.prefix(20))) + clientFrame(0x2, Array(stream.dropFirst(20)))
        XCTAssertEqual(mqttPackets(feedWebSocket(bytes).stream).map(\.type), [.connect, .subscribe, .pingreq])
    }

    /// CONNECT + SUBSCRIBE + PINGREQ packed into one frame.
    func testPacketsPackedIntoOneFrame() {
        let outcome = feedWebSocket(clientFrame(0x2, DeflateFixtures.connectSubscribePingPlain))
        XCTAssertEqual(mqttPackets(outcome.stream).map(\.type), [.connect, .subscribe, .pingreq])
        XCTAssertEqual(outcome.reply, [])
    }

    /// Several outgoing packets in one call make one unmasked binary frame.
    func testSendPacksPacketsIntoOneFrame() {
        let connack: [UInt8] = [0x20, 0x02, 0x00, 0x00]
        let suback: [UInt8] = [0x90, 0x03, 0x00, 0x01, 0x01]
        var out: [UInt8] = []
        let connection = WebSocketConnection()
        connection.send(connack + suback, into: &out)
        XCTAssertEqual(out, [0x82, 0x09] + connack + suback)
        XCTAssertEqual(
            parseServerFrames(out), [ServerFrame(fin: true, rsv1: false, opcode: 2, payload: connack + suback)])
        connection.send([], into: &out)
        XCTAssertEqual(out.count, 11, "an empty send writes nothing")
    }

    func testDataBeforeABadFrameIsStillDelivered() {
        let outcome = feedWebSocket(clientFrame(0x2, [0xC0, 0x00]) + clientFrame(0x1, hello))
        XCTAssertEqual(outcome.stream, [0xC0, 0x00])
        XCTAssertEqual(outcome.closure, .failed(.unsupportedData, reason: "text frames do not carry MQTT"))
    }

    // MARK: - Close handshake

    func testClientCloseIsEchoed() {
        let outcome = feedWebSocket(clientFrame(0x8, [0x03, 0xE8] + Array("bye".utf8)))
        XCTAssertEqual(outcome.closure, .closedByPeer(code: .normalClosure, reason: "bye"))
        XCTAssertEqual(outcome.reply, closeFrame(1000))
        let goingAway = feedWebSocket(clientFrame(0x8, [0x03, 0xE9]))
        XCTAssertEqual(goingAway.reply, closeFrame(1001), "the code is echoed")
        let privateCode = feedWebSocket(clientFrame(0x8, [0x0F, 0xA0]))
        XCTAssertEqual(privateCode.closure, .closedByPeer(code: WebSocketCloseCode(rawValue: 4000), reason: ""))
    }

    func testEmptyCloseIsAnsweredWithEmptyClose() {
        let outcome = feedWebSocket(clientFrame(0x8, []))
        XCTAssertEqual(outcome, WebSocketOutcome(reply: [0x88, 0x00], closure: .closedByPeer(code: nil, reason: "")))
    }

    func testBytesAfterCloseAreIgnored() {
        let outcome = feedWebSocket(clientFrame(0x8, []) + clientFrame(0x2, hello) + clientFrame(0x9, []))
        XCTAssertEqual(outcome.stream, [])
        XCTAssertEqual(outcome.reply, [0x88, 0x00])
    }

    func testServerInitiatedClose() {
        let connection = WebSocketConnection()
        var out: [UInt8] = []
        connection.close(.normalClosure, reason: "done", into: &out)
        XCTAssertEqual(out, [0x88, 0x06, 0x03, 0xE8] + Array("done".utf8))
        XCTAssertEqual(connection.state, .closing)
        connection.send([0xD0, 0x00], into: &out)
        connection.ping(into: &out)
        connection.close(into: &out)
        XCTAssertEqual(out.count, 8, "nothing is sent after a Close frame")
        var stream: [UInt8] = []
        let data = connection.receive(clientFrame(0x2, hello) + clientFrame(0x9, []), appendingDataTo: &stream)
        XCTAssertEqual(stream, [], "data after our Close is dropped")
        XCTAssertEqual(data, WebSocketConnection.Receipt())
        let answer = connection.receive(clientFrame(0x8, [0x03, 0xE8]), appendingDataTo: &stream)
        XCTAssertEqual(answer.reply, [], "the client's Close answers ours")
        XCTAssertEqual(answer.closure, .closedByPeer(code: .normalClosure, reason: ""))
        XCTAssertEqual(connection.state, .closed)
        XCTAssertEqual(connection.receive(clientFrame(0x2, hello), appendingDataTo: &stream), .init())
    }

    func testCloseReasonIsCutAtACharacterBoundary() {
        var out: [UInt8] = []
        WebSocketFrameEncoder.encodeClose(
            code: .policyViolation, reason: String(repeating: "é", count: 100), into: &out)
        XCTAssertEqual(out[1], 2 + 122, "61 two-byte characters fit in 123 bytes")
        XCTAssertNotNil(String(validating: out[4...], as: UTF8.self))
        out = []
        WebSocketFrameEncoder.encodeClose(code: .noStatusReceived, into: &out)
        XCTAssertEqual(out, [0x88, 0x00], "1005 is for reports only")
    }

    // MARK: - Every failure and its code

    func testProtocolErrors() {
        let cases: [(String, [UInt8], WebSocketCloseCode)] = [
            ("reserved opcode 3", clientFrame(0x3, hello), .protocolError),
            ("reserved control opcode 0xB", clientFrame(0xB, []), .protocolError),
            ("RSV2", clientFrame(0x2, hello, flags: 0x20), .protocolError),
            ("RSV3", clientFrame(0x2, hello, flags: 0x10), .protocolError),
            ("RSV1 without deflate", clientFrame(0x2, hello, flags: 0x40), .protocolError),
            ("fragmented ping", clientFrame(0x9, hello, fin: false), .protocolError),
            ("ping of 126 bytes", clientFrame(0x9, Array(repeating: 0, count: 126)), .protocolError),
            (
                "close of 126 bytes", clientFrame(0x8, [0x03, 0xE8] + Array(repeating: 0x61, count: 124)),
                .protocolError
            ),
            ("continuation first", clientFrame(0x0, hello), .protocolError),
            ("binary inside a message", clientFrame(0x2, hello, fin: false) + clientFrame(0x2, hello), .protocolError),
            ("text inside a message", clientFrame(0x2, hello, fin: false) + clientFrame(0x1, hello), .unsupportedData),
            ("1-byte close", clientFrame(0x8, [0x03]), .protocolError),
            ("close code 999", clientFrame(0x8, [0x03, 0xE7]), .protocolError),
            ("close code 1004", clientFrame(0x8, [0x03, 0xEC]), .protocolError),
            ("close code 1005", clientFrame(0x8, [0x03, 0xED]), .protocolError),
            ("close code 1006", clientFrame(0x8, [0x03, 0xEE]), .protocolError),
            ("close code 1015", clientFrame(0x8, [0x03, 0xF7]), .protocolError),
            ("close code 2000", clientFrame(0x8, [0x07, 0xD0]), .protocolError),
            ("close code 5000", clientFrame(0x8, [0x13, 0x88]), .protocolError),
            ("close reason not UTF-8", clientFrame(0x8, [0x03, 0xE8, 0xC3, 0x28]), .invalidPayloadData),
            ("64-bit length with the top bit", [0x82, 0xFF, 0x80, 0, 0, 0, 0, 0, 0, 0] + rfcMask, .protocolError),
        ]
        for (name, bytes, code) in cases {
            let outcome = feedWebSocket(bytes)
            guard case .failed(let failedCode, _)? = outcome.closure else {
                XCTFail("\(name): expected a failure, got \(String(describing: outcome.closure))")
                continue
            }
            XCTAssertEqual(failedCode, code, name)
            let frames = parseServerFrames(outcome.reply)
            XCTAssertEqual(frames.count, 1, name)
            XCTAssertEqual(frames.first?.opcode, 0x8, name)
            XCTAssertEqual(
                frames.first?.payload.prefix(2), [UInt8(code.rawValue >> 8), UInt8(code.rawValue & 0xFF)], name)
        }
    }

    /// The frame limit is checked from the header, before the payload arrives.
    func testFrameLargerThanTheLimitClosesWith1009() {
        let limits = WebSocketLimits(maxFramePayload: 100, maxMessageSize: 1000)
        let frame = clientFrame(0x2, Array(repeating: 1, count: 101))
        let connection = WebSocketConnection(limits: limits)
        var stream: [UInt8] = []
        let receipt = connection.receive(Array(frame.prefix(8)), appendingDataTo: &stream)
        XCTAssertEqual(receipt.closure, .failed(.messageTooBig, reason: "frame of 101 bytes exceeds the limit of 100"))
        XCTAssertEqual(Array(receipt.reply.prefix(4)), [0x88, receipt.reply[1], 0x03, 0xF1])
        XCTAssertEqual(feedWebSocket(clientFrame(0x2, Array(repeating: 1, count: 100)), limits: limits).closure, nil)
        XCTAssertEqual(
            feedWebSocket([0x82, 0xFF, 0, 0, 0, 1, 0, 0, 0, 0] + rfcMask, limits: limits).closure,
            .failed(.messageTooBig, reason: "frame of 4294967296 bytes exceeds the limit of 100"))
    }

    func testMessageLargerThanTheLimitClosesWith1009() {
        let limits = WebSocketLimits(maxFramePayload: 100, maxMessageSize: 150)
        let fragment = Array(repeating: UInt8(1), count: 75)
        let fits = clientFrame(0x2, fragment, fin: false) + clientFrame(0x0, fragment)
        XCTAssertEqual(feedWebSocket(fits, limits: limits).stream.count, 150)
        let outcome = feedWebSocket(
            fits + clientFrame(0x2, fragment, fin: false)
                + clientFrame(0x0, fragment, fin: false) + clientFrame(0x0, [1]), limits: limits)
        XCTAssertEqual(outcome.closure, .failed(.messageTooBig, reason: "message exceeds the limit of 150 bytes"))
        XCTAssertEqual(outcome.stream.count, 300, "bytes of whole frames before the limit are delivered")
    }
}
