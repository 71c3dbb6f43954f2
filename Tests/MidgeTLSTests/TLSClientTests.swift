// The client side (a bridge's outbound connection): a client TLSConnection against a server TLSConnection on memory
// BIOs, and against `openssl s_server` over loopback TCP. Verification of the server's chain and name, SNI, client
// certificates, ALPN, the version floor and the configuration errors.
import COpenSSL
import Foundation
import Glibc
import XCTest

@testable import MidgeTLS

final class TLSClientTests: XCTestCase {
    private func clientContext(
        caFile: String? = Fixture.caCertificate, certificate: String? = nil, key: String? = nil,
        insecure: Bool = false, minimumVersion: TLSVersion = .tlsv12, alpn: String? = nil
    ) throws -> TLSClientContext {
        try TLSClientContext(
            configuration: TLSClientConfiguration(
                caFile: caFile, certificateFile: certificate, privateKeyFile: key, insecure: insecure,
                minimumVersion: minimumVersion, applicationProtocol: alpn))
    }

    private func connect(
        _ client: TLSClientContext, serverName: String = "localhost", server: TLSContext? = nil
    ) throws -> ConnectionPair {
        ConnectionPair(
            client: try TLSConnection(client: client, serverName: serverName),
            server: try TLSConnection(context: server ?? Fixture.context()))
    }

    /// A listener without cafile, so its certificate goes out alone (with a CA file OpenSSL would send the CA
    /// too, and an unknown CA then reads "self-signed certificate in certificate chain").
    private func serverWithoutCA() throws -> TLSContext {
        try TLSContext(
            configuration: TLSConfiguration(
                certificateFile: Fixture.serverCertificate, privateKeyFile: Fixture.serverKey))
    }

    // MARK: - Handshake and data

    func testHandshakeStartsOnRequestAndCarriesPlaintextBothWays() throws {
        let pair = try connect(clientContext())
        XCTAssertTrue(pair.client.isClient)
        XCTAssertNil(pair.client.context)
        XCTAssertFalse(pair.server.isClient)
        XCTAssertNotNil(pair.server.context)
        XCTAssertEqual(pair.client.pendingCiphertextCount, 0, "a client must not speak before it is asked to")
        try pair.client.startHandshake()
        let hello = pair.client.takeCiphertext()
        XCTAssertEqual(hello.first, 0x16, "the first record is not a handshake record")
        try pair.server.feed(hello)

        pair.shuttle()
        pair.assertNoErrors()
        XCTAssertTrue(pair.client.isHandshakeComplete)
        XCTAssertTrue(pair.server.isHandshakeComplete)
        XCTAssertEqual(pair.client.protocolVersion, "TLSv1.3")
        XCTAssertEqual(pair.client.peerCertificateSubjectCommonName, "localhost")
        XCTAssertEqual(pair.server.serverNameIndication, "localhost")
        XCTAssertNil(pair.client.selectedApplicationProtocol)

        let up = patternBytes(100_000, seed: 7)
        let down = patternBytes(70_000, seed: 8)
        try pair.client.writePlaintext(up)
        try pair.server.writePlaintext(down)
        pair.shuttle()
        pair.assertNoErrors()
        XCTAssertTrue(pair.serverReceived == up, "the server read different bytes")
        XCTAssertTrue(pair.clientReceived == down, "the client read different bytes")

        pair.client.close()
        pair.shuttle()
        XCTAssertTrue(pair.serverSawClose)
        XCTAssertThrowsError(try pair.client.writePlaintext([1])) { XCTAssertEqual($0 as? TLSError, .closed) }
    }

    /// What a bridge does on connect: write CONNECT at once, then flush. The write starts the handshake and the
    /// bytes go out encrypted when it completes.
    func testWriteBeforeHandshakeStartsItAndIsDeliveredAfter() throws {
        let pair = try connect(clientContext())
        let connect: [UInt8] = [0x10, 0x0c, 0x00, 0x04] + Array("MQTT".utf8) + [0x04, 0x02, 0x00, 0x3c, 0x00, 0x00]
        try pair.client.writePlaintext(connect)
        XCTAssertGreaterThan(pair.client.pendingCiphertextCount, 0, "writing did not produce the ClientHello")
        pair.shuttle()
        pair.assertNoErrors()
        XCTAssertEqual(pair.serverReceived, connect)
    }

    func testStartHandshakeIsHarmlessOnAServerAndAfterCompletion() throws {
        let pair = try connect(clientContext())
        try pair.server.startHandshake()
        XCTAssertEqual(pair.server.pendingCiphertextCount, 0)
        pair.shuttle()
        pair.assertNoErrors()
        try pair.client.startHandshake()
        XCTAssertEqual(pair.client.pendingCiphertextCount, 0)
    }

    // MARK: - Verifying the server

    func testUnknownCAFailsWithTheReason() throws {
        let pair = try connect(clientContext(caFile: Fixture.otherCACertificate), server: serverWithoutCA())
        pair.shuttle()
        XCTAssertEqual(
            pair.clientError,
            .handshakeFailed(reason: "certificate verify failed: unable to get local issuer certificate"))
        XCTAssertFalse(pair.client.isHandshakeComplete)
        XCTAssertNotNil(pair.serverError, "the server was not told (alert unknown ca)")
        // A server that sends its CA along: OpenSSL names the other reason.
        let withChain = try connect(clientContext(caFile: Fixture.otherCACertificate))
        withChain.shuttle()
        XCTAssertEqual(
            withChain.clientError,
            .handshakeFailed(reason: "certificate verify failed: self-signed certificate in certificate chain"))
        // The failure sticks.
        XCTAssertThrowsError(try pair.client.startHandshake()) { XCTAssertEqual($0 as? TLSError, pair.clientError) }
    }

    func testHostNameMismatchFailsUnlessInsecure() throws {
        let strict = try connect(clientContext(), serverName: "broker.example.com")
        strict.shuttle()
        XCTAssertEqual(strict.clientError, .handshakeFailed(reason: "certificate verify failed: hostname mismatch"))
        XCTAssertEqual(strict.server.serverNameIndication, "broker.example.com")

        let insecure = try connect(clientContext(insecure: true), serverName: "broker.example.com")
        insecure.shuttle()
        insecure.assertNoErrors()
        XCTAssertTrue(insecure.client.isHandshakeComplete)
        XCTAssertEqual(insecure.server.serverNameIndication, "broker.example.com", "insecure still sends SNI")

        // insecure does not switch off the chain check.
        let untrusted = try connect(
            clientContext(caFile: Fixture.otherCACertificate, insecure: true), serverName: "broker.example.com",
            server: serverWithoutCA())
        untrusted.shuttle()
        XCTAssertEqual(
            untrusted.clientError,
            .handshakeFailed(reason: "certificate verify failed: unable to get local issuer certificate"))
    }

    /// The fixture's server certificate holds IP:127.0.0.1 and IP:::1. A literal is checked against those, not
    /// against DNS names, and is never sent as SNI.
    func testIPLiteralIsCheckedAgainstIPAddressesAndNotSentAsSNI() throws {
        for address in ["127.0.0.1", "::1"] {
            let pair = try connect(clientContext(), serverName: address)
            pair.shuttle()
            pair.assertNoErrors()
            XCTAssertTrue(pair.client.isHandshakeComplete, address)
            XCTAssertNil(pair.server.serverNameIndication, "\(address) was sent as SNI")
        }
        for address in ["127.0.0.2", "::2"] {
            let pair = try connect(clientContext(), serverName: address)
            pair.shuttle()
            XCTAssertEqual(
                pair.clientError, .handshakeFailed(reason: "certificate verify failed: IP address mismatch"), address)
        }
        // A DNS name the certificate lacks, even if it resolved to 127.0.0.1, does not match the IP SAN.
        let named = try connect(clientContext(), serverName: "loopback.example")
        named.shuttle()
        XCTAssertEqual(named.clientError, .handshakeFailed(reason: "certificate verify failed: hostname mismatch"))
    }

    /// bridge_capath: a directory of hashed CA certificates, read at verification.
    func testCAPathVerifiesTheServer() throws {
        guard let openssl = findExecutable("openssl") else { throw XCTSkip("the openssl CLI is not installed") }
        let directory = NSTemporaryDirectory() + "midge-capath-" + UUID().uuidString
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        try FileManager.default.copyItem(atPath: Fixture.caCertificate, toPath: directory + "/ca.pem")
        let rehash = try startBounded(openssl, ["rehash", directory], stdout: directory + "/rehash.out")
        rehash.waitUntilExit()
        XCTAssertEqual(rehash.terminationStatus, 0)

        let context = try TLSClientContext(configuration: TLSClientConfiguration(caPath: directory))
        let pair = try connect(context)
        pair.shuttle()
        pair.assertNoErrors()
        XCTAssertTrue(pair.client.isHandshakeComplete)
    }

    // MARK: - Client certificates

    func testClientCertificateIsPresentedAndRequired() throws {
        let server = try Fixture.context(requireCertificate: true)
        let withCertificate = try connect(
            clientContext(certificate: Fixture.path("client.crt"), key: Fixture.path("client.key")), server: server)
        withCertificate.shuttle()
        withCertificate.assertNoErrors()
        XCTAssertEqual(withCertificate.server.peerCertificateSubjectCommonName, "device-42")
        try withCertificate.client.writePlaintext([0xc0, 0x00])
        withCertificate.shuttle()
        XCTAssertEqual(withCertificate.serverReceived, [0xc0, 0x00])

        // TLS 1.3: the client's handshake ends before the server has looked at its certificate, so the refusal
        // arrives as an alert on the first read.
        let without = try connect(clientContext(), server: server)
        without.shuttle()
        XCTAssertEqual(without.serverError, .clientCertificateRequired)
        let error = try XCTUnwrap(without.clientError)
        XCTAssertTrue(error.description.contains("certificate required"), error.description)

        let foreign = try connect(
            clientContext(certificate: Fixture.path("other-client.crt"), key: Fixture.path("other-client.key")),
            server: server)
        foreign.shuttle()
        XCTAssertEqual(
            foreign.serverError, .clientCertificateRejected(reason: "unable to get local issuer certificate"))
        XCTAssertNotNil(foreign.clientError)
    }

    // MARK: - ALPN and versions

    func testALPNProtocolIsNegotiatedWhenTheServerOffersIt() throws {
        var configuration = Fixture.configuration()
        configuration.applicationProtocols = ["x-amzn-mqtt-ca", "mqtt"]
        let server = try TLSContext(configuration: configuration)
        let pair = try connect(clientContext(alpn: "mqtt"), server: server)
        pair.shuttle()
        pair.assertNoErrors()
        XCTAssertEqual(pair.client.selectedApplicationProtocol, "mqtt")
        XCTAssertEqual(pair.server.selectedApplicationProtocol, "mqtt")

        // A server without the protocol selects none; as in mosquitto the bridge goes on without it.
        let other = try connect(clientContext(alpn: "mqtt"), server: Fixture.context())
        other.shuttle()
        other.assertNoErrors()
        XCTAssertTrue(other.client.isHandshakeComplete)
        XCTAssertNil(other.client.selectedApplicationProtocol)
    }

    func testMinimumVersionTheServerCannotMeetFails() throws {
        let server = try Fixture.context()
        // The test's own server stops at TLS 1.2 (a context is never changed after it is built in the broker).
        XCTAssertEqual(midge_SSL_CTX_set_max_proto_version(server.pointer, TLS1_2_VERSION), 1)

        let floor12 = try connect(clientContext(minimumVersion: .tlsv12), server: server)
        floor12.shuttle()
        floor12.assertNoErrors()
        XCTAssertEqual(floor12.client.protocolVersion, "TLSv1.2")

        let floor13 = try connect(clientContext(minimumVersion: .tlsv13), server: server)
        floor13.shuttle()
        guard case .handshakeFailed(let reason) = floor13.clientError else {
            return XCTFail("expected a handshake failure, got \(String(describing: floor13.clientError))")
        }
        XCTAssertTrue(reason.contains("protocol version"), reason)
        XCTAssertFalse(floor13.client.isHandshakeComplete)
    }

    // MARK: - Configuration errors

    func testConfigurationErrors() throws {
        func error(_ configuration: TLSClientConfiguration) -> TLSError? {
            do {
                _ = try TLSClientContext(configuration: configuration)
                return nil
            } catch {
                return error
            }
        }
        let ca = Fixture.caCertificate
        XCTAssertEqual(
            error(TLSClientConfiguration(caFile: ca, certificateFile: Fixture.path("client.crt"))),
            .invalidConfiguration("bridge_certfile needs bridge_keyfile"))
        XCTAssertEqual(
            error(TLSClientConfiguration(caFile: ca, privateKeyFile: Fixture.path("client.key"))),
            .invalidConfiguration("bridge_keyfile needs bridge_certfile"))
        guard case .invalidConfiguration(let text) = error(TLSClientConfiguration(insecure: true)) else {
            return XCTFail("a configuration without bridge_cafile or bridge_capath was accepted")
        }
        XCTAssertTrue(text.contains("bridge_cafile or bridge_capath"), text)
        XCTAssertEqual(
            error(TLSClientConfiguration(caFile: ca, applicationProtocol: "")),
            .invalidConfiguration("bridge_alpn must be 1 to 255 bytes"))
        let oversized = String(repeating: "a", count: 256)
        XCTAssertNotNil(error(TLSClientConfiguration(caFile: ca, applicationProtocol: oversized)))

        let missing = "/nonexistent/midge-test/ca.crt"
        guard case .rejectedSetting(let key, let value, let reason) = error(TLSClientConfiguration(caFile: missing))
        else { return XCTFail("a missing bridge_cafile was accepted") }
        XCTAssertEqual(key, "bridge_cafile")
        XCTAssertEqual(value, missing)
        XCTAssertTrue(reason.contains("No such file"), reason)

        guard
            case .rejectedSetting(let certificateKey, _, _) = error(
                TLSClientConfiguration(
                    caFile: ca, certificateFile: "/nonexistent/client.crt", privateKeyFile: Fixture.path("client.key")))
        else { return XCTFail("a missing bridge_certfile was accepted") }
        XCTAssertEqual(certificateKey, "bridge_certfile")

        guard
            case .rejectedSetting(let keyKey, _, let mismatch) = error(
                TLSClientConfiguration(
                    caFile: ca, certificateFile: Fixture.path("client.crt"),
                    privateKeyFile: Fixture.path("other-client.key")))
        else { return XCTFail("a key of another certificate was accepted") }
        XCTAssertEqual(keyKey, "bridge_keyfile")
        XCTAssertTrue(mismatch.contains("does not belong to the certificate in bridge_certfile"), mismatch)

        let context = try clientContext()
        for name in ["", "bad\u{0}name"] {
            XCTAssertThrowsError(try TLSConnection(client: context, serverName: name)) {
                guard case .invalidConfiguration = $0 as? TLSError else { return XCTFail("\($0)") }
            }
        }
        XCTAssertEqual(ERR_peek_error(), 0, "a refused configuration left OpenSSL's error queue dirty")
    }

    // MARK: - Against openssl s_server

    /// An independent server over loopback TCP: TLS 1.2 only, a client certificate required, ALPN "mqtt", and
    /// `-rev`, which sends each line back reversed. The address is an IP literal, checked against the IP SAN.
    func testAgainstOpenSSLServer() throws {
        guard let openssl = findExecutable("openssl") else { throw XCTSkip("the openssl CLI is not installed") }
        let context = try clientContext(
            certificate: Fixture.path("client.crt"), key: Fixture.path("client.key"), alpn: "mqtt")
        let server = try OpenSSLServer(
            openssl,
            [
                "-CAfile", Fixture.caCertificate, "-Verify", "1", "-verify_return_error", "-alpn", "mqtt", "-tls1_2",
            ])
        defer { server.stop() }
        let client = try TLSConnection(client: context, serverName: "127.0.0.1")
        let received = try exchange(client, port: server.port, sending: Array("hello bridge\n".utf8)) {
            $0.contains(UInt8(ascii: "\n"))
        }
        XCTAssertEqual(String(decoding: received, as: UTF8.self), "egdirb olleh\n")
        XCTAssertEqual(client.protocolVersion, "TLSv1.2")
        XCTAssertEqual(client.selectedApplicationProtocol, "mqtt")
        XCTAssertEqual(client.peerCertificateSubjectCommonName, "localhost")
    }

    func testOpenSSLServerBelowTheFloorIsRefused() throws {
        guard let openssl = findExecutable("openssl") else { throw XCTSkip("the openssl CLI is not installed") }
        let server = try OpenSSLServer(openssl, ["-tls1_2"])
        defer { server.stop() }
        let client = try TLSConnection(client: clientContext(minimumVersion: .tlsv13), serverName: "localhost")
        XCTAssertThrowsError(try exchange(client, port: server.port, sending: [0x0a]) { _ in false }) {
            guard case .handshakeFailed(let reason) = $0 as? TLSError else { return XCTFail("\($0)") }
            XCTAssertTrue(reason.contains("protocol version"), reason)
        }
    }

    /// Drives `client` over a blocking loopback socket as an event loop would: start, flush, read, feed, read
    /// plaintext, flush, until `done` says the plaintext is complete or the peer closes. Bounded by its rounds and
    /// the socket's receive timeout.
    private func exchange(
        _ client: TLSConnection, port: UInt16, sending bytes: [UInt8], until done: ([UInt8]) -> Bool
    ) throws -> [UInt8] {
        let socket = try LoopbackSocket(port: port)
        defer { socket.close() }
        try client.startHandshake()
        try client.writePlaintext(bytes)
        var received: [UInt8] = []
        for _ in 0..<100 {
            try socket.send(client.takeCiphertext())
            if done(received) { return received }
            let chunk = try socket.receive()
            if chunk.isEmpty { break }
            try client.feed(chunk)
            do {
                if try client.readPlaintext(appendingTo: &received) == .closedByPeer { break }
            } catch {
                try? socket.send(client.takeCiphertext())  // the alert, best-effort
                throw error
            }
        }
        return received
    }
}

/// A client and a server TLSConnection with the ciphertext between them moved by hand.
final class ConnectionPair {
    let client: TLSConnection
    let server: TLSConnection
    var clientReceived: [UInt8] = []
    var serverReceived: [UInt8] = []
    var clientError: TLSError?
    var serverError: TLSError?
    var serverSawClose = false

    init(client: TLSConnection, server: TLSConnection) {
        self.client = client
        self.server = server
    }

    /// Reads on both sides and moves ciphertext until a full round moves nothing; at most `rounds` rounds.
    func shuttle(rounds: Int = 50, file: StaticString = #filePath, line: UInt = #line) {
        for _ in 1...rounds {
            let toServer = step(client, &clientReceived, &clientError)
            let toClient = step(server, &serverReceived, &serverError)
            if server.receivedCloseNotify { serverSawClose = true }
            XCTAssertEqual(ERR_peek_error(), 0, "OpenSSL's error queue left dirty", file: file, line: line)
            if toServer.isEmpty && toClient.isEmpty { return }
            try? server.feed(toServer)
            try? client.feed(toClient)
        }
        XCTFail("bytes still moving after \(rounds) rounds", file: file, line: line)
    }

    private func step(_ connection: TLSConnection, _ received: inout [UInt8], _ error: inout TLSError?) -> [UInt8] {
        if error == nil {
            do {
                _ = try connection.readPlaintext(appendingTo: &received)
            } catch let failure {
                error = failure
            }
        }
        return connection.takeCiphertext()
    }

    func assertNoErrors(file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertNil(clientError, "client: \(String(describing: clientError))", file: file, line: line)
        XCTAssertNil(serverError, "server: \(String(describing: serverError))", file: file, line: line)
    }
}

/// `openssl s_server` on 127.0.0.1 with an ephemeral port and the fixture server certificate, answering one
/// connection with `-rev`; bounded by `timeout 20` and stopped by its PID.
final class OpenSSLServer {
    private let process: Process
    let port: UInt16
    private let output: String

    init(_ openssl: String, _ arguments: [String]) throws {
        output = NSTemporaryDirectory() + "midge-s_server-" + UUID().uuidString
        process = try startBounded(
            openssl,
            [
                "s_server", "-accept", "127.0.0.1:0", "-naccept", "1", "-rev", "-cert", Fixture.serverCertificate,
                "-key", Fixture.serverKey,
            ] + arguments, stdout: output)
        // s_server prints "ACCEPT 127.0.0.1:<port>" once it listens.
        var found: UInt16?
        for _ in 0..<200 where found == nil {
            let text = (try? String(contentsOfFile: output, encoding: .utf8)) ?? ""
            if let line = text.split(separator: "\n").first(where: { $0.hasPrefix("ACCEPT ") }),
                let port = line.split(separator: ":").last.flatMap({ UInt16($0) })
            {
                found = port
            } else if !process.isRunning {
                break
            } else {
                usleep(50_000)
            }
        }
        guard let found else {
            let errors = (try? String(contentsOfFile: output + ".err", encoding: .utf8)) ?? ""
            if process.isRunning { process.terminate() }
            process.waitUntilExit()
            throw TestFailure("openssl s_server did not start listening: \(errors)")
        }
        port = found
    }

    func stop() {
        if process.isRunning { kill(process.processIdentifier, SIGTERM) }
        process.waitUntilExit()
        try? FileManager.default.removeItem(atPath: output)
        try? FileManager.default.removeItem(atPath: output + ".err")
    }
}

/// A blocking TCP connection to 127.0.0.1 whose reads give up after 10 s.
struct LoopbackSocket {
    let descriptor: Int32

    init(port: UInt16) throws {
        let descriptor = Glibc.socket(AF_INET, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard descriptor >= 0 else { throw TestFailure("socket: errno \(errno)") }
        var timeout = timeval(tv_sec: 10, tv_usec: 0)
        _ = setsockopt(descriptor, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        address.sin_port = port.bigEndian
        let connected = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                connect(descriptor, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) == 0
            }
        }
        guard connected else {
            Glibc.close(descriptor)
            throw TestFailure("connect to 127.0.0.1:\(port): errno \(errno)")
        }
        self.descriptor = descriptor
    }

    func send(_ bytes: [UInt8]) throws {
        var offset = 0
        while offset < bytes.count {
            let sent = bytes[offset...].withUnsafeBytes {
                Glibc.send(descriptor, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL))
            }
            guard sent > 0 else { throw TestFailure("send: errno \(errno)") }
            offset += sent
        }
    }

    /// What arrived, or nothing at the end of the stream; throws on the timeout.
    func receive() throws -> [UInt8] {
        var buffer = [UInt8](repeating: 0, count: 16 * 1024)
        let count = buffer.withUnsafeMutableBytes { recv(descriptor, $0.baseAddress, $0.count, 0) }
        guard count >= 0 else { throw TestFailure("recv: errno \(errno)") }
        return Array(buffer[0..<count])
    }

    func close() { Glibc.close(descriptor) }
}
