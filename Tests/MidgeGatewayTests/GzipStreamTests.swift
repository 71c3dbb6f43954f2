// gzip content coding: one-shot bodies, a flushed stream decodable at every point, and Accept-Encoding.
import XCTest

@testable import MidgeGateway

final class GzipStreamTests: XCTestCase {
    func testOneShotRoundTrip() throws {
        let body = Array(String(repeating: #"{"topic":"a/b","payload":"x"}"#, count: 50).utf8)
        let compressed = try XCTUnwrap(GzipStream.compress(body))
        XCTAssertEqual(Array(compressed.prefix(2)), [0x1F, 0x8B], "a gzip member")
        XCTAssertLessThan(compressed.count, body.count / 4)
        XCTAssertEqual(GzipStream.decompress(compressed), body)
    }

    func testEveryFlushedWriteIsDecodableAtOnce() throws {
        let stream = try XCTUnwrap(GzipStream(windowBits: 12, memoryLevel: 4))
        var wire: [UInt8] = []
        var sent: [UInt8] = []
        for index in 0..<20 {
            let event = Array("id: \(index)\ndata: {\"payload\":\"\(index)\"}\n\n".utf8)
            sent += event
            stream.write(event, into: &wire)
            XCTAssertEqual(GzipStream.decompress(wire), sent, "after event \(index)")
        }
    }

    func testAcceptEncoding() {
        XCTAssertTrue(GzipStream.isAccepted(by: "gzip"))
        XCTAssertTrue(GzipStream.isAccepted(by: "deflate, gzip;q=0.5, br"))
        XCTAssertTrue(GzipStream.isAccepted(by: "*"))
        XCTAssertFalse(GzipStream.isAccepted(by: "gzip;q=0"))
        XCTAssertFalse(GzipStream.isAccepted(by: "br, deflate"))
        XCTAssertFalse(GzipStream.isAccepted(by: nil))
    }
}
