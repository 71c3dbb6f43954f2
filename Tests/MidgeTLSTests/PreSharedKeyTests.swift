// TLS-PSK (psk_hint, psk_file): the file format and its refusals by line, keys turned into bytes as libmosquitto does,
// handshakes with the right key, a wrong one and an unknown identity over TLS 1.3 and 1.2, and SIGHUP reloads.
import COpenSSL
import Foundation
import XCTest

@testable import MidgeTLS

final class PreSharedKeyTests: XCTestCase {
    private var scratch: String!

    override func setUpWithError() throws {
        scratch = NSTemporaryDirectory() + "midge-psk-" + UUID().uuidString
        try FileManager.default.createDirectory(atPath: scratch, withIntermediateDirectories: true)
    }

    override func tearDown() { try? FileManager.default.removeItem(atPath: scratch) }

    private func writeKeys(_ text: String) throws -> String {
        let path = scratch + "/psk"
        try text.write(toFile: path, atomically: true, encoding: .utf8)
        return path
    }

    private func configuration(_ path: String, hint: String = "midge-hint") -> TLSConfiguration {
        TLSConfiguration(
            certificateFile: "", privateKeyFile: "", useIdentityAsUsername: true,
            preSharedKeys: PreSharedKeySettings(hint: hint, file: path))
    }

    private func pair(_ context: TLSContext, _ identity: String, _ key: [UInt8], tls12: Bool = false) throws -> Pair {
        let credential = PSKCredential(identity: identity, key: key)
        let client = try TestClient(
            trusting: nil, maximumVersion: tls12 ? TLS1_2_VERSION : nil, psk: credential)
        return try Pair(context, client)
    }

    // MARK: - The file

    /// libmosquitto turns `--psk` into bytes with BN_hex2bn after keeping leading "00" pairs; the broker must do the
    /// same with the file, or an odd-length key like mosquitto's own example "12345" would never match.
    func testKeysBecomeBytesAsLibmosquittoMakesThem() {
        let cases: [(String, [UInt8]?)] = [
            ("0123456789abcdef", [0x01, 0x23, 0x45, 0x67, 0x89, 0xAB, 0xCD, 0xEF]),
            ("12345", [0x01, 0x23, 0x45]), ("DEADbeef", [0xDE, 0xAD, 0xBE, 0xEF]),
            ("00ab", [0x00, 0xAB]), ("000ab", [0x00, 0xAB]), ("0000", [0x00, 0x00]), ("0ab", [0xAB]),
            ("0x12", nil), ("12 34", nil), ("g1", nil),
        ]
        for (hex, bytes) in cases {
            XCTAssertEqual(PreSharedKeyFile.keyBytes(Array(hex.utf8)[...]), bytes, hex)
        }
    }

    func testFileFormat() throws {
        let text = "# devices\n\n  sensor-1 : 0123456789abcdef \r\neasy:12345\ngateway:00ff\n"
        let keys = try PreSharedKeyFile(path: writeKeys(text))
        XCTAssertEqual(keys.count, 3)
        XCTAssertEqual(keys.key(for: Array("sensor-1".utf8)), [0x01, 0x23, 0x45, 0x67, 0x89, 0xAB, 0xCD, 0xEF])
        XCTAssertEqual(keys.key(for: Array("easy".utf8)), [0x01, 0x23, 0x45])
        XCTAssertNil(keys.key(for: Array("Easy".utf8)))
    }

    /// Every broken line is refused with the file and its line; mosquitto skips a line without ':' and takes a
    /// repeated identity silently, which could lock a device out unnoticed.
    func testBrokenLinesAreNamed() throws {
        let cases: [(String, String)] = [
            ("ok:00ff\nno colon here\n", "line 2: expected IDENTITY:HEXKEY"),
            (":00ff\n", "line 1: empty identity"),
            ("a:00ff\n# c\na:11ff\n", "line 3: identity \"a\" is already given on line 1"),
            ("a:\n", "line 1: identity \"a\" has no key"),
            ("a:0x00ff\n", "line 1: the key of \"a\" is not hexadecimal"),
            ("a:0\n", "line 1: the key of \"a\" must be 1 to 512 bytes, it is 0"),
            ("a:" + String(repeating: "ab", count: 513), "line 1: the key of \"a\" must be 1 to 512 bytes, it is 513"),
        ]
        for (text, reason) in cases {
            let path = try writeKeys(text)
            XCTAssertThrowsError(try PreSharedKeyFile(path: path), text) { error in
                XCTAssertTrue(
                    String(describing: error).hasPrefix("psk_file \"\(path)\" rejected: " + reason),
                    "\(text.debugDescription): \(error)")
            }
        }
        XCTAssertThrowsError(try PreSharedKeyFile(path: scratch + "/missing")) { error in
            XCTAssertTrue(String(describing: error).contains("No such file"), "\(error)")
        }
        XCTAssertThrowsError(try PreSharedKeyFile(path: scratch)) { error in
            guard case .rejectedSetting(let key, _, _) = error as? TLSError else { return XCTFail("\(error)") }
            XCTAssertEqual(key, "psk_file")
        }
        XCTAssertEqual(ERR_peek_error(), 0)
    }

    func testCertificateKeysAreRefusedOnAPSKListener() throws {
        var withCertificate = configuration(try writeKeys("a:00ff\n"))
        withCertificate.certificateFile = Fixture.serverCertificate
        withCertificate.privateKeyFile = Fixture.serverKey
        XCTAssertThrowsError(try TLSContext(configuration: withCertificate))
        var withCA = configuration(try writeKeys("a:00ff\n"))
        withCA.caFile = Fixture.caCertificate
        XCTAssertThrowsError(try TLSContext(configuration: withCA)) { error in
            guard case .invalidConfiguration(let text) = error as? TLSError else { return XCTFail("\(error)") }
            XCTAssertTrue(text.contains("psk_hint"), text)
        }
    }

    // MARK: - Handshakes

    /// mosquitto_pub --psk offers TLS 1.3 first; OpenSSL's PSK callback serves it with a SHA-256 suite.
    func testRightKeyCompletesTLS13AndNamesTheIdentity() throws {
        let context = try TLSContext(configuration: configuration(try writeKeys("dev1:0123456789abcdef\n")))
        let pair = try pair(context, "dev1", [0x01, 0x23, 0x45, 0x67, 0x89, 0xAB, 0xCD, 0xEF])
        pair.handshake()
        XCTAssertEqual(pair.server.protocolVersion, "TLSv1.3")
        XCTAssertEqual(pair.server.pskIdentity, "dev1")
        XCTAssertEqual(pair.server.peerIdentity(.pskIdentity), "dev1")
        XCTAssertNil(pair.server.peerCertificateSubject)
        try pair.client.write([7, 8, 9])
        pair.shuttle()
        XCTAssertEqual(pair.serverReceived, [7, 8, 9])
    }

    /// TLS 1.2: the suite mosquitto 2.0 picks from its default list for an OpenSSL client, and the hint reaches
    /// the client.
    func testRightKeyCompletesTLS12WithAPSKSuiteAndTheHint() throws {
        let context = try TLSContext(configuration: configuration(try writeKeys("dev1:00ff\n")))
        let credential = PSKCredential(identity: "dev1", key: [0x00, 0xFF])
        let pair = try Pair(context, TestClient(trusting: nil, maximumVersion: TLS1_2_VERSION, psk: credential))
        pair.handshake()
        XCTAssertEqual(pair.server.protocolVersion, "TLSv1.2")
        XCTAssertEqual(pair.server.cipherName, "DHE-PSK-AES256-GCM-SHA384")
        XCTAssertEqual(credential.receivedHint, "midge-hint")
        XCTAssertEqual(pair.server.pskIdentity, "dev1")
    }

    func testWrongKeyUnknownIdentityAndNoPSKAreRefused() throws {
        let context = try TLSContext(configuration: configuration(try writeKeys("dev1:0123456789abcdef\n")))
        for tls12 in [false, true] {
            let wrongKey = try pair(context, "dev1", [0x01, 0x23, 0x45, 0x67, 0x89, 0xAB, 0xCD, 0xEE], tls12: tls12)
            wrongKey.shuttle()
            XCTAssertFalse(wrongKey.server.isHandshakeComplete)
            XCTAssertNil(wrongKey.server.pskIdentity)
            guard case .handshakeFailed(let reason) = wrongKey.serverError else {
                return XCTFail("wrong key, TLS 1.2 \(tls12): \(String(describing: wrongKey.serverError))")
            }
            XCTAssertTrue(reason.hasPrefix("PSK identity \"dev1\" is known but its key does not match"), reason)
            let unknown = try pair(context, "dev2", [0x01, 0x23, 0x45, 0x67, 0x89, 0xAB, 0xCD, 0xEF], tls12: tls12)
            unknown.shuttle()
            guard case .handshakeFailed(let reason) = unknown.serverError else {
                return XCTFail("unknown identity, TLS 1.2 \(tls12): \(String(describing: unknown.serverError))")
            }
            XCTAssertTrue(reason.hasPrefix("the client named no PSK identity of psk_file"), reason)
        }
        // A certificate client: the listener has no certificate to show it.
        let plain = try Pair(context, TestClient())
        plain.shuttle()
        XCTAssertNotNil(plain.serverError)
        XCTAssertEqual(ERR_peek_error(), 0)
    }

    /// SIGHUP: an identity added to the file works for new handshakes; a broken file keeps the previous keys.
    func testReloadReadsTheFileAndKeepsThePreviousWhenBroken() throws {
        let path = try writeKeys("dev1:00aa\n")
        let reloadable = try ReloadableTLSContext(configuration: configuration(path))
        let live = try pair(reloadable.current, "dev1", [0x00, 0xAA])
        live.handshake()

        _ = try writeKeys("dev1:00aa\ndev2:00bb\n")
        try reloadable.reload()
        try pair(reloadable.current, "dev2", [0x00, 0xBB]).handshake()

        let good = reloadable.current
        _ = try writeKeys("dev1:00aa\ndev3:not-hex\n")
        XCTAssertThrowsError(try reloadable.reload()) { error in
            XCTAssertTrue(String(describing: error).contains("line 2"), "\(error)")
        }
        XCTAssertTrue(reloadable.current === good)
        try pair(reloadable.current, "dev2", [0x00, 0xBB]).handshake()

        // Removing an identity shuts it out of new handshakes only: no resumption can bring it back.
        _ = try writeKeys("dev2:00bb\n")
        try reloadable.reload()
        let removed = try pair(reloadable.current, "dev1", [0x00, 0xAA])
        removed.shuttle()
        XCTAssertNotNil(removed.serverError)
        try live.client.write([1])
        live.shuttle()
        XCTAssertEqual(live.serverReceived, [1])
    }
}
