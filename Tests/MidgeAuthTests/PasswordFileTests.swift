// Password files in mosquitto_passwd's format: known vectors, failures, and malformed lines.
import Foundation
import MQTTCodec
import MidgeCore
import XCTest

@testable import MidgeAuth

/// Hashes computed independently with Python's hashlib (salt = bytes 1...12 unless noted):
///     hashlib.sha512(b"hunter2" + salt); hashlib.pbkdf2_hmac("sha512", b"secret", salt, 101, 64)
enum PasswordVectors {
    static let sha512Hunter2 =
        "$6$AQIDBAUGBwgJCgsM$"
        + "BvAI+Qf6pQOLRl808d6QZTT3a6B0xO5zIcHD3JzY0IlwG27yGPwEz2wOVlVnzMCgfQVblzctfy3CVaRYU+etmQ=="
    static let pbkdf2Secret =
        "$7$101$AQIDBAUGBwgJCgsM$"
        + "ElKF/yT2lAwrOIqDbqwyDkdEWWjEv9xNCPp7zaw7NgKePlIs4CqOpY89+U/jSu9Z0ymojy1xkdWS2VfMzvRKZw=="
    /// 1000 iterations, 64-byte salt (bytes 0...63, as mosquitto 2.1 writes), password "pässwörd" in UTF-8.
    static let pbkdf2Unicode1000 =
        "$7$1000$AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8gISIjJCUmJygpKissLS4vMDEyMzQ1Njc4OTo7PD0+Pw==$"
        + "u2kfHFunJisdrj5AoASSxyQMBdD5HWfqWMNhZ/x2w1spBDSBFIfJUbercEctC0Fe0XP9cJqgPO/7oe8IhnY2XA=="
    /// The empty password.
    static let pbkdf2Empty =
        "$7$101$AQIDBAUGBwgJCgsM$"
        + "0nQUMj2QLzi3F9cnqUT9eQnLQacCIBA5kHUW/0QTjLk8eRHXrjwR4cbTg8AtMrLMTaEnp1lDDc5PP8FM5XBSsA=="
    /// Made by Debian's mosquitto_passwd 2.0.11: `-c -b FILE alice secret`, then `-H sha512 -b FILE bob hunter2`.
    static let madeByMosquittoPasswd = """
        alice:$7$101$Ev0h74/AJkb2QRfO$odib4uum7nXpH0zV/wtEe3zFAQfil+7N2BLZ8I6A3FVUcknaALC9unnz2nqVLg6X+PYnaU8ttgnhdqUgjoSmfg==
        bob:$6$5lqfbe0pgwzA6rJZ$hC2FZz9xN9+X/kUYCLcolxPpQfevF3YtH0QcltcCpiNwkDe0+RhqNDmWocHgetDyxpOJDtoUv/PxSvg/rmJRrA==

        """
}

final class PasswordFileTests: XCTestCase {
    private func login(_ file: PasswordFile, _ user: String?, _ password: String?) -> ConnectReturnCode {
        file.authenticate(clientID: "c", username: user, password: password.map { Array($0.utf8) })
    }

    func testPBKDF2PrimitiveMatchesPublishedVector() {
        // PBKDF2-HMAC-SHA512, P="password", S="salt", c=1 (the widely published first vector).
        let out = Crypto.pbkdf2SHA512(
            password: Array("password".utf8), salt: Array("salt".utf8), iterations: 1, length: 64)
        XCTAssertEqual(out.map { String(format: "%02x", $0) }.joined().prefix(32), "867f70cf1ade02cff3752599a3a53dc4")
    }

    func testKnownVectorsVerify() throws {
        let file = try PasswordFile(
            text: """
                six:\(PasswordVectors.sha512Hunter2)
                seven:\(PasswordVectors.pbkdf2Secret)
                unicode:\(PasswordVectors.pbkdf2Unicode1000)
                empty:\(PasswordVectors.pbkdf2Empty)

                """, source: "vectors")
        XCTAssertEqual(login(file, "six", "hunter2"), .accepted)
        XCTAssertEqual(login(file, "seven", "secret"), .accepted)
        XCTAssertEqual(login(file, "unicode", "pässwörd"), .accepted)
        XCTAssertEqual(login(file, "empty", ""), .accepted)
    }

    func testFileMadeByMosquittoPasswdVerifies() throws {
        let file = try PasswordFile(text: PasswordVectors.madeByMosquittoPasswd, source: "fixture")
        XCTAssertEqual(login(file, "alice", "secret"), .accepted)
        XCTAssertEqual(login(file, "bob", "hunter2"), .accepted)
        XCTAssertEqual(login(file, "alice", "hunter2"), .notAuthorized)
    }

    /// mosquitto 2.0 answers 0x05 "not authorised" to all three (verified against 2.0.11).
    func testFailuresAreNotAuthorized() throws {
        let file = try PasswordFile(text: "seven:\(PasswordVectors.pbkdf2Secret)\n", source: "t")
        XCTAssertEqual(login(file, "seven", "Secret"), .notAuthorized, "wrong password")
        XCTAssertEqual(login(file, "seven", "secret "), .notAuthorized, "wrong password")
        XCTAssertEqual(login(file, "nobody", "secret"), .notAuthorized, "unknown user")
        XCTAssertEqual(login(file, "nobody", nil), .notAuthorized, "unknown user, no password")
        XCTAssertEqual(login(file, "seven", nil), .notAuthorized, "missing password")
        XCTAssertEqual(login(file, "Seven", "secret"), .notAuthorized, "user names are case-sensitive")
    }

    /// Unknown users are checked against a decoy as costly as the file's costliest entry, so answer times do not
    /// tell which user names exist: whatever iteration count `-I` chose, and the default for an empty file.
    func testDecoyCostsAsMuchAsTheCostliestEntry() throws {
        let thousand = try PasswordFile(
            text: "six:\(PasswordVectors.sha512Hunter2)\nunicode:\(PasswordVectors.pbkdf2Unicode1000)\n", source: "t")
        XCTAssertEqual(thousand.decoy.kind, .pbkdf2SHA512(iterations: 1000))
        let six = try PasswordFile(text: "six:\(PasswordVectors.sha512Hunter2)\n", source: "t")
        XCTAssertEqual(six.decoy.kind, .sha512)
        let empty = try PasswordFile(text: "", source: "t")
        XCTAssertEqual(empty.decoy.kind, .pbkdf2SHA512(iterations: PasswordHash.defaultIterations))
    }

    /// Clients without a user name are left to `allowAnonymous`, as mosquitto's password check ignores them.
    func testAnonymousIsLeftToAllowAnonymous() throws {
        let file = try PasswordFile(text: "seven:\(PasswordVectors.pbkdf2Secret)\n", source: "t")
        XCTAssertEqual(login(file, nil, nil), .accepted)
    }

    /// A 0x00 byte does not end the password (mosquitto's C strings would stop there).
    func testPasswordIsComparedAsWholeBytes() throws {
        let file = try PasswordFile(text: "seven:\(PasswordVectors.pbkdf2Secret)\n", source: "t")
        let withNul = Array("secret".utf8) + [0] + Array("x".utf8)
        XCTAssertEqual(file.authenticate(clientID: "c", username: "seven", password: withNul), .notAuthorized)
    }

    /// User names compare as bytes, as in mosquitto: a canonically equivalent spelling is another user.
    func testUserNamesCompareAsBytes() throws {
        let composed = "caf\u{E9}"
        let decomposed = "cafe\u{301}"
        XCTAssertEqual(composed, decomposed, "Swift calls them equal; the file must not")
        let file = try PasswordFile(text: "\(composed):\(PasswordVectors.pbkdf2Secret)\n", source: "t")
        XCTAssertEqual(login(file, composed, "secret"), .accepted)
        XCTAssertEqual(login(file, decomposed, "secret"), .notAuthorized)
        // Both spellings may be defined separately.
        let both = try PasswordFile(
            text: "\(composed):\(PasswordVectors.pbkdf2Secret)\n\(decomposed):\(PasswordVectors.sha512Hunter2)\n",
            source: "t")
        XCTAssertEqual(login(both, decomposed, "hunter2"), .accepted)
        XCTAssertEqual(login(both, composed, "hunter2"), .notAuthorized)
    }

    func testCommentsBlankLinesWhitespaceAndCRLF() throws {
        let file = try PasswordFile(
            text: "# users\r\n\r\n   \n  seven : \(PasswordVectors.pbkdf2Secret)  \r\n\t# indented comment\n",
            source: "t")
        XCTAssertEqual(file.count, 1)
        XCTAssertEqual(login(file, "seven", "secret"), .accepted)
    }

    func testEmptyFileHasNoUsers() throws {
        let file = try PasswordFile(text: "", source: "t")
        XCTAssertEqual(login(file, "anyone", "x"), .notAuthorized)
    }

    func testMalformedLinesNameTheLine() {
        let good = "seven:\(PasswordVectors.pbkdf2Secret)"
        let salt = "AQIDBAUGBwgJCgsM"
        let hash = "ElKF/yT2lAwrOIqDbqwyDkdEWWjEv9xNCPp7zaw7NgKePlIs4CqOpY89+U/jSu9Z0ymojy1xkdWS2VfMzvRKZw=="
        let cases: [(line: String, message: String)] = [
            ("no-colon-here", "expected USER:HASH"),
            (":\(PasswordVectors.pbkdf2Secret)", "empty user name"),
            ("bob:", "has no password hash"),
            ("bob:plaintext", "not hashed"),
            ("bob:$5$\(salt)$\(hash)", "unknown hash type"),
            ("bob:$7$\(salt)$\(hash)", "expected $7$ITERATIONS$SALT$HASH"),
            ("bob:$6$101$\(salt)$\(hash)", "expected $6$SALT$HASH"),
            ("bob:$7$0$\(salt)$\(hash)", "iteration count"),
            ("bob:$7$abc$\(salt)$\(hash)", "iteration count"),
            ("bob:$7$99999999999$\(salt)$\(hash)", "iteration count"),
            ("bob:$7$101$$\(hash)", "salt"),
            ("bob:$7$101$AQIDBA==$\(hash)", "salt is not base64 of 12 or 64 bytes"),
            ("bob:$7$101$not*base64$\(hash)", "salt"),
            ("bob:$7$101$\(salt)$AQID", "hash is not base64 of 64 bytes"),
            ("bob:$7$101$\(salt)$\(hash):extra", "unexpected ':'"),
        ]
        for (line, message) in cases {
            let text = "# header\n\(good)\n\(line)\n"
            XCTAssertThrowsError(try PasswordFile(text: text, source: "pw.txt"), line) { error in
                guard let error = error as? AuthFileError else { return XCTFail("\(error)") }
                XCTAssertEqual(error.file, "pw.txt")
                XCTAssertEqual(error.line, 3, line)
                XCTAssertTrue(error.message.contains(message), "\(line): \(error.message)")
                XCTAssertTrue(error.description.hasPrefix("pw.txt:3: "), error.description)
            }
        }
    }

    func testDuplicateUserIsAnError() {
        let text =
            "seven:\(PasswordVectors.pbkdf2Secret)\nother:\(PasswordVectors.sha512Hunter2)\n"
            + "seven:\(PasswordVectors.sha512Hunter2)\n"
        XCTAssertThrowsError(try PasswordFile(text: text, source: "t")) { error in
            XCTAssertEqual((error as? AuthFileError)?.line, 3)
            XCTAssertTrue((error as? AuthFileError)?.message.contains("line 1") ?? false, "\(error)")
        }
    }

    func testInvalidUTF8UserNameIsAnError() throws {
        let bytes =
            Array("ok:\(PasswordVectors.pbkdf2Secret)\n".utf8) + [0xFF, 0xFE]
            + Array(":\(PasswordVectors.pbkdf2Secret)\n".utf8)
        let scratch = try ScratchDirectory()
        defer { scratch.remove() }
        let path = scratch.file("pw")
        try Data(bytes).write(to: URL(fileURLWithPath: path))
        XCTAssertThrowsError(try PasswordFile(path: path)) { error in
            XCTAssertEqual((error as? AuthFileError)?.line, 2)
        }
    }

    func testMissingFileIsAnErrorWithoutLine() {
        XCTAssertThrowsError(try PasswordFile(path: "/nonexistent/midge/pw")) { error in
            guard let error = error as? AuthFileError else { return XCTFail("\(error)") }
            XCTAssertNil(error.line)
            XCTAssertEqual(error.file, "/nonexistent/midge/pw")
            XCTAssertTrue(error.description.contains("cannot open"), error.description)
        }
    }

    func testHashRoundTripsThroughItsEncoding() throws {
        let made = PasswordHash.make(password: Array("pw".utf8))
        XCTAssertEqual(made.salt.count, 12)
        XCTAssertEqual(made.kind, .pbkdf2SHA512(iterations: 101))
        XCTAssertTrue(made.encoded.hasPrefix("$7$101$"))
        let parsed = try PasswordHash.parse(Array(made.encoded.utf8)[...]).get()
        XCTAssertEqual(parsed, made)
        XCTAssertTrue(parsed.verify(Array("pw".utf8)))
        XCTAssertFalse(parsed.verify(Array("pW".utf8)))
        // Two hashes of the same password differ by their random salt.
        XCTAssertNotEqual(PasswordHash.make(password: Array("pw".utf8)).encoded, made.encoded)
    }

    func testConcurrentVerificationIsSafe() throws {
        let file = try PasswordFile(text: PasswordVectors.madeByMosquittoPasswd, source: "t")
        let results = UnsafeSendableBox(Array(repeating: ConnectReturnCode.serverUnavailable, count: 16))
        DispatchQueue.concurrentPerform(iterations: 16) { index in
            let ok = index % 2 == 0
            let code = file.authenticate(
                clientID: "c\(index)", username: "alice", password: Array((ok ? "secret" : "nope").utf8))
            results.set(index, code)
        }
        for index in 0..<16 {
            XCTAssertEqual(results.get(index), index % 2 == 0 ? .accepted : .notAuthorized)
        }
    }
}

/// A lock-protected array for collecting results from `concurrentPerform`.
final class UnsafeSendableBox<Element: Sendable>: @unchecked Sendable {
    private var values: [Element]
    private let lock = NSLock()
    init(_ values: [Element]) { self.values = values }
    func set(_ index: Int, _ value: Element) {
        lock.lock()
        values[index] = value
        lock.unlock()
    }
    func get(_ index: Int) -> Element {
        lock.lock()
        defer { lock.unlock() }
        return values[index]
    }
}
