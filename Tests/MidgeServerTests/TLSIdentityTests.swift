// Usernames a TLS listener takes from the client rather than from CONNECT: the certificate's whole subject
// (use_subject_as_username) in mosquitto's RFC 2253 form, and the PSK identity (psk_hint with
// use_identity_as_username), whose psk_file SIGHUP re-reads.
import Foundation
import MQTTTestSupport
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
        let settings =
            TLSFixture.serverSettings(requireCertificate: true, identity: true)
            + "use_subject_as_username true\n"
        let running = try start(settings)
        defer { running.stop() }
        XCTAssertEqual(try loggedUsername(running, certificate: "client", clientID: "both"), "device-42")
    }

    // MARK: TLS-PSK

    private func pskClient(_ running: RunningServer, _ identity: String, _ key: [UInt8]) throws -> ChannelClient {
        ChannelClient(
            try TLSChannel(
                port: running.server.listeners[1].port, psk: PSKClientCredential(identity: identity, key: key)))
    }

    func testPSKIdentityIsTheUsernameAndSIGHUPReReadsTheFile() throws {
        let directory = NSTemporaryDirectory() + "midge-psk-" + UUID().uuidString
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let file = directory + "/psk"
        try "sensor-1:00112233\n".write(toFile: file, atomically: true, encoding: .utf8)
        let running = try start("psk_hint midge\npsk_file \(file)\nuse_identity_as_username true\n")
        defer { running.stop() }

        let sensor = try pskClient(running, "sensor-1", [0x00, 0x11, 0x22, 0x33])
        XCTAssertEqual(try sensor.connect("psk-user", username: "ignored", password: "wrong").returnCode, .accepted)
        let line = running.log.waitForLine { $0.contains("as psk-user ") }
        XCTAssertTrue(line?.contains("u'sensor-1'") ?? false, line ?? "no connect line")
        XCTAssertNil(try? pskClient(running, "sensor-1", [0x00, 0x11, 0x22, 0x34]), "a wrong key got through")
        XCTAssertNotNil(running.log.waitForLine { $0.contains("is known but its key does not match") })

        // A broken file keeps the previous keys; a good one adds sensor-2 and drops sensor-1 for new handshakes.
        try "sensor-2 00aa\n".write(toFile: file, atomically: true, encoding: .utf8)
        running.server.hangup()
        XCTAssertNotNil(running.log.waitForLine { $0.contains("Unable to reload") && $0.contains("line 1") })
        let kept = try pskClient(running, "sensor-1", [0x00, 0x11, 0x22, 0x33])
        XCTAssertEqual(try kept.connect("still").returnCode, .accepted)
        try "sensor-2:00aa\n".write(toFile: file, atomically: true, encoding: .utf8)
        running.server.hangup()
        XCTAssertNotNil(running.log.waitForLine { $0.contains("Reloaded the PSK file") })
        XCTAssertEqual(try pskClient(running, "sensor-2", [0x00, 0xAA]).connect("new").returnCode, .accepted)
        XCTAssertNil(try? pskClient(running, "sensor-1", [0x00, 0x11, 0x22, 0x33]), "a removed identity got in")
        try sensor.ping()
    }
}
