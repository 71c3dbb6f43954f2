// The opening handshake: RFC 6455 §4.2 (accept key vector, 101 response, refusals) and [MQTT-6.0.0-4].

import MQTTTestSupport
import XCTest

@testable import MidgeGateway

final class WebSocketHandshakeTests: XCTestCase {
    static let key = "dGhlIHNhbXBsZSBub25jZQ=="

    func upgradeRequest(_ extra: [(String, String)] = [], method: String = "GET") -> HTTPRequest {
        var headers: HTTPHeaders = [
            ("Host", "127.0.0.1:8080"), ("Upgrade", "websocket"), ("Connection", "Upgrade"),
            ("Sec-WebSocket-Key", WebSocketHandshakeTests.key), ("Sec-WebSocket-Version", "13"),
        ]
        for (name, value) in extra { headers.replace(name, with: value) }
        return HTTPRequest(method: method, target: "/mqtt", headers: headers)
    }

    func accepted(_ outcome: WebSocketHandshake.Outcome, file: StaticString = #filePath, line: UInt = #line)
        -> WebSocketHandshake.Accepted?
    {
        guard case .accepted(let accepted) = outcome else {
            XCTFail("expected 101, got \(outcome)", file: file, line: line)
            return nil
        }
        return accepted
    }

    func rejection(_ outcome: WebSocketHandshake.Outcome, file: StaticString = #filePath, line: UInt = #line)
        -> HTTPResponse?
    {
        guard case .rejected(let response) = outcome else {
            XCTFail("expected a refusal, got \(outcome)", file: file, line: line)
            return nil
        }
        XCTAssertTrue(response.closeConnection, file: file, line: line)
        return response
    }

    /// RFC 6455 §1.3 / §4.2.2: the sample nonce and its accept value.
    func testAcceptValueOfTheRFC() {
        XCTAssertEqual(
            WebSocketHandshake.acceptValue(forKey: "dGhlIHNhbXBsZSBub25jZQ=="), "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=")
    }

    /// [MQTT-6.0.0-4] the server selects `mqtt` and says so; the whole 101 response, byte for byte.
    func testMQTTSubprotocolIsSelected() throws {
        let outcome = WebSocketHandshake.respond(
            to: upgradeRequest([("Sec-WebSocket-Protocol", "mqtt")]), configuration: .init(deflate: nil))
        let response = try XCTUnwrap(accepted(outcome))
        XCTAssertEqual(response.subprotocol, "mqtt")
        XCTAssertNil(response.deflate)
        XCTAssertEqual(
            String(decoding: response.response.bytes, as: UTF8.self),
            "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                + "Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\nSec-WebSocket-Protocol: mqtt\r\n\r\n")
    }

    func testSubprotocolChoice() {
        let cases: [(String, String?)] = [
            ("mqtt", "mqtt"), ("mqttv3.1", "mqttv3.1"), ("chat, mqtt", "mqtt"), ("mqttv3.1, mqtt", "mqtt"),
            ("MQTT", "MQTT"),
        ]
        for (offered, chosen) in cases {
            let outcome = WebSocketHandshake.respond(to: upgradeRequest([("Sec-WebSocket-Protocol", offered)]))
            XCTAssertEqual(accepted(outcome)?.subprotocol, chosen, offered)
            XCTAssertEqual(accepted(outcome)?.response.headers["Sec-WebSocket-Protocol"], chosen, offered)
        }
        let twoLines = upgradeRequest()  // the protocols spread over two header lines
        var request = twoLines
        request.headers.append("Sec-WebSocket-Protocol", "chat")
        request.headers.append("Sec-WebSocket-Protocol", "mqtt")
        XCTAssertEqual(accepted(WebSocketHandshake.respond(to: request))?.subprotocol, "mqtt")
    }

    /// As mosquitto: no subprotocol offered is accepted, and the response names none (RFC 6455 §4.2.2).
    func testNoSubprotocolIsAcceptedUnlessRequired() {
        let outcome = WebSocketHandshake.respond(to: upgradeRequest())
        XCTAssertNil(accepted(outcome)?.subprotocol)
        XCTAssertNil(accepted(outcome)?.response.headers["Sec-WebSocket-Protocol"])
        let strict = WebSocketHandshake.respond(to: upgradeRequest(), configuration: .init(requireSubprotocol: true))
        XCTAssertEqual(rejection(strict)?.status, .badRequest)
    }

    func testUnsupportedSubprotocolIsRefused() {
        let outcome = WebSocketHandshake.respond(to: upgradeRequest([("Sec-WebSocket-Protocol", "chat, superchat")]))
        XCTAssertEqual(rejection(outcome)?.status, .badRequest)
        XCTAssertEqual(
            rejection(outcome).map { String(decoding: $0.body, as: UTF8.self) },
            #"{"error":"none of the offered subprotocols is supported; this listener speaks mqtt, mqttv3.1"}"#)
    }

    func testPermessageDeflateIsNegotiated() {
        let outcome = WebSocketHandshake.respond(
            to: upgradeRequest([
                ("Sec-WebSocket-Protocol", "mqtt"),
                ("Sec-WebSocket-Extensions", "permessage-deflate; client_max_window_bits"),
            ]))
        XCTAssertEqual(accepted(outcome)?.deflate, PerMessageDeflateParameters())
        XCTAssertEqual(accepted(outcome)?.response.headers["Sec-WebSocket-Extensions"], "permessage-deflate")
        let off = WebSocketHandshake.respond(
            to: upgradeRequest([("Sec-WebSocket-Extensions", "permessage-deflate")]), configuration: .init(deflate: nil)
        )
        XCTAssertNil(accepted(off)?.deflate)
        XCTAssertNil(accepted(off)?.response.headers["Sec-WebSocket-Extensions"])
    }

    func testHeaderTokensAreCaseInsensitiveLists() {
        let outcome = WebSocketHandshake.respond(
            to: upgradeRequest([("Upgrade", "WebSocket"), ("Connection", "keep-alive, Upgrade")]))
        XCTAssertNotNil(accepted(outcome))
    }

    func testRefusals() {
        let cases: [(String, HTTPRequest, HTTPStatus, String?)] = [
            ("POST", upgradeRequest(method: "POST"), .methodNotAllowed, "Allow"),
            ("no Upgrade", upgradeRequest([("Upgrade", "h2c")]), .upgradeRequired, "Upgrade"),
            ("no Connection: upgrade", upgradeRequest([("Connection", "keep-alive")]), .upgradeRequired, "Upgrade"),
            ("version 8", upgradeRequest([("Sec-WebSocket-Version", "8")]), .upgradeRequired, "Sec-WebSocket-Version"),
            ("short key", upgradeRequest([("Sec-WebSocket-Key", "c2hvcnQ=")]), .badRequest, nil),
            ("key not base64", upgradeRequest([("Sec-WebSocket-Key", "not base64 at all!!!!!==")]), .badRequest, nil),
        ]
        for (name, request, status, header) in cases {
            let response = rejection(WebSocketHandshake.respond(to: request))
            XCTAssertEqual(response?.status, status, name)
            if let header { XCTAssertNotNil(response?.headers[header], name) }
        }
        XCTAssertEqual(
            rejection(WebSocketHandshake.respond(to: upgradeRequest([("Sec-WebSocket-Version", "8")])))?
                .headers["Sec-WebSocket-Version"], "13", "§4.4: the version the server speaks")
        var missingVersion = upgradeRequest()
        missingVersion.headers = HTTPHeaders(
            missingVersion.headers.fields.filter { $0.name != "Sec-WebSocket-Version" }
                .map { ($0.name, $0.value) })
        XCTAssertEqual(rejection(WebSocketHandshake.respond(to: missingVersion))?.status, .badRequest)
        var twoKeys = upgradeRequest()
        twoKeys.headers.append("Sec-WebSocket-Key", WebSocketHandshakeTests.key)
        XCTAssertEqual(rejection(WebSocketHandshake.respond(to: twoKeys))?.status, .badRequest)
        var http10 = upgradeRequest()
        http10.version = .http10
        XCTAssertEqual(rejection(WebSocketHandshake.respond(to: http10))?.status, .badRequest)
    }

    /// From bytes to an open connection: the parser hands over frames that arrived right behind the request.
    func testParserHandsOverFramesAfterTheUpgrade() throws {
        let request =
            "GET /mqtt HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            + "Sec-WebSocket-Key: \(WebSocketHandshakeTests.key)\r\nSec-WebSocket-Version: 13\r\n"
            + "Sec-WebSocket-Protocol: mqtt\r\n\r\n"
        var parser = HTTPRequestParser()
        parser.append(Array(request.utf8) + clientFrame(0x2, [0xC0, 0x00]))
        guard case .request(let parsed)? = try parser.next() else { return XCTFail("expected the upgrade request") }
        let accepted = try XCTUnwrap(accepted(WebSocketHandshake.respond(to: parsed)))
        let connection = WebSocketConnection(deflate: accepted.deflate)
        var stream: [UInt8] = []
        let receipt = connection.receive(parser.takeBufferedBytes(), appendingDataTo: &stream)
        XCTAssertEqual(stream, [0xC0, 0x00])
        XCTAssertEqual(receipt, WebSocketConnection.Receipt())
        XCTAssertEqual(parser.bufferedByteCount, 0)
    }
}
