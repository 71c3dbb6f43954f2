// A TLSConnection against an OpenSSL client on memory BIOs: handshakes, data, versions, client certificates,
// hostile input, stalls and close_notify. Every exchange is a bounded shuttle loop; nothing sleeps.
import COpenSSL
import XCTest

@testable import MidgeTLS

final class TLSConnectionTests: XCTestCase {
    // MARK: - Handshake and data

    func testTLS13HandshakeAndDataBothWays() throws {
        let pair = try Pair(Fixture.context(), TestClient())
        XCTAssertFalse(pair.server.isHandshakeComplete)
        XCTAssertNil(pair.server.protocolVersion)
        pair.handshake()
        XCTAssertEqual(pair.server.protocolVersion, "TLSv1.3")
        XCTAssertEqual(pair.client.protocolVersion, "TLSv1.3")
        XCTAssertNotNil(pair.server.cipherName)

        try pair.client.write(Array("CONNECT please".utf8))
        pair.shuttle()
        XCTAssertEqual(pair.serverReceived, Array("CONNECT please".utf8))

        try pair.server.writePlaintext(Array("CONNACK here".utf8))
        pair.shuttle()
        XCTAssertEqual(pair.client.received, Array("CONNACK here".utf8))
        XCTAssertNil(pair.serverError)
    }

    func testTLS12HandshakeAndDataBothWays() throws {
        let pair = try Pair(Fixture.context(), TestClient(maximumVersion: TLS1_2_VERSION))
        pair.handshake()
        XCTAssertEqual(pair.server.protocolVersion, "TLSv1.2")
        try pair.client.write([0x10, 0x00])
        try pair.server.writePlaintext([0x20, 0x02, 0x00, 0x00])
        pair.shuttle()
        XCTAssertEqual(pair.serverReceived, [0x10, 0x00])
        XCTAssertEqual(pair.client.received, [0x20, 0x02, 0x00, 0x00])
    }

    func testOneMebibyteEachWay() throws {
        for version in [TLS1_2_VERSION, TLS1_3_VERSION] {
            let pair = try Pair(Fixture.context(), TestClient(maximumVersion: version))
            pair.handshake()
            let up = patternBytes(1 << 20, seed: 7)
            let down = patternBytes(1 << 20, seed: 11)
            try pair.client.write(up)
            try pair.server.writePlaintext(down)
            // 1 MiB is 64 records of 16 KiB in each direction.
            XCTAssertGreaterThan(pair.server.pendingCiphertextCount, down.count)
            pair.shuttle()
            XCTAssertEqual(pair.serverReceived.count, up.count)
            XCTAssertTrue(pair.serverReceived == up, "upstream bytes differ")
            XCTAssertEqual(pair.client.received.count, down.count)
            XCTAssertTrue(pair.client.received == down, "downstream bytes differ")
            XCTAssertEqual(pair.server.pendingCiphertextCount, 0)
        }
    }

    /// The socket may deliver any split: the handshake and the data survive ciphertext arriving one byte at a time.
    func testCiphertextFedOneByteAtATime() throws {
        let server = try TLSConnection(context: Fixture.context())
        let client = try TestClient()
        var received: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 64)
        func deliver(_ bytes: [UInt8]) throws {
            for byte in bytes {
                try server.feed([byte])
                let status = try buffer.withUnsafeMutableBytes { try server.readPlaintext(into: $0) }
                if case .plaintext(let count) = status {
                    received += buffer[0..<count]
                    // A record decrypts whole, so more may be buffered: drain it.
                    while case .plaintext(let more) = try buffer.withUnsafeMutableBytes({
                        try server.readPlaintext(into: $0)
                    }) {
                        received += buffer[0..<more]
                    }
                }
            }
        }
        for _ in 0..<10 where !(client.handshakeDone && server.isHandshakeComplete) {
            client.drive()
            try deliver(client.takeCiphertext())
            client.feed(server.takeCiphertext())
        }
        XCTAssertTrue(server.isHandshakeComplete)
        let message = patternBytes(300)
        try client.write(message)
        try deliver(client.takeCiphertext())
        XCTAssertEqual(received, message)
    }

    /// A small read buffer takes a record in pieces; what is left waits inside OpenSSL and says so.
    func testSmallReadBufferDrainsARecordInPieces() throws {
        let pair = try Pair(Fixture.context(), TestClient())
        pair.handshake()
        let message = patternBytes(100)
        try pair.client.write(message)
        try pair.server.feed(pair.client.takeCiphertext())
        XCTAssertTrue(pair.server.hasBufferedInput)
        var received: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 7)
        for _ in 0..<100 {
            let status = try buffer.withUnsafeMutableBytes { try pair.server.readPlaintext(into: $0) }
            guard case .plaintext(let count) = status else {
                XCTAssertEqual(status, .needsMoreCiphertext)
                break
            }
            XCTAssertLessThanOrEqual(count, 7)
            received += buffer[0..<count]
        }
        XCTAssertEqual(received, message)
        XCTAssertFalse(pair.server.hasBufferedInput)
    }

    /// The server may queue output before the handshake ends (it never should for MQTT, but must not lose it).
    func testPlaintextWrittenBeforeHandshakeIsSentAfterIt() throws {
        let pair = try Pair(Fixture.context(), TestClient())
        try pair.server.writePlaintext(Array("early".utf8))
        XCTAssertEqual(pair.server.pendingCiphertextCount, 0)
        pair.handshake()
        pair.shuttle()
        XCTAssertEqual(pair.client.received, Array("early".utf8))
    }

    func testConfiguredCiphersAreUsed() throws {
        let tls12 = try Pair(
            Fixture.context(ciphers: "ECDHE-RSA-CHACHA20-POLY1305"), TestClient(maximumVersion: TLS1_2_VERSION))
        tls12.handshake()
        XCTAssertEqual(tls12.server.cipherName, "ECDHE-RSA-CHACHA20-POLY1305")

        let tls13 = try Pair(Fixture.context(ciphersuites: "TLS_CHACHA20_POLY1305_SHA256"), TestClient())
        tls13.handshake()
        XCTAssertEqual(tls13.server.cipherName, "TLS_CHACHA20_POLY1305_SHA256")

        // No overlap between what the server allows and what the client offers: a refusal naming the reason.
        let disjoint = try Pair(
            Fixture.context(ciphers: "ECDHE-RSA-AES256-GCM-SHA384"),
            TestClient(maximumVersion: TLS1_2_VERSION, ciphers: "ECDHE-RSA-AES128-GCM-SHA256"))
        disjoint.shuttle()
        guard case .handshakeFailed(let reason) = disjoint.serverError else {
            return XCTFail("expected a handshake failure, got \(String(describing: disjoint.serverError))")
        }
        XCTAssertTrue(reason.contains("no shared cipher"), reason)
    }

    // MARK: - Versions

    /// tls_version tlsv1.3 is a floor: a client that stops at TLS 1.2 is refused, and told so by an alert.
    func testMinimumTLS13RefusesTLS12Client() throws {
        let pair = try Pair(Fixture.context(minimumVersion: .tlsv13), TestClient(maximumVersion: TLS1_2_VERSION))
        pair.shuttle()
        guard case .handshakeFailed(let reason) = pair.serverError else {
            return XCTFail("expected a handshake failure, got \(String(describing: pair.serverError))")
        }
        XCTAssertTrue(reason.contains("unsupported protocol"), reason)
        XCTAssertFalse(pair.server.isHandshakeComplete)
        XCTAssertTrue(pair.client.failure?.contains("protocol version") ?? false, pair.client.failure ?? "no failure")
    }

    /// tls_version tlsv1.2 (the default) still negotiates TLS 1.3 with a client offering it.
    func testMinimumTLS12StillNegotiatesTLS13() throws {
        let pair = try Pair(Fixture.context(minimumVersion: .tlsv12), TestClient())
        pair.handshake()
        XCTAssertEqual(pair.server.protocolVersion, "TLSv1.3")
    }

    // MARK: - Client certificates

    func testRequiredClientCertificateIsAcceptedAndItsCommonNameRead() throws {
        for version in [TLS1_2_VERSION, TLS1_3_VERSION] {
            let client = try TestClient(
                certificate: Fixture.path("client.crt"), key: Fixture.path("client.key"), maximumVersion: version)
            let pair = try Pair(Fixture.context(requireCertificate: true), client)
            pair.handshake()
            XCTAssertEqual(pair.server.peerCertificateSubjectCommonName, "device-42")
            XCTAssertEqual(pair.server.peerCertificateSubject, "CN=device-42,OU=Devices,O=Midge Test")
            try pair.client.write([1, 2, 3])
            pair.shuttle()
            XCTAssertEqual(pair.serverReceived, [1, 2, 3])
        }
    }

    /// Resumption with require_certificate works (it fails without a session id context) and keeps the identity.
    func testResumedSessionKeepsTheClientIdentity() throws {
        let context = try Fixture.context(requireCertificate: true)
        for version in [TLS1_2_VERSION, TLS1_3_VERSION] {
            let certificate = Fixture.path("client.crt")
            let key = Fixture.path("client.key")
            let first = try Pair(context, TestClient(certificate: certificate, key: key, maximumVersion: version))
            first.handshake()
            try first.client.write([0])  // a TLS 1.3 client reads its tickets while waiting for data
            first.shuttle()
            guard let session = first.client.takeSession() else { return XCTFail("no session, version \(version)") }
            defer { SSL_SESSION_free(session) }

            let client = try TestClient(certificate: certificate, key: key, maximumVersion: version, resuming: session)
            let second = try Pair(context, client)
            second.handshake()
            XCTAssertTrue(second.client.resumedSession, "version \(version)")
            XCTAssertEqual(second.server.peerCertificateSubjectCommonName, "device-42")
        }
    }

    func testRequiredClientCertificateMissingIsRefused() throws {
        for version in [TLS1_2_VERSION, TLS1_3_VERSION] {
            let pair = try Pair(Fixture.context(requireCertificate: true), TestClient(maximumVersion: version))
            pair.shuttle()
            XCTAssertEqual(pair.serverError, .clientCertificateRequired, "version \(version)")
            XCTAssertFalse(pair.server.isHandshakeComplete)
            XCTAssertNil(pair.server.peerCertificateSubjectCommonName)
            // The alert reached the client (TLS 1.3 clients finish first and learn it from their next read).
            XCTAssertNotNil(pair.client.failure, "version \(version)")
        }
    }

    func testClientCertificateFromAnotherCAIsRejected() throws {
        let client = try TestClient(
            certificate: Fixture.path("other-client.crt"), key: Fixture.path("other-client.key"))
        let pair = try Pair(Fixture.context(requireCertificate: true), client)
        pair.shuttle()
        guard case .clientCertificateRejected(let reason) = pair.serverError else {
            return XCTFail("expected a certificate rejection, got \(String(describing: pair.serverError))")
        }
        XCTAssertTrue(reason.contains("local issuer"), reason)
        XCTAssertNil(pair.server.peerCertificateSubjectCommonName)
        XCTAssertTrue(pair.serverError?.description.contains("client certificate rejected") ?? false)
    }

    /// The other direction of a wrong CA: the client does not trust the server and says so with an alert.
    func testClientTrustingAnotherCAAbortsAndServerReportsTheAlert() throws {
        let pair = try Pair(Fixture.context(), TestClient(trusting: Fixture.otherCACertificate))
        pair.shuttle()
        XCTAssertTrue(pair.client.failure?.contains("certificate verify failed") ?? false, pair.client.failure ?? "")
        guard case .handshakeFailed(let reason) = pair.serverError else {
            return XCTFail("expected a handshake failure, got \(String(describing: pair.serverError))")
        }
        XCTAssertTrue(reason.contains("unknown ca"), reason)
    }

    func testCertificateWithoutCommonNameGivesNoIdentity() throws {
        let client = try TestClient(
            certificate: Fixture.path("client-no-cn.crt"), key: Fixture.path("client-no-cn.key"))
        let pair = try Pair(Fixture.context(requireCertificate: true), client)
        pair.handshake()
        XCTAssertNil(pair.server.peerCertificateSubjectCommonName)
        XCTAssertEqual(pair.server.peerCertificateSubject, "OU=Devices,O=Midge Test")
    }

    /// Without require_certificate no certificate is asked for (mosquitto since 1.3.4), so none is seen.
    func testCertificateIsNotRequestedWithoutRequireCertificate() throws {
        let client = try TestClient(certificate: Fixture.path("client.crt"), key: Fixture.path("client.key"))
        let pair = try Pair(Fixture.context(requireCertificate: false), client)
        pair.handshake()
        XCTAssertNil(pair.server.peerCertificateSubjectCommonName)
        XCTAssertNil(pair.server.peerCertificateSubject)
    }

    // MARK: - Hostile and stalled clients

    /// Plain MQTT or HTTP on the TLS port: a handshake failure with OpenSSL's reason, and it stays failed.
    func testGarbageInsteadOfClientHelloFails() throws {
        let connect: [UInt8] = [0x10, 0x0c, 0x00, 0x04, 0x4d, 0x51, 0x54, 0x54, 0x04, 0x02, 0x00, 0x3c, 0x00, 0x00]
        for garbage in [connect, Array("GET / HTTP/1.1\r\nHost: localhost\r\n\r\n".utf8), patternBytes(4096)] {
            let server = try TLSConnection(context: Fixture.context())
            try server.feed(garbage)
            var sink: [UInt8] = []
            XCTAssertThrowsError(try server.readPlaintext(appendingTo: &sink)) { error in
                guard case .handshakeFailed(let reason) = error as? TLSError else {
                    return XCTFail("expected a handshake failure, got \(error)")
                }
                XCTAssertFalse(reason.isEmpty)
            }
            XCTAssertTrue(sink.isEmpty)
            XCTAssertFalse(server.isHandshakeComplete)
            XCTAssertNotNil(server.failure)
            // It stays failed: no second attempt to parse, and no plaintext.
            XCTAssertThrowsError(try server.readPlaintext(appendingTo: &sink))
            XCTAssertThrowsError(try server.writePlaintext([1]))
            _ = server.takeCiphertext()  // the alert, best effort, as the event loop would write it
        }
    }

    /// A client that stops mid-ClientHello, or after the server's first flight, leaves the connection incomplete
    /// and idle: nothing blocks, nothing is produced, and the server's connect timeout is what ends it.
    func testStalledHandshakeStaysIncomplete() throws {
        let context = try Fixture.context()
        let client = try TestClient()
        client.drive()
        let hello = client.takeCiphertext()
        XCTAssertGreaterThan(hello.count, 10)

        let server = try TLSConnection(context: context)
        try server.feed(Array(hello.prefix(hello.count / 2)))
        var sink: [UInt8] = []
        for _ in 0..<5 {
            XCTAssertEqual(try server.readPlaintext(appendingTo: &sink), .needsMoreCiphertext)
        }
        XCTAssertFalse(server.isHandshakeComplete)
        XCTAssertEqual(server.pendingCiphertextCount, 0)
        XCTAssertTrue(sink.isEmpty)

        // The rest of the hello arrives: the server answers, then the client stalls before its Finished.
        try server.feed(Array(hello.dropFirst(hello.count / 2)))
        XCTAssertEqual(try server.readPlaintext(appendingTo: &sink), .needsMoreCiphertext)
        XCTAssertGreaterThan(server.pendingCiphertextCount, 0)
        _ = server.takeCiphertext()
        for _ in 0..<5 {
            XCTAssertEqual(try server.readPlaintext(appendingTo: &sink), .needsMoreCiphertext)
        }
        XCTAssertFalse(server.isHandshakeComplete)
        XCTAssertEqual(server.pendingCiphertextCount, 0)
        XCTAssertNil(server.failure)
        server.close()  // the timeout's close: nothing to send before a handshake
        XCTAssertEqual(server.pendingCiphertextCount, 0)
    }

    // MARK: - close_notify

    func testClientCloseNotifyEndsTheStreamAfterItsData() throws {
        let pair = try Pair(Fixture.context(), TestClient())
        pair.handshake()
        try pair.client.write(Array("DISCONNECT".utf8))
        pair.client.shutdown()
        pair.shuttle()
        XCTAssertEqual(pair.serverReceived, Array("DISCONNECT".utf8))
        XCTAssertTrue(pair.serverSawCloseNotify)
        XCTAssertTrue(pair.server.receivedCloseNotify)
        var sink: [UInt8] = []
        XCTAssertEqual(try pair.server.readPlaintext(appendingTo: &sink), .closedByPeer)

        pair.server.close()
        XCTAssertTrue(pair.server.sentCloseNotify)
        XCTAssertGreaterThan(pair.server.pendingCiphertextCount, 0)
        pair.shuttle()
        XCTAssertTrue(pair.client.receivedCloseNotify)
    }

    func testServerCloseSendsCloseNotifyAndRefusesFurtherWrites() throws {
        let pair = try Pair(Fixture.context(), TestClient())
        pair.handshake()
        try pair.server.writePlaintext(Array("last words".utf8))
        pair.server.close()
        pair.server.close()  // idempotent
        pair.shuttle()
        XCTAssertEqual(pair.client.received, Array("last words".utf8))
        XCTAssertTrue(pair.client.receivedCloseNotify)
        XCTAssertThrowsError(try pair.server.writePlaintext([1])) { error in
            XCTAssertEqual(error as? TLSError, .closed)
        }
    }

    /// After the handshake, a tampered record is a protocol error (bad MAC), not silently wrong plaintext.
    func testTamperedRecordIsAProtocolError() throws {
        let pair = try Pair(Fixture.context(), TestClient())
        pair.handshake()
        try pair.client.write(Array("PUBLISH".utf8))
        var record = pair.client.takeCiphertext()
        record[record.count - 3] ^= 0x01
        try pair.server.feed(record)
        var sink: [UInt8] = []
        XCTAssertThrowsError(try pair.server.readPlaintext(appendingTo: &sink)) { error in
            guard case .protocolError(let reason) = error as? TLSError else {
                return XCTFail("expected a protocol error, got \(error)")
            }
            XCTAssertTrue(reason.contains("bad record mac") || reason.contains("decryption failed"), reason)
        }
        XCTAssertTrue(sink.isEmpty)
    }
}
