// crlfile: a revoked client certificate fails the handshake, broken lists are refused naming the file, and a reload
// picks up a new list while a broken one keeps the previous.
import COpenSSL
import Foundation
import XCTest

@testable import MidgeTLS

final class RevocationTests: XCTestCase {
    private var scratch: String!

    override func setUpWithError() throws {
        scratch = NSTemporaryDirectory() + "midge-crl-" + UUID().uuidString
        try FileManager.default.createDirectory(atPath: scratch, withIntermediateDirectories: true)
    }

    override func tearDown() { try? FileManager.default.removeItem(atPath: scratch) }

    private func configuration(crlFile: String?) -> TLSConfiguration {
        var configuration = Fixture.configuration(requireCertificate: true)
        configuration.crlFile = crlFile
        return configuration
    }

    /// Copies a fixture (or writes `text`) to `revocation.crl` in the scratch directory, replacing what is there.
    private func placeList(fixture: String? = nil, text: String? = nil) throws -> String {
        let path = scratch + "/revocation.crl"
        try? FileManager.default.removeItem(atPath: path)
        if let fixture { try FileManager.default.copyItem(atPath: Fixture.path(fixture), toPath: path) }
        if let text { try text.write(toFile: path, atomically: true, encoding: .utf8) }
        return path
    }

    private func client(_ name: String) throws -> TestClient {
        try TestClient(certificate: Fixture.path(name + ".crt"), key: Fixture.path(name + ".key"))
    }

    /// Handshakes `name`'s certificate against `context`; nil when it passed, else the server's error.
    private func serverError(_ context: TLSContext, _ name: String) throws -> TLSError? {
        let pair = try Pair(context, client(name))
        pair.shuttle()
        return pair.serverError
    }

    func testRevokedClientCertificateFailsTheHandshake() throws {
        let context = try TLSContext(configuration: configuration(crlFile: Fixture.path("ca.crl")))
        XCTAssertEqual(
            try serverError(context, "revoked-client"), .clientCertificateRejected(reason: "certificate revoked"))
        XCTAssertNil(try serverError(context, "client"))
        XCTAssertNil(try serverError(context, "client-escaped"))
        XCTAssertEqual(ERR_peek_error(), 0)
    }

    /// ca.crl does not cover certificates of the other CA, so those are refused, as in mosquitto: revocation
    /// cannot be checked without the issuer's list.
    func testListOfAnotherIssuerRefusesItsCertificates() throws {
        var configuration = configuration(crlFile: Fixture.path("ca.crl"))
        configuration.caFile = Fixture.otherCACertificate
        let context = try TLSContext(configuration: configuration)
        guard case .clientCertificateRejected = try serverError(context, "other-client") else {
            return XCTFail("a certificate whose issuer has no list in crlfile was accepted")
        }
    }

    func testBrokenListsAreRefusedNamingTheFile() throws {
        let missing = scratch + "/missing.crl"
        let garbage = scratch + "/garbage.crl"
        try "not a revocation list\n".write(toFile: garbage, atomically: true, encoding: .utf8)
        // A good list followed by a cut-off one: refused whole, not loaded up to the damage.
        let valid = try String(contentsOfFile: Fixture.path("ca.crl"), encoding: .utf8)
        let damaged = try placeList(text: valid + "-----BEGIN X509 CRL-----\nMIIB\n")
        let cases = [(missing, "No such file"), (garbage, "no start line"), (damaged, "damaged")]
        for (path, reasonPart) in cases {
            XCTAssertThrowsError(try TLSContext(configuration: configuration(crlFile: path))) { error in
                guard case .rejectedSetting(let key, let value, let reason) = error as? TLSError else {
                    return XCTFail("expected crlfile to be named, got \(error)")
                }
                XCTAssertEqual(key, "crlfile")
                XCTAssertEqual(value, path)
                XCTAssertTrue(reason.contains(reasonPart), reason)
            }
            XCTAssertEqual(ERR_peek_error(), 0)
        }
        // A certificate is PEM too, but not a revocation list.
        XCTAssertThrowsError(try TLSContext(configuration: configuration(crlFile: Fixture.caCertificate)))
    }

    /// Without require_certificate no certificate is asked for, so a list would check nothing: refused up front.
    func testListWithoutRequiredCertificateIsRefused() {
        var configuration = Fixture.configuration()
        configuration.crlFile = Fixture.path("ca.crl")
        XCTAssertThrowsError(try TLSContext(configuration: configuration)) { error in
            guard case .invalidConfiguration(let text) = error as? TLSError else { return XCTFail("\(error)") }
            XCTAssertTrue(text.contains("crlfile") && text.contains("require_certificate"), text)
        }
    }

    /// SIGHUP: a new list revokes for new handshakes; a broken one throws and leaves the last good list in force.
    func testReloadReadsTheNewListAndKeepsThePreviousWhenBroken() throws {
        let path = try placeList(fixture: "ca-empty.crl")
        let reloadable = try ReloadableTLSContext(configuration: configuration(crlFile: path))
        let live = try Pair(reloadable.current, client("revoked-client"))
        live.handshake()

        _ = try placeList(fixture: "ca.crl")
        try reloadable.reload()
        XCTAssertEqual(
            try serverError(reloadable.current, "revoked-client"),
            .clientCertificateRejected(reason: "certificate revoked"))
        XCTAssertNil(try serverError(reloadable.current, "client"))

        let good = reloadable.current
        _ = try placeList(text: "-----BEGIN X509 CRL-----\ntruncated")
        XCTAssertThrowsError(try reloadable.reload()) { error in
            guard case .rejectedSetting(let key, let value, _) = error as? TLSError else { return XCTFail("\(error)") }
            XCTAssertEqual(key, "crlfile")
            XCTAssertEqual(value, path)
        }
        XCTAssertTrue(reloadable.current === good)
        XCTAssertNotNil(try serverError(reloadable.current, "revoked-client"))

        // A connection made before the revocation keeps working: lists apply to handshakes, as in mosquitto.
        try live.client.write([1, 2, 3])
        live.shuttle()
        XCTAssertEqual(live.serverReceived, [1, 2, 3])
    }
}
