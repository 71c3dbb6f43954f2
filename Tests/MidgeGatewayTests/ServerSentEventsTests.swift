// Server-Sent Events encoding, checked by a small parser that follows the HTML standard's event-stream rules.

import MQTTCodec
import XCTest

@testable import MidgeGateway

/// What an `EventSource` would dispatch: the §9.2.6 interpretation of an event stream, minus reconnection.
struct ParsedEvent: Equatable {
    var id: String?
    var type: String
    var data: String
}

func parseEventStream(_ bytes: [UInt8]) -> (events: [ParsedEvent], retry: Int?, comments: Int) {
    var events: [ParsedEvent] = []
    var retry: Int?
    var comments = 0
    var data = ""
    var type = ""
    var lastID: String?
    var sawData = false
    let text = String(decoding: bytes, as: UTF8.self).replacingOccurrences(of: "\r\n", with: "\n")
        .replacingOccurrences(of: "\r", with: "\n")
    for line in text.split(separator: "\n", omittingEmptySubsequences: false) {
        if line.isEmpty {
            if sawData {
                events.append(
                    ParsedEvent(id: lastID, type: type.isEmpty ? "message" : type, data: String(data.dropLast())))
            }
            data = ""
            type = ""
            sawData = false
            continue
        }
        if line.hasPrefix(":") {
            comments += 1
            continue
        }
        let field: Substring
        let value: Substring
        if let colon = line.firstIndex(of: ":") {
            field = line[..<colon]
            let rest = line[line.index(after: colon)...]
            value = rest.hasPrefix(" ") ? rest.dropFirst() : rest
        } else {
            field = line
            value = ""
        }
        switch field {
        case "data":
            data += value + "\n"
            sawData = true
        case "event": type = String(value)
        case "id": lastID = String(value)
        case "retry": retry = Int(value)
        default: break
        }
    }
    return (events, retry, comments)
}

final class ServerSentEventsTests: XCTestCase {
    func encode(id: String? = nil, event: String? = nil, _ data: String) -> [UInt8] {
        var out: [UInt8] = []
        ServerSentEvents.encodeEvent(id: id, event: event, data: Array(data.utf8), into: &out)
        return out
    }

    func testSingleLineEvent() {
        XCTAssertEqual(String(decoding: encode(id: "7", "hello"), as: UTF8.self), "id: 7\ndata: hello\n\n")
        XCTAssertEqual(String(decoding: encode(""), as: UTF8.self), "data: \n\n")
    }

    func testMultiLineDataSurvivesTheParser() {
        for data in ["a\nb", "a\n\nb", "line\n", "\nleading", " spaced", "x: y", ":colon"] {
            let parsed = parseEventStream(encode(id: "1", event: "message", data))
            XCTAssertEqual(parsed.events, [ParsedEvent(id: "1", type: "message", data: data)], data.debugDescription)
        }
        // CR and CRLF end lines in the stream, so the receiver sees LF.
        XCTAssertEqual(String(decoding: encode("a\r\nb\rc"), as: UTF8.self), "data: a\ndata: b\ndata: c\n\n")
        XCTAssertEqual(parseEventStream(encode("a\r\nb\rc")).events.first?.data, "a\nb\nc")
    }

    func testMessagesAsJSON() {
        var out: [UInt8] = []
        let message = GatewayMessage(topic: TopicName("room/1")!, payload: Array("hi\nthere".utf8), qos: .atLeastOnce)
        ServerSentEvents.encode(message, id: "41", format: .json, into: &out)
        XCTAssertEqual(
            String(decoding: out, as: UTF8.self),
            #"id: 41"# + "\n" + #"data: {"topic":"room/1","payload":"hi\nthere","qos":1,"retain":false}"# + "\n\n")
        out = []
        ServerSentEvents.encode(
            GatewayMessage(topic: TopicName("bin")!, payload: [0xC3, 0x28], retain: true), id: "42", format: .json,
            into: &out)
        XCTAssertEqual(
            parseEventStream(out).events,
            [
                ParsedEvent(
                    id: "42", type: "message", data: #"{"topic":"bin","payload_base64":"wyg=","qos":0,"retain":true}"#)
            ])
    }

    func testRawMessagesTextOrBinary() {
        func raw(_ payload: [UInt8]) -> ParsedEvent? {
            var out: [UInt8] = []
            ServerSentEvents.encode(
                GatewayMessage(topic: TopicName("t")!, payload: payload), id: "1", format: .raw, into: &out)
            return parseEventStream(out).events.first
        }
        XCTAssertEqual(raw(Array("21.5\n22.0".utf8)), ParsedEvent(id: "1", type: "message", data: "21.5\n22.0"))
        XCTAssertEqual(raw([0xFF, 0xFE]), ParsedEvent(id: "1", type: "binary", data: "//4="))
        XCTAssertEqual(
            raw(Array("a\r\nb".utf8)), ParsedEvent(id: "1", type: "binary", data: "YQ0KYg=="), "CR would be lost")
        XCTAssertEqual(raw([0x61, 0x00]), ParsedEvent(id: "1", type: "binary", data: "YQA="))
        XCTAssertEqual(raw([]), ParsedEvent(id: "1", type: "message", data: ""))
    }

    func testHeartbeatCommentsAndRetry() {
        var out = ServerSentEvents.heartbeat
        ServerSentEvents.encodeComment("keep-alive\nsecond", into: &out)
        ServerSentEvents.encodeRetry(milliseconds: 5000, into: &out)
        out += encode(id: "9", "after")
        XCTAssertEqual(
            String(decoding: out, as: UTF8.self), ":\n\n: keep-alive\n: second\n\nretry: 5000\n\nid: 9\ndata: after\n\n"
        )
        let parsed = parseEventStream(out)
        XCTAssertEqual(parsed.comments, 3)
        XCTAssertEqual(parsed.retry, 5000)
        XCTAssertEqual(parsed.events, [ParsedEvent(id: "9", type: "message", data: "after")])
    }

    func testResponseHead() {
        let head = String(decoding: ServerSentEvents.responseHead(retryMilliseconds: 3000), as: UTF8.self)
        XCTAssertEqual(
            head,
            "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nCache-Control: no-store\r\n"
                + "X-Accel-Buffering: no\r\n\r\nretry: 3000\n\n")
        XCTAssertFalse(head.contains("Content-Length"), "the stream runs until the connection closes")
    }
}
