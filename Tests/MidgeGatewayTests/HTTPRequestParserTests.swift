// HTTP/1.1 request parsing (RFC 9112): framing, pipelining, chunked bodies, 100-continue, limits and every refusal.

import XCTest

@testable import MidgeGateway

final class HTTPRequestParserTests: XCTestCase {
    /// Parses `text` three ways (whole, byte by byte, chunks of 5) and checks they agree: events, then the error.
    func parse(
        _ text: String, limits: HTTPLimits = HTTPLimits(), file: StaticString = #filePath, line: UInt = #line
    ) -> (events: [HTTPRequestParser.Event], error: HTTPParseError?) {
        parse(Array(text.utf8), limits: limits, file: file, line: line)
    }

    func parse(
        _ bytes: [UInt8], limits: HTTPLimits = HTTPLimits(), file: StaticString = #filePath, line: UInt = #line
    ) -> (events: [HTTPRequestParser.Event], error: HTTPParseError?) {
        func run(chunk: Int) -> (events: [HTTPRequestParser.Event], error: HTTPParseError?) {
            var parser = HTTPRequestParser(limits: limits)
            var events: [HTTPRequestParser.Event] = []
            var position = 0
            // Each pass appends at least one byte; each inner pass returns an event or stops.
            while position < bytes.count {
                let end = min(position + chunk, bytes.count)
                parser.append(bytes[position..<end])
                position = end
                for _ in 0...bytes.count {
                    do {
                        guard let event = try parser.next() else { break }
                        events.append(event)
                    } catch {
                        return (events, error)
                    }
                }
            }
            return (events, nil)
        }
        let whole = run(chunk: max(bytes.count, 1))
        let bytewise = run(chunk: 1)
        let chunked = run(chunk: 5)
        // A 100-continue is only asked for while no body byte has arrived, so it depends on the chunking.
        let withoutContinue = { (events: [HTTPRequestParser.Event]) in events.filter { $0 != .expectsContinue } }
        XCTAssertEqual(
            withoutContinue(bytewise.events), withoutContinue(whole.events), "byte by byte", file: file, line: line)
        XCTAssertEqual(bytewise.error, whole.error, "byte by byte", file: file, line: line)
        XCTAssertEqual(withoutContinue(chunked.events), withoutContinue(whole.events), "chunks", file: file, line: line)
        XCTAssertEqual(chunked.error, whole.error, "chunks", file: file, line: line)
        return whole
    }

    func requests(_ events: [HTTPRequestParser.Event]) -> [HTTPRequest] {
        events.compactMap { if case .request(let request) = $0 { request } else { nil } }
    }

    func status(_ text: String, limits: HTTPLimits = HTTPLimits(), file: StaticString = #filePath, line: UInt = #line)
        -> Int?
    {
        parse(text, limits: limits, file: file, line: line).error?.status.code
    }

    // MARK: - Requests

    func testSimpleGet() throws {
        let result = parse("GET /metrics HTTP/1.1\r\nHost: localhost:8081\r\nAccept: */*\r\n\r\n")
        XCTAssertNil(result.error)
        let request = try XCTUnwrap(requests(result.events).first)
        XCTAssertEqual(request.method, "GET")
        XCTAssertEqual(request.target, "/metrics")
        XCTAssertEqual(request.path, "/metrics")
        XCTAssertNil(request.query)
        XCTAssertEqual(request.version, .http11)
        XCTAssertEqual(request.headers["host"], "localhost:8081")
        XCTAssertEqual(request.headers["ACCEPT"], "*/*")
        XCTAssertEqual(request.body, [])
        XCTAssertTrue(request.keepAlive)
    }

    func testPathAndQuery() throws {
        let request = try XCTUnwrap(
            requests(parse("GET /subscribe?topic=a%2Fb&x HTTP/1.1\r\nHost: h\r\n\r\n").events).first)
        XCTAssertEqual(request.path, "/subscribe")
        XCTAssertEqual(request.query, "topic=a%2Fb&x")
    }

    func testPipelinedRequestsWithBodies() {
        let text =
            "POST /publish?topic=a HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\n\r\nhello"
            + "POST /publish?topic=b HTTP/1.1\r\nHost: h\r\nContent-Length: 0\r\n\r\n"
            + "GET /metrics HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n"
        let result = parse(text)
        XCTAssertNil(result.error)
        let parsed = requests(result.events)
        XCTAssertEqual(parsed.map(\.target), ["/publish?topic=a", "/publish?topic=b", "/metrics"])
        XCTAssertEqual(parsed.map(\.body), [Array("hello".utf8), [], []])
        XCTAssertEqual(parsed.map(\.keepAlive), [true, true, false])
    }

    func testChunkedBodyWithExtensionsAndTrailers() throws {
        let text =
            "POST /publish?topic=a HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n"
            + "5;name=value\r\nhello\r\n1A\r\n, chunked world of bytes!!\r\n0\r\nX-Trailer: dropped\r\n\r\n"
            + "GET / HTTP/1.1\r\nHost: h\r\n\r\n"
        let result = parse(text)
        XCTAssertNil(result.error)
        let parsed = requests(result.events)
        XCTAssertEqual(parsed.count, 2)
        XCTAssertEqual(parsed.first.map { String(decoding: $0.body, as: UTF8.self) }, "hello, chunked world of bytes!!")
        XCTAssertNil(parsed.first?.headers["X-Trailer"])
    }

    /// curl sends `Expect: 100-continue` before bodies over 1 KiB and waits for the interim response.
    func testExpectContinue() throws {
        var parser = HTTPRequestParser()
        parser.append(
            Array("POST /publish?topic=a HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\nExpect: 100-continue\r\n\r\n".utf8)
        )
        XCTAssertEqual(try parser.next(), .expectsContinue)
        XCTAssertEqual(try parser.next(), nil)
        parser.append(Array("abc".utf8))
        guard case .request(let request)? = try parser.next() else { return XCTFail("expected the request") }
        XCTAssertEqual(request.body, Array("abc".utf8))
        XCTAssertEqual(String(decoding: HTTPResponse.continueBytes, as: UTF8.self), "HTTP/1.1 100 Continue\r\n\r\n")
        // The body came along with the head: no interim response.
        let result = parse("POST /p HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\nExpect: 100-continue\r\n\r\nabc")
        XCTAssertEqual(result.events.count, 1)
        XCTAssertEqual(status("POST /p HTTP/1.1\r\nHost: h\r\nExpect: something-else\r\n\r\n"), 417)
    }

    func testKeepAliveRules() throws {
        let cases: [(String, Bool)] = [
            ("GET / HTTP/1.1\r\nHost: h\r\n\r\n", true),
            ("GET / HTTP/1.1\r\nHost: h\r\nConnection: Close\r\n\r\n", false),
            ("GET / HTTP/1.0\r\n\r\n", false), ("GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n", true),
        ]
        for (text, keepAlive) in cases {
            XCTAssertEqual(requests(parse(text).events).first?.keepAlive, keepAlive, text)
        }
    }

    func testLenientButSafeForms() {
        // Bare LF line ends (RFC 9112 §2.2), empty lines before the request line, the absolute form (§3.2.2).
        let text = "\r\n\nGET http://localhost:8081/metrics?x=1 HTTP/1.1\nHost: h\n\n"
        XCTAssertEqual(requests(parse(text).events).first?.target, "/metrics?x=1")
        XCTAssertEqual(requests(parse("GET http://h HTTP/1.1\r\nHost: h\r\n\r\n").events).first?.target, "/")
        XCTAssertEqual(
            requests(parse("GET / HTTP/1.1\r\nHost: h\r\nX-Empty:\r\nX-Spaces:  a b \t\r\n\r\n").events)
                .first?.headers.fields.map(\.value), ["h", "", "a b"])
        XCTAssertEqual(
            requests(parse("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 2, 2\r\n\r\nok").events).first?.body,
            Array("ok".utf8), "identical Content-Length values are one (RFC 9110 §8.6)")
    }

    // MARK: - Limits

    func testRequestLineLimitIsCheckedBeforeTheLineEnds() {
        let limits = HTTPLimits(maxRequestLineBytes: 64)
        XCTAssertEqual(status("GET /" + String(repeating: "a", count: 100), limits: limits), 414)
        XCTAssertNil(
            parse("GET /" + String(repeating: "a", count: 50) + " HTTP/1.1\r\nHost: h\r\n\r\n", limits: limits).error)
        XCTAssertEqual(status("GET /" + String(repeating: "a", count: 8200) + " HTTP/1.1\r\n\r\n"), 414)
    }

    func testHeaderLimits() {
        let big = "GET / HTTP/1.1\r\nHost: h\r\nX-Big: " + String(repeating: "b", count: 33 * 1024) + "\r\n\r\n"
        XCTAssertEqual(status(big), 431)
        let many = "GET / HTTP/1.1\r\nHost: h\r\n" + (0..<100).map { "X-\($0): v\r\n" }.joined() + "\r\n"
        XCTAssertEqual(status(many), 431)
        let hundred = "GET / HTTP/1.1\r\nHost: h\r\n" + (0..<99).map { "X-\($0): v\r\n" }.joined() + "\r\n"
        XCTAssertNil(parse(hundred).error)
        let trailers =
            "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n0\r\nX-T: "
            + String(repeating: "t", count: 33 * 1024) + "\r\n\r\n"
        XCTAssertEqual(status(trailers), 431, "trailers count against the header budget")
    }

    func testBodyLimits() {
        let limits = HTTPLimits(maxBodyBytes: 10)
        XCTAssertEqual(status("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 11\r\n\r\n", limits: limits), 413)
        XCTAssertNil(parse("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 10\r\n\r\n0123456789", limits: limits).error)
        XCTAssertEqual(status("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 99999999999999999999999\r\n\r\n"), 413)
        let chunked = "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n6\r\n012345\r\n5\r\n"
        XCTAssertEqual(status(chunked, limits: limits), 413)
        let huge = "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\nFFFFFFFFFFFFFFFFFFFFFFFF\r\n"
        XCTAssertEqual(status(huge), 413, "a long chunk size cannot overflow")
    }

    /// A limit of `Int.max` ("no limit") must not let a chunk size overflow `Int` and trap: it is refused instead.
    func testChunkSizesCannotOverflowWithoutABodyLimit() {
        let unlimited = HTTPLimits(maxBodyBytes: Int.max)
        let head = "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n"
        XCTAssertEqual(status(head + "FFFFFFFFFFFFFFFFFFFFFFFF\r\n", limits: unlimited), 413)
        XCTAssertEqual(status(head + "8000000000000000\r\n", limits: unlimited), 413, "2^63 is one past Int.max")
        XCTAssertEqual(status(head + "3\r\nabc\r\n7FFFFFFFFFFFFFFF\r\n", limits: unlimited), 413, "body plus chunk")
        let body = parse(head + "3\r\nabc\r\n0\r\n\r\n", limits: unlimited)
        XCTAssertNil(body.error)
        XCTAssertEqual(requests(body.events).first?.body, Array("abc".utf8))
        // At the limit exactly, with leading zeros; one byte more is refused.
        let ten = HTTPLimits(maxBodyBytes: 10)
        XCTAssertNil(parse(head + "6\r\n012345\r\n004\r\n6789\r\n0\r\n\r\n", limits: ten).error)
        XCTAssertEqual(status(head + "6\r\n012345\r\n5\r\n", limits: ten), 413)
        XCTAssertNil(parse(head + "00A\r\n0123456789\r\n0\r\n\r\n", limits: ten).error)
        XCTAssertEqual(status(head + "B\r\n", limits: ten), 413)
    }

    // MARK: - Refusals

    func testMalformedRequests() {
        let cases: [(String, Int)] = [
            ("GET / HTTP/1.1\r\n\r\n", 400),  // no Host
            ("GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", 400),
            ("GET / HTTP/2.0\r\nHost: h\r\n\r\n", 505),
            ("GET / HTTX/1.1\r\nHost: h\r\n\r\n", 400),
            ("GET /\r\nHost: h\r\n\r\n", 400),
            ("GET  / HTTP/1.1\r\nHost: h\r\n\r\n", 400),
            ("G(T / HTTP/1.1\r\nHost: h\r\n\r\n", 400),
            ("GET relative HTTP/1.1\r\nHost: h\r\n\r\n", 400),
            ("GET /\u{7F} HTTP/1.1\r\nHost: h\r\n\r\n", 400),
            ("GET / HTTP/1.1\r\nHost: h\r\n folded\r\n\r\n", 400),
            ("GET / HTTP/1.1\r\nHost : h\r\n\r\n", 400),
            ("GET / HTTP/1.1\r\nHost h\r\n\r\n", 400),
            ("GET / HTTP/1.1\r\nHost: h\rX\r\n\r\n", 400),
            ("GET / HTTP/1.1\r\nHost: h\u{01}\r\n\r\n", 400),
            ("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n", 400),
            ("POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: gzip, chunked\r\n\r\n", 501),
            ("POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked, gzip\r\n\r\n", 400),
            ("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: -1\r\n\r\n", 400),
            ("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 1, 2\r\n\r\n", 400),
            ("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n", 400),
            ("POST / HTTP/1.1\r\nHost: h\r\nContent-Length:\r\n\r\n", 400),
            ("POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\nxyz\r\n", 400),
            ("POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nabc\r\n", 400),
        ]
        for (text, code) in cases {
            XCTAssertEqual(status(text), code, text.debugDescription)
        }
    }

    func testAnErrorSticksAndClosesTheConnection() throws {
        var parser = HTTPRequestParser()
        parser.append(Array("BAD\r\nGET / HTTP/1.1\r\nHost: h\r\n\r\n".utf8))
        XCTAssertThrowsError(try parser.next())
        XCTAssertThrowsError(try parser.next(), "the position in the stream is lost: no second request")
        let error = try XCTUnwrap(parse("BAD\r\n").error)
        XCTAssertEqual(
            String(decoding: error.response.bytes, as: UTF8.self),
            "HTTP/1.1 400 Bad Request\r\nContent-Type: application/json\r\nContent-Length: 34\r\n"
                + "Connection: close\r\n\r\n{\"error\":\"malformed request line\"}")
    }
}
