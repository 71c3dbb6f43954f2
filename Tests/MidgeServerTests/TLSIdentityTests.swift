// Usernames a TLS listener takes from the client rather than from CONNECT: the certificate's whole subject
// (use_subject_as_username) in mosquitto's RFC 2253 form.
import Foundation
import XCTest

@testable import MidgeServer

final class TLSIdentityTests: XCTestCase {
    private func start(_ settings: String) throws -> RunningServer {
        try RunningServer(threads: 1, config: "listener 0 127.0.0.1\n" + settings)
    }

    /// Connects with `certificate` to the second listener and returns the user name the broker logged for it.
    private func loggedUsername(_ running: RunningServer, certificate: String, clientID: String) throws -> String? {
        let client = ChannelClient(
            try TLSChannel(
                port: running.server.listeners[1].port, certificate: TLSFixture.path(certificate + ".crt"),
                key: TLSFixture.path(certificate + ".key")))
        XCTAssertEqual(try client.connect(clientID, username: "ignored", password: "wrong").returnCode, .accepted)
        guard let line = running.log.waitForLine(where: { $0.contains("as \(clientID) ") }),
            let start = line.range(of: "u'"), let end = line.range(of: "')", range: start.upperBound..<line.endIndex)
        else { return nil }
        return String(line[start.upperBound..<end.lowerBound])
    }

    func testSubjectAsUsernameIsTheRFC2253Subject() throws {
        let settings = TLSFixture.serverSettings(requireCertificate: true) + "use_subject_as_username true\n"
        let running = try start(settings)
        defer { running.stop() }
        XCTAssertEqual(
            try loggedUsername(running, certificate: "client", clientID: "subject-user"),
            "CN=device-42,OU=Devices,O=Midge Test")
        // RFC 2253 escapes the comma inside the CN, so the name cannot pass for a different subject.
        XCTAssertEqual(
            try loggedUsername(running, certificate: "client-escaped", clientID: "escaped-user"),
            "CN=Doe\\, Jane,OU=Devices,O=Midge Test")
    }

    /// Both keys: the CN wins, as in mosquitto.
    func testIdentityAsUsernameWinsOverSubject() throws {
        let settings = TLSFixture.serverSettings(requireCertificate: true, identity: true)
            + "use_subject_as_username true\n"
        let running = try start(settings)
        defer { running.stop() }
        XCTAssertEqual(try loggedUsername(running, certificate: "client", clientID: "both"), "device-42")
    }
}
