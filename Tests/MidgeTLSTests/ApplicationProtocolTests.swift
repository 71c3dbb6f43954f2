// ALPN (RFC 7301) on a server context: the server's preference wins, and a client that offers nothing the server
// has, or nothing at all, still connects, as HTTP/1.1 clients of an HTTP listener must.
import COpenSSL
import XCTest

@testable import MidgeTLS

final class ApplicationProtocolTests: XCTestCase {
    private func context(_ protocols: [String]) throws -> TLSContext {
        var configuration = Fixture.configuration()
        configuration.applicationProtocols = protocols
        return try TLSContext(configuration: configuration)
    }

    func testServerPreferenceWins() throws {
        let pair = try Pair(context(["h2", "http/1.1"]), TestClient(applicationProtocols: ["http/1.1", "h2"]))
        pair.handshake()
        XCTAssertEqual(pair.server.selectedApplicationProtocol, "h2")
        XCTAssertEqual(pair.client.selectedApplicationProtocol, "h2")
    }

    func testHTTP11ClientGetsHTTP11() throws {
        let pair = try Pair(context(["h2", "http/1.1"]), TestClient(applicationProtocols: ["http/1.1"]))
        pair.handshake()
        XCTAssertEqual(pair.server.selectedApplicationProtocol, "http/1.1")
    }

    func testClientWithoutALPNOrWithoutOverlapStillConnects() throws {
        let silent = try Pair(context(["h2", "http/1.1"]), TestClient())
        silent.handshake()
        XCTAssertNil(silent.server.selectedApplicationProtocol)
        let other = try Pair(context(["h2", "http/1.1"]), TestClient(applicationProtocols: ["mqtt"]))
        other.handshake()
        XCTAssertNil(other.server.selectedApplicationProtocol)
    }

    func testNoListMeansNoALPN() throws {
        let pair = try Pair(context([]), TestClient(applicationProtocols: ["h2"]))
        pair.handshake()
        XCTAssertNil(pair.server.selectedApplicationProtocol)
    }

    func testOversizedListIsRefused() {
        XCTAssertThrowsError(try context([String(repeating: "x", count: 256)]))
    }
}
