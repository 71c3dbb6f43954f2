// Real tools against the fixtures and the module: mosquitto_pub/mosquitto_sub (libmosquitto over OpenSSL) talk to
// a TLSConnection over loopback TCP, and to mosquitto's own broker using the same certificates, as CI will do with
// the wired broker. Skipped when mosquitto's clients are not installed.
import Foundation
import Glibc
import MQTTTestSupport
import XCTest

@testable import MidgeTLS

final class RealClientTests: XCTestCase {
    private var scratch: String!

    override func setUpWithError() throws {
        scratch = NSTemporaryDirectory() + "midge-tls-" + UUID().uuidString
        try FileManager.default.createDirectory(atPath: scratch, withIntermediateDirectories: true)
    }

    override func tearDown() { try? FileManager.default.removeItem(atPath: scratch) }

    private func tool(_ name: String) throws -> String {
        guard let path = findExecutable(name) else {
            throw XCTSkip("\(name) is not installed (Debian: apt-get install mosquitto mosquitto-clients)")
        }
        return path
    }

    private func finish(_ process: Process) -> (status: Int32, errors: String) {
        process.waitUntilExit()
        let errors = (try? String(contentsOfFile: stdoutPath + ".err", encoding: .utf8)) ?? ""
        return (process.terminationStatus, errors)
    }

    private var stdoutPath: String { scratch + "/client.out" }

    /// mosquitto_pub --cafile against the module: verifies the server certificate for 127.0.0.1 (IP SAN),
    /// completes TLS 1.3, publishes at QoS 1, gets its PUBACK, disconnects with close_notify.
    func testMosquittoPubWithCAFile() throws {
        let mosquittoPub = try tool("mosquitto_pub")
        let server = try LoopbackTLSServer()
        let client = try startBounded(
            mosquittoPub,
            [
                "-h", "127.0.0.1", "-p", "\(server.port)", "--cafile", Fixture.caCertificate, "-t", "midge/tls", "-m",
                "hello over tls", "-q", "1", "-i", "tls-pub",
            ],
            stdout: stdoutPath)
        let broker = PublisherSide()
        let outcome = try server.serveOne(context: Fixture.context(), handler: broker.handle)
        let (status, errors) = finish(client)
        XCTAssertEqual(status, 0, errors)
        XCTAssertNil(outcome.error)
        XCTAssertTrue(outcome.handshakeComplete)
        XCTAssertEqual(outcome.protocolVersion, "TLSv1.3")
        XCTAssertEqual(broker.received.map(\.topic), ["midge/tls"])
        XCTAssertEqual(broker.received.first?.payload, Array("hello over tls".utf8))
        XCTAssertTrue(broker.disconnected)
        XCTAssertTrue(outcome.sawCloseNotify)
    }

    /// mosquitto_pub --cert/--key against require_certificate: the CN is the identity; a 1 MiB payload crosses
    /// many reads and records.
    func testMosquittoPubWithClientCertificateAndLargePayload() throws {
        let mosquittoPub = try tool("mosquitto_pub")
        let payload = patternBytes(1 << 20, seed: 3)
        let payloadFile = scratch + "/payload"
        XCTAssertTrue(FileManager.default.createFile(atPath: payloadFile, contents: Data(payload)))
        let server = try LoopbackTLSServer()
        let client = try startBounded(
            mosquittoPub,
            [
                "-h", "127.0.0.1", "-p", "\(server.port)", "--cafile", Fixture.caCertificate,
                "--cert", Fixture.path("client.crt"), "--key", Fixture.path("client.key"),
                "-t", "midge/big", "-f", payloadFile, "-q", "1",
            ],
            stdout: stdoutPath)
        let broker = PublisherSide()
        let outcome = try server.serveOne(context: Fixture.context(requireCertificate: true), handler: broker.handle)
        let (status, errors) = finish(client)
        XCTAssertEqual(status, 0, errors)
        XCTAssertNil(outcome.error)
        XCTAssertEqual(outcome.commonName, "device-42")
        XCTAssertEqual(broker.received.count, 1)
        XCTAssertTrue(broker.received.first?.payload == payload, "the 1 MiB payload arrived changed")
        XCTAssertTrue(broker.disconnected)
    }

    /// require_certificate and a client without one: the module says why, mosquitto_pub fails.
    func testMosquittoPubWithoutCertificateIsRefused() throws {
        let mosquittoPub = try tool("mosquitto_pub")
        let server = try LoopbackTLSServer()
        let client = try startBounded(
            mosquittoPub,
            ["-h", "127.0.0.1", "-p", "\(server.port)", "--cafile", Fixture.caCertificate, "-t", "t", "-m", "x"],
            stdout: stdoutPath)
        let outcome = try server.serveOne(context: Fixture.context(requireCertificate: true)) { _, _ in [] }
        let (status, _) = finish(client)
        XCTAssertNotEqual(status, 0)
        XCTAssertEqual(outcome.error, .clientCertificateRequired)
        XCTAssertFalse(outcome.handshakeComplete)
    }

    /// mosquitto_sub receives 1 MiB from the module: the write path takes EAGAIN and resumes on POLLOUT.
    func testMosquittoSubReceivesLargeMessage() throws {
        let mosquittoSub = try tool("mosquitto_sub")
        let payload = patternBytes(1 << 20, seed: 5)
        let server = try LoopbackTLSServer()
        let client = try startBounded(
            mosquittoSub,
            [
                "-h", "localhost", "-p", "\(server.port)", "--cafile", Fixture.caCertificate, "-t", "midge/down",
                "-C", "1", "-N",
            ],
            stdout: stdoutPath)
        var subscribed = false
        let outcome = try server.serveOne(context: Fixture.context(), sendBufferSize: 4096) { _, buffer in
            var reply: [UInt8] = []
            while let packet = MiniMQTT.next(&buffer) {
                switch packet.type {
                case 1: reply += [0x20, 0x02, 0x00, 0x00]
                case 8:  // SUBSCRIBE → SUBACK granting QoS 0, then the message
                    subscribed = true
                    reply += [0x90, 0x03, packet.body[0], packet.body[1], 0x00]
                    reply += MiniMQTT.publish(topic: "midge/down", payload: payload)
                case 14: break
                default: XCTFail("unexpected packet type \(packet.type)")
                }
            }
            return reply
        }
        let (status, errors) = finish(client)
        XCTAssertEqual(status, 0, errors)
        XCTAssertNil(outcome.error)
        XCTAssertTrue(subscribed)
        XCTAssertGreaterThan(outcome.shortWrites, 0, "the 4 KiB send buffer never pushed back")
        let printed = FileManager.default.contents(atPath: stdoutPath).map { [UInt8]($0) } ?? []
        XCTAssertEqual(printed.count, payload.count)
        XCTAssertTrue(printed == payload, "mosquitto_sub printed different bytes")
    }

    /// mosquitto_pub --psk/--psk-identity against a PSK context: TLS 1.3, the server learns the identity, a wrong
    /// key fails. (mosquitto_pub 2.0 applies --tls-version only with --cafile/--capath, so with --psk alone it always
    /// offers TLS 1.3; TLS 1.2 PSK is checked with OpenSSL's own client in PreSharedKeyTests and the interop script.)
    func testMosquittoPubWithPreSharedKey() throws {
        let mosquittoPub = try tool("mosquitto_pub")
        let keys = scratch + "/psk"
        try "dev1:0123456789abcdef\n".write(toFile: keys, atomically: true, encoding: .utf8)
        let context = try TLSContext(
            configuration: TLSConfiguration(
                certificateFile: "", privateKeyFile: "", preSharedKeys: PreSharedKeySettings(hint: "midge", file: keys))
        )
        for key in ["0123456789abcdef", "0123456789abcdee"] {
            let server = try LoopbackTLSServer()
            let arguments = [
                "-h", "127.0.0.1", "-p", "\(server.port)", "--psk", key, "--psk-identity", "dev1", "-t", "midge/psk",
                "-m", "by psk", "-q", "1",
            ]
            let client = try startBounded(mosquittoPub, arguments, stdout: stdoutPath)
            let broker = PublisherSide()
            let outcome = try server.serveOne(context: context, handler: broker.handle)
            let (status, errors) = finish(client)
            guard key.hasSuffix("f") else {
                XCTAssertNotEqual(status, 0, "a wrong key got through")
                XCTAssertFalse(outcome.handshakeComplete)
                continue
            }
            XCTAssertEqual(status, 0, errors)
            XCTAssertNil(outcome.error)
            XCTAssertEqual(outcome.protocolVersion, "TLSv1.3")
            XCTAssertEqual(outcome.pskIdentity, "dev1")
            XCTAssertEqual(broker.received.first?.payload, Array("by psk".utf8))
        }
    }

    // MARK: - The fixtures with mosquitto's own broker

    /// The committed certificates work with mosquitto 2.0 on 127.0.0.1 and ::1 with require_certificate and
    /// use_identity_as_username, the way CI will use them against midge.
    func testFixturesWorkWithMosquittoBroker() throws {
        let mosquitto = try tool("mosquitto")
        let mosquittoPub = try tool("mosquitto_pub")
        let mosquittoSub = try tool("mosquitto_sub")
        // Copies readable by the unprivileged user mosquitto switches to when started as root.
        XCTAssertEqual(chmod(scratch, 0o755), 0)
        for name in ["ca.crt", "server.crt", "server.key", "client.crt", "client.key"] {
            try FileManager.default.copyItem(atPath: Fixture.path(name), toPath: scratch + "/" + name)
            XCTAssertEqual(chmod(scratch + "/" + name, 0o644), 0)
        }
        let port = try freeLoopbackPort()
        var config = ""
        for address in ["127.0.0.1", "::1"] {
            config += """
                listener \(port) \(address)
                cafile \(scratch!)/ca.crt
                certfile \(scratch!)/server.crt
                keyfile \(scratch!)/server.key
                require_certificate true
                use_identity_as_username true

                """
        }
        let configPath = scratch + "/mosquitto.conf"
        try (config + "allow_anonymous true\n").write(toFile: configPath, atomically: true, encoding: .utf8)
        let broker = Process()
        broker.executableURL = URL(fileURLWithPath: mosquitto)
        broker.arguments = ["-c", configPath]
        broker.standardOutput = FileHandle(forWritingAtPath: "/dev/null")
        broker.standardError = FileHandle(forWritingAtPath: "/dev/null")
        try broker.run()
        defer {
            if broker.isRunning { broker.terminate() }
            broker.waitUntilExit()
        }
        try waitUntilListening(port: port, process: broker)

        let credentials = [
            "--cafile", scratch + "/ca.crt", "--cert", scratch + "/client.crt", "--key",
            scratch + "/client.key", "-p", "\(port)",
        ]
        for (index, host) in ["127.0.0.1", "::1", "localhost"].enumerated() {
            // Retained, so the subscriber that connects afterwards gets it without a race.
            let pub = try startBounded(
                mosquittoPub, ["-h", host, "-t", "midge/fixture", "-r", "-m", "via \(host)"] + credentials,
                stdout: stdoutPath)
            let published = finish(pub)
            XCTAssertEqual(published.status, 0, "mosquitto_pub -h \(host): \(published.errors)")
            let sub = try startBounded(
                mosquittoSub, ["-h", host, "-t", "midge/fixture", "-C", "1"] + credentials,
                stdout: stdoutPath + "\(index)")
            sub.waitUntilExit()
            XCTAssertEqual(sub.terminationStatus, 0, "mosquitto_sub -h \(host)")
            let printed = (try? String(contentsOfFile: stdoutPath + "\(index)", encoding: .utf8)) ?? ""
            XCTAssertEqual(printed, "via \(host)\n")
        }
        let refused = try startBounded(
            mosquittoPub,
            ["-h", "127.0.0.1", "-p", "\(port)", "--cafile", scratch + "/ca.crt", "-t", "t", "-m", "no certificate"],
            stdout: stdoutPath)
        XCTAssertNotEqual(finish(refused).status, 0)
    }

    private func freeLoopbackPort() throws -> UInt16 {
        let probe = try LoopbackTLSServer()
        return probe.port
    }
}

/// The broker side of a publisher: CONNACK, PUBACK for QoS 1, and every PUBLISH collected.
final class PublisherSide {
    var received: [(topic: String, payload: [UInt8])] = []
    var disconnected = false

    func handle(_ connection: TLSConnection, _ buffer: inout [UInt8]) -> [UInt8] {
        var reply: [UInt8] = []
        while let packet = MiniMQTT.next(&buffer) {
            switch packet.type {
            case 1: reply += [0x20, 0x02, 0x00, 0x00]  // CONNECT → CONNACK accepted
            case 3:
                let publish = MiniMQTT.parsePublish(packet)
                received.append((publish.topic, publish.payload))
                if let id = publish.packetID { reply += [0x40, 0x02] + id }
            case 14: disconnected = true
            default: XCTFail("unexpected packet type \(packet.type)")
            }
        }
        return reply
    }
}
