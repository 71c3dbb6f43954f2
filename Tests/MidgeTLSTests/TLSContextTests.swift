// Building contexts from mosquitto-style settings: readable refusals naming the key and file, and reloads that keep
// the previous context when a file is broken.
import COpenSSL
import Foundation
import XCTest

@testable import MidgeTLS

final class TLSContextTests: XCTestCase {
    private var scratch: String!

    override func setUpWithError() throws {
        scratch = NSTemporaryDirectory() + "midge-tls-" + UUID().uuidString
        try FileManager.default.createDirectory(atPath: scratch, withIntermediateDirectories: true)
    }

    override func tearDown() { try? FileManager.default.removeItem(atPath: scratch) }

    private func write(_ name: String, _ text: String) throws -> String {
        let path = scratch + "/" + name
        try text.write(toFile: path, atomically: true, encoding: .utf8)
        return path
    }

    private func copyFixture(_ name: String) throws -> String {
        let path = scratch + "/" + name
        try? FileManager.default.removeItem(atPath: path)
        try FileManager.default.copyItem(atPath: Fixture.path(name), toPath: path)
        return path
    }

    /// The refusal for `configuration`, checked to name `key`, `value` and a reason containing `reasonPart`.
    private func assertRejected(
        _ configuration: TLSConfiguration, key: String, value: String, reasonContains reasonPart: String,
        file: StaticString = #filePath, line: UInt = #line
    ) {
        XCTAssertThrowsError(try TLSContext(configuration: configuration), file: file, line: line) { error in
            guard case .rejectedSetting(let gotKey, let gotValue, let reason) = error as? TLSError else {
                return XCTFail("expected a rejected setting, got \(error)", file: file, line: line)
            }
            XCTAssertEqual(gotKey, key, file: file, line: line)
            XCTAssertEqual(gotValue, value, file: file, line: line)
            XCTAssertTrue(reason.contains(reasonPart), "reason: \(reason)", file: file, line: line)
            let text = String(describing: error)
            XCTAssertTrue(text.hasPrefix("\(key) \"\(value)\" rejected: "), text, file: file, line: line)
        }
        XCTAssertEqual(ERR_peek_error(), 0, "the error queue was left dirty", file: file, line: line)
    }

    func testFixtureConfigurationBuilds() throws {
        let context = try Fixture.context(requireCertificate: true)
        XCTAssertEqual(context.configuration.caFile, Fixture.caCertificate)
        XCTAssertEqual(ERR_peek_error(), 0)
    }

    func testMissingCertificateFileIsNamed() {
        var configuration = Fixture.configuration()
        configuration.certificateFile = scratch + "/missing.crt"
        assertRejected(
            configuration, key: "certfile", value: configuration.certificateFile,
            reasonContains: "No such file or directory")
    }

    func testGarbageCertificateFileIsNamed() throws {
        var configuration = Fixture.configuration()
        configuration.certificateFile = try write("garbage.crt", "not a certificate\n")
        assertRejected(
            configuration, key: "certfile", value: configuration.certificateFile, reasonContains: "no start line")
    }

    func testGarbageKeyFileIsNamed() throws {
        var configuration = Fixture.configuration()
        configuration.privateKeyFile = try write(
            "garbage.key", "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n")
        assertRejected(configuration, key: "keyfile", value: configuration.privateKeyFile, reasonContains: "PEM")
    }

    func testKeyOfAnotherCertificateIsNamed() {
        var configuration = Fixture.configuration()
        configuration.privateKeyFile = Fixture.path("client.key")
        assertRejected(
            configuration, key: "keyfile", value: configuration.privateKeyFile,
            reasonContains: "does not belong to the certificate")
    }

    /// No passphrase prompt on the terminal: an encrypted key is refused with a hint.
    func testEncryptedKeyIsRefusedWithoutPrompting() {
        var configuration = Fixture.configuration()
        configuration.privateKeyFile = Fixture.path("server-encrypted.key")
        assertRejected(
            configuration, key: "keyfile", value: configuration.privateKeyFile, reasonContains: "it is encrypted")
    }

    func testMissingCAFileIsNamed() {
        var configuration = Fixture.configuration()
        configuration.caFile = scratch + "/missing-ca.crt"
        assertRejected(configuration, key: "cafile", value: scratch + "/missing-ca.crt", reasonContains: "No such file")
    }

    func testUnknownCiphersAreNamed() {
        assertRejected(
            Fixture.configuration(ciphers: "NO-SUCH-CIPHER"), key: "ciphers", value: "NO-SUCH-CIPHER",
            reasonContains: "no cipher match")
        assertRejected(
            Fixture.configuration(ciphersuites: "TLS_NO_SUCH_SUITE"), key: "ciphers_tls1.3",
            value: "TLS_NO_SUCH_SUITE", reasonContains: "no cipher match")
    }

    func testImpossibleCombinationsAreRefusedBeforeReadingFiles() {
        var noCA = Fixture.configuration(requireCertificate: true)
        noCA.caFile = nil
        XCTAssertThrowsError(try TLSContext(configuration: noCA)) { error in
            guard case .invalidConfiguration(let text) = error as? TLSError else { return XCTFail("\(error)") }
            XCTAssertTrue(text.contains("require_certificate"), text)
        }
        var noKey = Fixture.configuration()
        noKey.privateKeyFile = ""
        XCTAssertThrowsError(try TLSContext(configuration: noKey)) { error in
            guard case .invalidConfiguration(let text) = error as? TLSError else { return XCTFail("\(error)") }
            XCTAssertTrue(text.contains("keyfile"), text)
        }
    }

    func testCAPathIsAccepted() throws {
        // A hashed directory as `openssl rehash` makes it: <subject hash>.0 → the CA certificate.
        let directory = scratch + "/capath"
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        let hash = try subjectHash(Fixture.caCertificate)
        try FileManager.default.copyItem(atPath: Fixture.caCertificate, toPath: directory + "/\(hash).0")
        var configuration = Fixture.configuration(requireCertificate: true)
        configuration.caFile = nil
        configuration.caPath = directory
        let client = try TestClient(certificate: Fixture.path("client.crt"), key: Fixture.path("client.key"))
        let pair = try Pair(TLSContext(configuration: configuration), client)
        pair.handshake()
        XCTAssertEqual(pair.server.peerCertificateSubjectCommonName, "device-42")
    }

    /// X509_NAME_hash_ex of the CA's subject, the file name capath lookups use.
    private func subjectHash(_ path: String) throws -> String {
        guard let file = fopen(path, "r") else { throw TestFailure("open \(path)") }
        defer { fclose(file) }
        guard let certificate = PEM_read_X509(file, nil, nil, nil) else { throw TestFailure("read \(path)") }
        defer { X509_free(certificate) }
        let hash = X509_NAME_hash_ex(X509_get_subject_name(certificate), nil, nil, nil)
        return String(format: "%08lx", hash)
    }

    func testTLSVersionParsesMosquittoSpellings() {
        XCTAssertEqual(TLSVersion(configValue: "tlsv1.3"), .tlsv13)
        XCTAssertEqual(TLSVersion(configValue: "tlsv1.2"), .tlsv12)
        XCTAssertEqual(TLSVersion(configValue: "tlsv1.1"), .tlsv11)
        XCTAssertNil(TLSVersion(configValue: "TLSv1.3"))
        XCTAssertNil(TLSVersion(configValue: "sslv3"))
    }

    // MARK: - Reload

    /// SIGHUP with a broken key: the reload throws naming the file, the old context stays current and keeps
    /// accepting, and live connections never notice. A later good reload is picked up by new connections only.
    func testReloadWithBrokenKeyKeepsThePreviousContext() throws {
        var configuration = Fixture.configuration()
        configuration.certificateFile = try copyFixture("server.crt")
        configuration.privateKeyFile = try copyFixture("server.key")
        let reloadable = try ReloadableTLSContext(configuration: configuration)
        let original = reloadable.current

        let live = try Pair(reloadable.current, TestClient())
        live.handshake()

        _ = try write("server.key", "-----BEGIN PRIVATE KEY-----\ntruncated")
        XCTAssertThrowsError(try reloadable.reload()) { error in
            guard case .rejectedSetting(let key, let value, _) = error as? TLSError else {
                return XCTFail("expected the keyfile to be named, got \(error)")
            }
            XCTAssertEqual(key, "keyfile")
            XCTAssertEqual(value, configuration.privateKeyFile)
        }
        XCTAssertTrue(reloadable.current === original)
        let during = try Pair(reloadable.current, TestClient())
        during.handshake()

        _ = try copyFixture("server.key")
        let fresh = try reloadable.reload()
        XCTAssertTrue(reloadable.current === fresh)
        XCTAssertFalse(fresh === original)
        let after = try Pair(reloadable.current, TestClient())
        after.handshake()
        XCTAssertTrue(after.server.context === fresh)

        // The connection made before both reloads still has its context and still carries data both ways.
        XCTAssertTrue(live.server.context === original)
        try live.client.write(Array("still here".utf8))
        try live.server.writePlaintext(Array("me too".utf8))
        live.shuttle()
        XCTAssertEqual(live.serverReceived, Array("still here".utf8))
        XCTAssertEqual(live.client.received, Array("me too".utf8))
    }

    /// A reload can also apply a changed configuration, e.g. a stricter tls_version, to new connections only.
    func testReloadWithNewConfigurationAppliesToNewConnections() throws {
        let reloadable = try ReloadableTLSContext(configuration: Fixture.configuration())
        let old = try Pair(reloadable.current, TestClient(maximumVersion: TLS1_2_VERSION))
        old.handshake()
        try reloadable.reload(with: Fixture.configuration(minimumVersion: .tlsv13))
        let refused = try Pair(reloadable.current, TestClient(maximumVersion: TLS1_2_VERSION))
        refused.shuttle()
        XCTAssertNotNil(refused.serverError)
        try old.client.write([42])
        old.shuttle()
        XCTAssertEqual(old.serverReceived, [42])
    }
}
