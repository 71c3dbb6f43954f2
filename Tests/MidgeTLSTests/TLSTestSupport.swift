// Test helpers: the committed fixture certificates, an OpenSSL client on memory BIOs, and the bounded byte shuttle
// between that client and a TLSConnection.
import COpenSSL
import Foundation
import XCTest

@testable import MidgeTLS

/// The certificates and keys made by Fixtures/make-fixtures.sh, found next to this source file.
enum Fixture {
    static let directory = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .appendingPathComponent("Fixtures").path

    static func path(_ name: String) -> String { directory + "/" + name }

    static let caCertificate = path("ca.crt")
    static let otherCACertificate = path("other-ca.crt")
    static let serverCertificate = path("server.crt")
    static let serverKey = path("server.key")

    static func configuration(
        minimumVersion: TLSVersion = .tlsv12, requireCertificate: Bool = false, ciphers: String? = nil,
        ciphersuites: String? = nil
    ) -> TLSConfiguration {
        TLSConfiguration(
            certificateFile: serverCertificate, privateKeyFile: serverKey, caFile: caCertificate,
            minimumVersion: minimumVersion, ciphers: ciphers, ciphersuites: ciphersuites,
            requireCertificate: requireCertificate, useIdentityAsUsername: requireCertificate)
    }

    static func context(
        minimumVersion: TLSVersion = .tlsv12, requireCertificate: Bool = false, ciphers: String? = nil,
        ciphersuites: String? = nil
    ) throws -> TLSContext {
        try TLSContext(
            configuration: configuration(
                minimumVersion: minimumVersion, requireCertificate: requireCertificate, ciphers: ciphers,
                ciphersuites: ciphersuites))
    }
}

/// A TLS client as mosquitto_pub would be one: OpenSSL, verifying the server against a CA and the name "localhost",
/// optionally presenting a certificate. Memory BIOs, like the server under test.
final class TestClient {
    private let context: OpaquePointer
    private let ssl: OpaquePointer
    private let inbound: OpaquePointer
    private let outbound: OpaquePointer
    private(set) var handshakeDone = false
    private(set) var receivedCloseNotify = false
    /// OpenSSL's reasons for the client's failure, once it failed.
    private(set) var failure: String?
    /// Plaintext received from the server.
    var received: [UInt8] = []

    init(
        trusting caFile: String? = Fixture.caCertificate, certificate: String? = nil, key: String? = nil,
        maximumVersion: Int32? = nil, ciphers: String? = nil, ciphersuites: String? = nil,
        resuming session: OpaquePointer? = nil, psk: PSKCredential? = nil, applicationProtocols: [String] = []
    ) throws {
        guard let context = SSL_CTX_new(TLS_client_method()) else { throw TestFailure("SSL_CTX_new") }
        self.context = context
        if let caFile {
            guard SSL_CTX_load_verify_file(context, caFile) == 1 else { throw TestFailure("client CA \(caFile)") }
            SSL_CTX_set_verify(context, SSL_VERIFY_PEER, nil)
        }
        if let certificate, let key {
            guard SSL_CTX_use_certificate_chain_file(context, certificate) == 1,
                SSL_CTX_use_PrivateKey_file(context, key, SSL_FILETYPE_PEM) == 1
            else { throw TestFailure("client certificate \(certificate)") }
        }
        if let maximumVersion { _ = midge_SSL_CTX_set_max_proto_version(context, maximumVersion) }
        if let ciphers { _ = SSL_CTX_set_cipher_list(context, ciphers) }
        if let ciphersuites { _ = SSL_CTX_set_ciphersuites(context, ciphersuites) }
        guard let ssl = SSL_new(context), let inbound = BIO_new(BIO_s_mem()), let outbound = BIO_new(BIO_s_mem())
        else { throw TestFailure("SSL_new") }
        SSL_set_bio(ssl, inbound, outbound)
        SSL_set_connect_state(ssl)
        _ = midge_SSL_set_tlsext_host_name(ssl, "localhost")
        _ = SSL_set1_host(ssl, "localhost")
        if let session { _ = SSL_set_session(ssl, session) }
        if !applicationProtocols.isEmpty {
            let wire = applicationProtocols.flatMap { [UInt8($0.utf8.count)] + Array($0.utf8) }
            _ = SSL_set_alpn_protos(ssl, wire, UInt32(wire.count))
        }
        self.ssl = ssl
        self.inbound = inbound
        self.outbound = outbound
        self.psk = psk
        psk?.attach(to: ssl)
    }

    /// Kept alive here: the PSK callback finds it through the SSL's app data, unretained.
    private let psk: PSKCredential?

    deinit {
        SSL_free(ssl)
        SSL_CTX_free(context)
    }

    var protocolVersion: String { String(cString: SSL_get_version(ssl)) }

    /// What ALPN agreed on, as the client sees it.
    var selectedApplicationProtocol: String? {
        var data: UnsafePointer<UInt8>?
        var length: UInt32 = 0
        SSL_get0_alpn_selected(ssl, &data, &length)
        guard let data, length > 0 else { return nil }
        return String(decoding: UnsafeBufferPointer(start: data, count: Int(length)), as: UTF8.self)
    }

    /// The session to resume with, owned by the caller (`SSL_SESSION_free`); TLS 1.3 has one once a ticket arrived.
    func takeSession() -> OpaquePointer? { SSL_get1_session(ssl) }

    var resumedSession: Bool { SSL_session_reused(ssl) == 1 }

    /// Advances the handshake and reads whatever plaintext the fed ciphertext holds.
    func drive() {
        guard failure == nil, !receivedCloseNotify else { return }
        ERR_clear_error()
        if !handshakeDone {
            let result = SSL_do_handshake(ssl)
            if result == 1 {
                handshakeDone = true
            } else {
                noteFailure(SSL_get_error(ssl, result))
                return
            }
        }
        var chunk = [UInt8](repeating: 0, count: 16 * 1024)
        for _ in 0..<100_000 {
            var count = 0
            ERR_clear_error()
            if SSL_read_ex(ssl, &chunk, chunk.count, &count) == 1 {
                received += chunk[0..<count]
                continue
            }
            let error = SSL_get_error(ssl, 0)
            if error == SSL_ERROR_ZERO_RETURN { receivedCloseNotify = true }
            noteFailure(error)
            return
        }
    }

    private func noteFailure(_ error: Int32) {
        if error == SSL_ERROR_WANT_READ || error == SSL_ERROR_ZERO_RETURN { return }
        var parts: [String] = []
        for _ in 0..<16 {
            let code = ERR_get_error()
            if code == 0 { break }
            parts.append(ERR_reason_error_string(code).map { String(cString: $0) } ?? "error \(code)")
        }
        failure = parts.isEmpty ? "SSL error \(error)" : parts.joined(separator: "; ")
    }

    func write(_ bytes: [UInt8]) throws {
        var written = 0
        ERR_clear_error()
        guard SSL_write_ex(ssl, bytes, bytes.count, &written) == 1, written == bytes.count else {
            throw TestFailure("client SSL_write failed")
        }
    }

    func shutdown() { _ = SSL_shutdown(ssl) }

    func feed(_ bytes: [UInt8]) {
        guard !bytes.isEmpty else { return }
        var written = 0
        _ = BIO_write_ex(inbound, bytes, bytes.count, &written)
    }

    func takeCiphertext() -> [UInt8] {
        let pending = Int(BIO_ctrl_pending(outbound))
        guard pending > 0 else { return [] }
        return [UInt8](unsafeUninitializedCapacity: pending) { buffer, initialized in
            var count = 0
            _ = BIO_read_ex(outbound, buffer.baseAddress, pending, &count)
            initialized = count
        }
    }
}

/// A PSK client's identity and key, as `mosquitto_pub --psk-identity ID --psk HEX` sends them. OpenSSL's client
/// callback finds it through the SSL's app data.
final class PSKCredential {
    let identity: String
    let key: [UInt8]
    /// The server's psk_hint, which only TLS 1.2 sends.
    private(set) var receivedHint: String?

    init(identity: String, key: [UInt8]) {
        self.identity = identity
        self.key = key
    }

    func attach(to ssl: OpaquePointer) {
        // On the SSL itself: it copied the context's callbacks when it was made.
        SSL_set_psk_client_callback(ssl, PSKCredential.callback)
        _ = SSL_set_ex_data(ssl, 0, Unmanaged.passUnretained(self).toOpaque())
    }

    static let callback: SSL_psk_client_cb_func = { ssl, hint, identity, maxIdentity, key, maxKey in
        guard let ssl, let identity, let key, let raw = SSL_get_ex_data(ssl, 0) else { return 0 }
        let credential = Unmanaged<PSKCredential>.fromOpaque(raw).takeUnretainedValue()
        if let hint { credential.receivedHint = String(cString: hint) }
        let name = Array(credential.identity.utf8)
        guard name.count < Int(maxIdentity), credential.key.count <= Int(maxKey) else { return 0 }
        for (index, byte) in name.enumerated() { identity[index] = CChar(bitPattern: byte) }
        identity[name.count] = 0
        for (index, byte) in credential.key.enumerated() { key[index] = byte }
        return UInt32(credential.key.count)
    }
}

struct TestFailure: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}

/// A client and a server connection with the bytes between them moved by hand.
final class Pair {
    let client: TestClient
    let server: TLSConnection
    /// Plaintext the server read.
    var serverReceived: [UInt8] = []
    /// The server's fatal error, once one was thrown.
    var serverError: TLSError?
    var serverSawCloseNotify = false

    init(client: TestClient, server: TLSConnection) {
        self.client = client
        self.server = server
    }

    convenience init(_ context: TLSContext, _ client: TestClient) throws {
        self.init(client: client, server: try TLSConnection(context: context))
    }

    /// Moves bytes both ways until a full round moves nothing; at most `rounds` rounds. Returns the rounds used.
    @discardableResult
    func shuttle(rounds: Int = 50) -> Int {
        for round in 1...rounds {
            client.drive()
            var moved = false
            let toServer = client.takeCiphertext()
            if !toServer.isEmpty {
                moved = true
                XCTAssertNoThrow(try server.feed(toServer))
            }
            if serverError == nil {
                do {
                    if try server.readPlaintext(appendingTo: &serverReceived) == .closedByPeer {
                        serverSawCloseNotify = true
                    }
                } catch {
                    serverError = error
                }
                XCTAssertEqual(ERR_peek_error(), 0, "the server left OpenSSL's error queue dirty")
            }
            let toClient = server.takeCiphertext()
            if !toClient.isEmpty {
                moved = true
                client.feed(toClient)
            }
            if !moved { return round }
        }
        XCTFail("bytes still moving after \(rounds) rounds")
        return rounds
    }

    /// Shuttles and checks that both sides consider the handshake done.
    func handshake(file: StaticString = #filePath, line: UInt = #line) {
        shuttle()
        XCTAssertNil(serverError, "server: \(String(describing: serverError))", file: file, line: line)
        XCTAssertNil(client.failure, "client: \(client.failure ?? "")", file: file, line: line)
        XCTAssertTrue(server.isHandshakeComplete, file: file, line: line)
        XCTAssertTrue(client.handshakeDone, file: file, line: line)
    }
}

/// Deterministic bytes that differ from position to position, so a dropped or repeated chunk shows.
func patternBytes(_ count: Int, seed: UInt32 = 1) -> [UInt8] {
    var state = seed
    return (0..<count).map { _ in
        state = state &* 1_103_515_245 &+ 12345
        return UInt8(truncatingIfNeeded: state >> 16)
    }
}
