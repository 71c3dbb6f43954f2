// crlfile through the running server: a revoked certificate is refused at the handshake with a log line saying so,
// and SIGHUP (Server.hangup) re-reads the list, keeping the previous one when the new file is broken.
import Foundation
import MQTTTestSupport
import XCTest

@testable import MidgeServer

final class TLSRevocationTests: XCTestCase {
    private var scratch: String!

    override func setUpWithError() throws {
        scratch = NSTemporaryDirectory() + "midge-crl-" + UUID().uuidString
        try FileManager.default.createDirectory(atPath: scratch, withIntermediateDirectories: true)
    }

    override func tearDown() { try? FileManager.default.removeItem(atPath: scratch) }

    private func place(_ fixture: String, at path: String) throws {
        try? FileManager.default.removeItem(atPath: path)
        try FileManager.default.copyItem(atPath: TLSFixture.path(fixture), toPath: path)
    }

    private func client(_ running: RunningServer, _ name: String) throws -> ChannelClient {
        ChannelClient(
            try TLSChannel(
                port: running.server.listeners[1].port, certificate: TLSFixture.path(name + ".crt"),
                key: TLSFixture.path(name + ".key")))
    }

    /// The handshake of `name` failed: TLSChannel's init throws, or (TLS 1.3, where the client finishes first) the
    /// CONNECT gets no CONNACK.
    private func isRefused(_ running: RunningServer, _ name: String, clientID: String) -> Bool {
        guard let channel = try? client(running, name) else { return true }
        return (try? channel.connect(clientID)) == nil
    }

    func testRevocationAndItsReload() throws {
        let list = scratch + "/ca.crl"
        try place("ca-empty.crl", at: list)
        let settings = TLSFixture.serverSettings(requireCertificate: true) + "crlfile \(list)\n"
        let running = try RunningServer(threads: 1, config: "listener 0 127.0.0.1\n" + settings)
        defer { running.stop() }
        let before = try client(running, "revoked-client")
        XCTAssertEqual(try before.connect("before").returnCode, .accepted)

        try place("ca.crl", at: list)
        running.server.hangup()
        XCTAssertNotNil(running.log.waitForLine { $0.contains("Reloaded the TLS certificate") })
        XCTAssertTrue(isRefused(running, "revoked-client", clientID: "revoked"))
        XCTAssertNotNil(running.log.waitForLine { $0.contains("client certificate rejected: certificate revoked") })
        XCTAssertEqual(try client(running, "client").connect("valid").returnCode, .accepted)

        try Data("-----BEGIN X509 CRL-----\ncut off\n".utf8).write(to: URL(fileURLWithPath: list))
        running.server.hangup()
        let refusal = running.log.waitForLine { $0.contains("Unable to reload the TLS files") }
        XCTAssertTrue(refusal?.contains("crlfile \"\(list)\" rejected") ?? false, refusal ?? "no log line")
        XCTAssertTrue(isRefused(running, "revoked-client", clientID: "still-revoked"))
        // Revocation applies to handshakes: the connection made before it stays, as in mosquitto.
        try before.ping()
    }
}
