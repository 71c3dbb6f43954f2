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

    func testPSKListenerWithItsOwnFileOrTheSharedOne() throws {
        let own = try tls("listener 8884\npsk_hint midge one\npsk_file /psk\nuse_identity_as_username true\n")
        XCTAssertEqual(own?.preSharedKeys, PreSharedKeySettings(hint: "midge one", file: "/psk"))
        XCTAssertEqual(own?.usernameSource, .pskIdentity)
        XCTAssertEqual(own?.certificateFile, "")
        // Before the first listener line: mosquitto's global psk_file, for every psk_hint listener without its own.
        let parsed = try Configuration.parse(
            text: "psk_file /shared\nlistener 8884\npsk_hint a\nlistener 8885\npsk_hint b\npsk_file /b\n",
            fileName: "test.conf")
        XCTAssertEqual(parsed.listeners.map { $0.tls?.preSharedKeys?.file }, ["/shared", "/b"])
        XCTAssertEqual(parsed.listeners.count, 2, "a psk_file before any listener makes no default listener")
    }

    func testPSKCombinationsThatCannotWorkAreRefused() {
        let psk = "listener 8884\npsk_hint h\npsk_file /psk\n"
        XCTAssertTrue(refusal(psk + certificate, key: "certfile")?.contains("not both") ?? false)
        for key in [
            "cafile /ca.crt", "capath /ca", "require_certificate true", "crlfile /ca.crl",
            "use_subject_as_username true",
        ] {
            let name = String(key.prefix { $0 != " " })
            let message = refusal(psk + key + "\n", key: name)
            XCTAssertTrue(message?.contains("PSK clients present no certificate") ?? false, message ?? "")
        }
        XCTAssertTrue(refusal("listener 8884\npsk_hint h\n", key: "psk_hint")?.contains("needs psk_file") ?? false)
        XCTAssertTrue(
            refusal("listener 8884\n" + certificate + "psk_file /psk\n", key: "psk_file")?.contains("psk_hint")
                ?? false)
        // A shared psk_file that no listener can use is named on its own line.
        let unused = "listener 1883\npsk_file /psk\n"
        _ = refusal(unused, key: "psk_file")
        do {
            _ = try Configuration.parse(text: "# psk\npsk_file /psk\nlistener 1883\n", fileName: "test.conf")
            XCTFail("an unused shared psk_file was accepted")
        } catch {
            XCTAssertEqual(error.line, 2)
            XCTAssertEqual(error.key, "psk_file")
        }
    }
}
