// permessage-deflate (RFC 7692): negotiation, the §7.2.3 examples, Python-made fixtures, limits and corrupt data.

import MQTTTestSupport
import XCTest

@testable import MidgeGateway

final class PerMessageDeflateTests: XCTestCase {
    let deflate = PerMessageDeflateParameters()
    let hello = Array("Hello".utf8)

    // MARK: - Negotiation (§5, §7.1)

    func negotiate(_ offers: [String], _ configuration: PerMessageDeflateConfiguration = .init()) -> String? {
        PerMessageDeflate.negotiate(offers: offers, configuration: configuration)?.responseHeaderValue
    }

    func testPlainOfferIsAccepted() {
        XCTAssertEqual(negotiate(["permessage-deflate"]), "permessage-deflate")
        XCTAssertEqual(negotiate(["PerMessage-Deflate"]), "permessage-deflate")
        XCTAssertNil(negotiate([]))
        XCTAssertNil(negotiate(["x-webkit-deflate-frame"]))
    }

    /// What browsers send: `client_max_window_bits` without a value only says the client could take a limit.
    func testBrowserOffer() {
        XCTAssertEqual(negotiate(["permessage-deflate; client_max_window_bits"]), "permessage-deflate")
        let limited = PerMessageDeflateConfiguration(clientMaxWindowBits: 12)
        XCTAssertEqual(
            negotiate(["permessage-deflate; client_max_window_bits"], limited),
            "permessage-deflate; client_max_window_bits=12")
        XCTAssertEqual(
            negotiate(["permessage-deflate; client_max_window_bits=10"], limited),
            "permessage-deflate; client_max_window_bits=10")
        XCTAssertEqual(
            negotiate(["permessage-deflate"], limited), "permessage-deflate",
            "no client_max_window_bits in the response unless offered (§7.1.2.2)")
    }

    func testServerParametersAreHonoured() {
        XCTAssertEqual(
            negotiate(["permessage-deflate; server_no_context_takeover"]),
            "permessage-deflate; server_no_context_takeover")
        XCTAssertEqual(
            negotiate(["permessage-deflate; server_max_window_bits=10"]),
            "permessage-deflate; server_max_window_bits=10")
        XCTAssertEqual(
            negotiate(["permessage-deflate; server_max_window_bits=\"12\""]),
            "permessage-deflate; server_max_window_bits=12", "a quoted value is the same token (§9.1 of RFC 6455)")
        XCTAssertEqual(
            negotiate(["permessage-deflate"], PerMessageDeflateConfiguration(serverNoContextTakeover: true)),
            "permessage-deflate; server_no_context_takeover")
        XCTAssertEqual(
            negotiate(
                ["permessage-deflate; server_max_window_bits=15"],
                PerMessageDeflateConfiguration(serverMaxWindowBits: 11)),
            "permessage-deflate; server_max_window_bits=11")
        XCTAssertEqual(
            negotiate(["permessage-deflate; client_no_context_takeover"]), "permessage-deflate",
            "the hint needs no answer: inflating with context reads both")
    }

    /// §5.1: an offer with a bad parameter is declined; the next offer (a fallback) is considered.
    func testBadOffersAreDeclined() {
        let fallback = "permessage-deflate"
        for bad in [
            "permessage-deflate; server_max_window_bits=8",  // zlib cannot write raw deflate with a 256-byte window
            "permessage-deflate; server_max_window_bits=16", "permessage-deflate; server_max_window_bits",
            "permessage-deflate; server_max_window_bits=010", "permessage-deflate; client_max_window_bits=7",
            "permessage-deflate; server_no_context_takeover; server_no_context_takeover",
            "permessage-deflate; server_no_context_takeover=1", "permessage-deflate; unknown_parameter",
            "permessage-deflate; server_max_window_bits=\"1 0\"",
        ] {
            XCTAssertNil(negotiate([bad]), bad)
            XCTAssertEqual(negotiate([bad + ", " + fallback]), fallback, bad)
            XCTAssertEqual(negotiate([bad, fallback]), fallback, "offers in two header lines: \(bad)")
        }
    }

    // MARK: - RFC 7692 §7.2.3 examples

    /// §7.2.3.1: "Hello" compressed, as one frame and as two fragments (RSV1 on the first only).
    func testCompressedHello() {
        let compressed: [UInt8] = [0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00]
        XCTAssertEqual(feedWebSocket(clientFrame(0x2, compressed, flags: 0x40), deflate: deflate).stream, hello)
        let fragmented =
            clientFrame(0x2, Array(compressed.prefix(3)), fin: false, flags: 0x40)
            + clientFrame(0x0, Array(compressed.dropFirst(3)))
        XCTAssertEqual(feedWebSocket(fragmented, deflate: deflate), WebSocketOutcome(stream: hello))
    }

    /// §7.2.3.2: the second "Hello" with context takeover is a back-reference into the first.
    func testContextTakeover() {
        let bytes =
            clientFrame(0x2, [0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00], flags: 0x40)
            + clientFrame(0x2, [0xf2, 0x00, 0x11, 0x00, 0x00], flags: 0x40)
        XCTAssertEqual(feedWebSocket(bytes, deflate: deflate).stream, hello + hello)
    }

    /// §7.2.3.3 (a stored block), §7.2.3.4 (a final block: the stream starts afresh) and an uncompressed message
    /// between compressed ones (RSV1 clear).
    func testStoredAndFinalBlocksAndUncompressedMessages() {
        let bytes =
            clientFrame(0x2, [0x00, 0x05, 0x00, 0xfa, 0xff, 0x48, 0x65, 0x6c, 0x6c, 0x6f, 0x00], flags: 0x40)
            + clientFrame(0x2, [0xf3, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00, 0x00], flags: 0x40)
            + clientFrame(0x2, Array("plain".utf8))
            + clientFrame(0x2, [0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00], flags: 0x40)
        XCTAssertEqual(feedWebSocket(bytes, deflate: deflate).stream, hello + hello + Array("plain".utf8) + hello)
    }

    /// §7.2.3.6: an empty message compresses to 0x00, and an empty compressed payload is an empty message too.
    func testEmptyCompressedMessages() {
        let bytes =
            clientFrame(0x2, [0x00], flags: 0x40) + clientFrame(0x2, [], flags: 0x40)
            + clientFrame(0x2, [0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00], flags: 0x40)
        XCTAssertEqual(feedWebSocket(bytes, deflate: deflate), WebSocketOutcome(stream: hello))
    }

    // MARK: - Python zlib fixtures

    func testPythonCompressedMQTTPackets() {
        let outcome = feedWebSocket(
            clientFrame(0x2, DeflateFixtures.connectSubscribePing, flags: 0x40), deflate: deflate)
        XCTAssertEqual(outcome.stream, DeflateFixtures.connectSubscribePingPlain)
        XCTAssertEqual(mqttPackets(outcome.stream).map(\.type), [.connect, .subscribe, .pingreq])
    }

    func testPythonCompressedMessagesWithContextTakeover() {
        let bytes =
            clientFrame(0x2, DeflateFixtures.publishFirst, flags: 0x40)
            + clientFrame(0x2, Array(DeflateFixtures.publishSecond.prefix(2)), fin: false, flags: 0x40)
            + clientFrame(0x0, Array(DeflateFixtures.publishSecond.dropFirst(2)))
        let outcome = feedWebSocket(bytes, deflate: deflate)
        XCTAssertEqual(outcome.stream, DeflateFixtures.publishPlain + DeflateFixtures.publishPlain)
        XCTAssertEqual(mqttPackets(outcome.stream).map(\.type), [.publish, .publish])
    }

    func testPythonCompressedLargeMessage() {
        let outcome = feedWebSocket(clientFrame(0x2, DeflateFixtures.repeatedJSON, flags: 0x40), deflate: deflate)
        XCTAssertEqual(outcome, WebSocketOutcome(stream: DeflateFixtures.repeatedJSONPlain))
    }

    /// A small frame that inflates past the message limit fails with 1009, without inflating it all.
    func testDecompressionBombClosesWith1009() {
        let limits = WebSocketLimits(maxFramePayload: 4096, maxMessageSize: 64 * 1024)
        let outcome = feedWebSocket(
            clientFrame(0x2, DeflateFixtures.zeros256KiB, flags: 0x40), limits: limits, deflate: deflate)
        XCTAssertEqual(outcome.closure, .failed(.messageTooBig, reason: "message inflates beyond 65536 bytes"))
        XCTAssertEqual(outcome.stream.count, 64 * 1024, "output stops at the limit")
        XCTAssertEqual(parseServerFrames(outcome.reply).first?.payload.prefix(2), [0x03, 0xF1])
    }

    func testCorruptCompressedDataClosesWith1007() {
        // BTYPE 11 is reserved in deflate (RFC 1951 §3.2.3).
        let outcome = feedWebSocket(clientFrame(0x2, [0xff, 0xff, 0xff], flags: 0x40), deflate: deflate)
        guard case .failed(let code, _)? = outcome.closure else { return XCTFail("expected a failure") }
        XCTAssertEqual(code, .invalidPayloadData)
    }

    func testRSV1OnlyOnTheFirstFrameOfAMessage() {
        let bytes =
            clientFrame(0x2, [0xf2, 0x48], fin: false, flags: 0x40) + clientFrame(0x0, [0xcd], fin: false, flags: 0x40)
        XCTAssertEqual(
            feedWebSocket(bytes, deflate: deflate).closure,
            .failed(.protocolError, reason: "RSV1 set on a frame that does not start a message"))
        XCTAssertEqual(
            feedWebSocket(clientFrame(0x9, [], flags: 0x40), deflate: deflate).closure,
            .failed(.protocolError, reason: "RSV1 set on a frame that does not start a message"))
    }

    // MARK: - Compression by the server (§7.2.1)

    /// zlib's default level writes "Hello" exactly as the RFC's example does.
    func testServerCompressesHelloAsTheRFC() {
        let encoder = WebSocketFrameEncoder(deflate: PerMessageDeflateParameters(minimumMessageSize: 0))
        var out: [UInt8] = []
        encoder.encodeBinaryMessage(hello, into: &out)
        XCTAssertEqual(out, [0xc2, 0x07, 0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00])
        out = []
        encoder.encodeBinaryMessage(hello, into: &out)
        XCTAssertEqual(out, [0xc2, 0x05, 0xf2, 0x00, 0x11, 0x00, 0x00], "§7.2.3.2 with context takeover")
    }

    func testServerWithoutContextTakeoverRepeatsItself() {
        let parameters = PerMessageDeflateParameters(serverNoContextTakeover: true, minimumMessageSize: 0)
        let encoder = WebSocketFrameEncoder(deflate: parameters)
        var first: [UInt8] = []
        var second: [UInt8] = []
        encoder.encodeBinaryMessage(hello, into: &first)
        encoder.encodeBinaryMessage(hello, into: &second)
        XCTAssertEqual(first, second)
    }

    func testSmallMessagesGoUncompressed() {
        let encoder = WebSocketFrameEncoder(deflate: PerMessageDeflateParameters(minimumMessageSize: 64))
        var out: [UInt8] = []
        encoder.encodeBinaryMessage([0x40, 0x02, 0x00, 0x01], into: &out)
        XCTAssertEqual(out, [0x82, 0x04, 0x40, 0x02, 0x00, 0x01])
    }

    /// What the server compresses, zlib inflates back, message after message and across window sizes.
    func testServerCompressionRoundTrip() {
        for windowBits in [9, 12, 15] {
            let parameters = PerMessageDeflateParameters(serverMaxWindowBits: windowBits, minimumMessageSize: 1)
            let connection = WebSocketConnection(deflate: parameters)
            var out: [UInt8] = []
            let messages = [
                DeflateFixtures.repeatedJSONPlain, DeflateFixtures.publishPlain, DeflateFixtures.publishPlain,
            ]
            for message in messages { connection.send(message, into: &out) }
            let frames = parseServerFrames(out)
            XCTAssertEqual(frames.count, 3)
            XCTAssertLessThan(out.count, DeflateFixtures.repeatedJSONPlain.count / 10)
            guard let inflater = Inflater() else { return XCTFail("zlib") }
            for (frame, message) in zip(frames, messages) {
                XCTAssertTrue(frame.rsv1)
                var inflated: [UInt8] = []
                XCTAssertNoThrow(
                    try frame.payload.withUnsafeBytes { payload in
                        _ = try inflater.inflate(payload, into: &inflated, limit: 1 << 20)
                    })
                XCTAssertNoThrow(try inflater.finishMessage(into: &inflated, limit: 1 << 20))
                XCTAssertEqual(inflated, message, "window bits \(windowBits)")
            }
        }
    }
}
