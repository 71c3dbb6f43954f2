// The TLS keys of mosquitto 2.0's "drop-in, part 2" in the configuration file: what each sets on its listener and the
// combinations refused because they could not do what they say.
import MidgeTLS
import XCTest

@testable import MidgeServer

final class TLSKeyConfigurationTests: XCTestCase {
    private let certificate = "certfile /c.crt\nkeyfile /c.key\n"

    private func tls(_ text: String) throws -> TLSConfiguration? {
        try Configuration.parse(text: text, fileName: "test.conf").listeners.last?.tls
    }

    /// The error for `text`, checked to name `key`; nil (and a failure) when it parsed.
    private func refusal(_ text: String, key: String, file: StaticString = #filePath, line: UInt = #line) -> String? {
        do {
            _ = try Configuration.parse(text: text, fileName: "test.conf")
            XCTFail("expected \(key) to be refused in \(text.debugDescription)", file: file, line: line)
            return nil
        } catch {
            XCTAssertEqual(error.key, key, file: file, line: line)
            XCTAssertEqual(error.fileName, "test.conf", file: file, line: line)
            return error.message
        }
    }

    func testCRLFileOnAListenerThatVerifiesClients() throws {
        let text = "listener 8883\n" + certificate + "cafile /ca.crt\nrequire_certificate true\ncrlfile /ca.crl\n"
        XCTAssertEqual(try tls(text)?.crlFile, "/ca.crl")
        XCTAssertNil(try tls("listener 8883\n" + certificate)?.crlFile)
    }

    func testCRLFileWithoutRequiredCertificateIsRefused() {
        let message = refusal("listener 8883\n" + certificate + "cafile /ca.crt\ncrlfile /ca.crl\n", key: "crlfile")
        XCTAssertTrue(message?.contains("require_certificate true") ?? false, message ?? "")
        // And without any certificate at all the listener is not even TLS.
        _ = refusal("listener 8883\ncrlfile /ca.crl\n", key: "certfile")
    }

    func testSubjectAsUsername() throws {
        let verified = "listener 8883\n" + certificate + "cafile /ca.crt\nrequire_certificate true\n"
        XCTAssertEqual(try tls(verified + "use_subject_as_username true\n")?.usernameSource, .certificateSubject)
        XCTAssertEqual(
            try tls(verified + "use_subject_as_username true\nuse_identity_as_username true\n")?.usernameSource,
            .certificateCommonName)
        XCTAssertNil(try tls(verified + "use_subject_as_username false\n")?.usernameSource)
        let unverified = "listener 8883\n" + certificate + "use_subject_as_username true\n"
        let message = refusal(unverified, key: "use_subject_as_username")
        XCTAssertTrue(message?.contains("require_certificate true") ?? false, message ?? "")
    }
}
