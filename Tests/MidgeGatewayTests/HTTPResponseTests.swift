// Writing responses (RFC 9112 §4, §6): Content-Length framing, bodyless statuses, JSON errors, keep-alive.

import XCTest

@testable import MidgeGateway

final class HTTPResponseTests: XCTestCase {
    func testEncodeAddsContentLength() {
        let response = HTTPResponse.json(.ok, #"{"published":1}"#)
        XCTAssertEqual(
            String(decoding: response.bytes, as: UTF8.self),
            "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 15\r\n\r\n{\"published\":1}")
    }

    func testBodylessStatusesHaveNoContentLength() {
        XCTAssertEqual(
            String(decoding: HTTPResponse(status: .noContent, body: [1]).bytes, as: UTF8.self),
            "HTTP/1.1 204 No Content\r\n\r\n")
        XCTAssertEqual(
            String(
                decoding: HTTPResponse(status: .switchingProtocols, headers: [("Upgrade", "websocket")]).bytes,
                as: UTF8.self),
            "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\r\n")
    }

    func testErrorMessagesAreEscapedJSON() {
        let response = HTTPResponse.error(.badRequest, "bad \"topic\"\n\u{01}\\", closeConnection: true)
        XCTAssertEqual(String(decoding: response.body, as: UTF8.self), #"{"error":"bad \"topic\"\n\u0001\\"}"#)
        XCTAssertEqual(response.headers["content-type"], "application/json")
        XCTAssertTrue(String(decoding: response.bytes, as: UTF8.self).contains("\r\nConnection: close\r\n"))
    }

    func testAnsweringFollowsTheRequestsKeepAlive() {
        let ok = HTTPResponse.published(count: 1)
        let close = HTTPRequest(method: "GET", target: "/", headers: [("Host", "h"), ("Connection", "close")])
        XCTAssertTrue(ok.answering(close).closeConnection)
        let keep = HTTPRequest(method: "GET", target: "/", headers: [("Host", "h")])
        XCTAssertEqual(ok.answering(keep), ok)
        let old = HTTPRequest(method: "GET", target: "/", version: .http10)
        XCTAssertTrue(ok.answering(old).closeConnection)
        let oldKeep = HTTPRequest(
            method: "GET", target: "/", version: .http10, headers: [("Connection", "keep-alive")])
        XCTAssertEqual(ok.answering(oldKeep).headers["Connection"], "keep-alive")
        XCTAssertFalse(ok.answering(oldKeep).closeConnection)
    }

    func testDateValue() {
        // RFC 9110 §5.6.7's example, the epoch, a leap day and a day before 1970.
        XCTAssertEqual(HTTPResponse.dateValue(secondsSince1970: 784_111_777), "Sun, 06 Nov 1994 08:49:37 GMT")
        XCTAssertEqual(HTTPResponse.dateValue(secondsSince1970: 0), "Thu, 01 Jan 1970 00:00:00 GMT")
        XCTAssertEqual(HTTPResponse.dateValue(secondsSince1970: 951_782_400), "Tue, 29 Feb 2000 00:00:00 GMT")
        XCTAssertEqual(HTTPResponse.dateValue(secondsSince1970: -1), "Wed, 31 Dec 1969 23:59:59 GMT")
        XCTAssertEqual(HTTPResponse.dateValue(secondsSince1970: 4_102_444_799), "Thu, 31 Dec 2099 23:59:59 GMT")
    }
}
