// `midge passwd`: creating, updating and deleting entries, argument errors, and the terminal prompt.
import Foundation
import Glibc
import MQTTCodec
import XCTest

@testable import MidgeAuth

/// Answers prompts from a script and records what would have gone to stderr.
final class ScriptedConsole: PasswordConsole, @unchecked Sendable {
    var answers: [String?]
    var prompts: [String] = []
    var errors: [String] = []
    init(_ answers: [String?]) { self.answers = answers }
    func readPassword(prompt: String) -> String? {
        prompts.append(prompt)
        return answers.isEmpty ? nil : answers.removeFirst()
    }
    func error(_ message: String) { errors.append(message) }
}

final class PasswordCommandTests: XCTestCase {
    private var scratch: ScratchDirectory!

    override func setUpWithError() throws { scratch = try ScratchDirectory() }
    override func tearDown() { scratch.remove() }

    private func run(_ arguments: [String], answers: [String?] = []) -> (status: Int32, console: ScriptedConsole) {
        let console = ScriptedConsole(answers)
        return (PasswordCommand.run(arguments: arguments, console: console), console)
    }

    private func verify(_ path: String, _ user: String, _ password: String) throws -> ConnectReturnCode {
        try PasswordFile(path: path).authenticate(clientID: "c", username: user, password: Array(password.utf8))
    }

    func testCreateWritesOnePBKDF2Entry() throws {
        let path = scratch.file("pw")
        XCTAssertEqual(PasswordCommand.run(arguments: ["-c", "-b", path, "alice", "s3cret"]), 0)
        let text = try scratch.read("pw")
        XCTAssertTrue(text.hasPrefix("alice:$7$101$"), text)
        XCTAssertTrue(text.hasSuffix("==\n"), text)
        XCTAssertEqual(text.split(separator: "\n").count, 1)
        // `$7$101$` + 16 base64 characters of a 12-byte salt + `$` + 88 of a 64-byte hash.
        XCTAssertEqual(text.count, "alice:".count + 7 + 16 + 1 + 88 + 1)
        XCTAssertEqual(try verify(path, "alice", "s3cret"), .accepted)
        XCTAssertEqual(try verify(path, "alice", "s3cre"), .notAuthorized)
    }

    func testCreateOverwritesAnExistingFile() throws {
        let path = scratch.file("pw")
        XCTAssertEqual(run(["-c", "-b", path, "alice", "a"]).status, 0)
        XCTAssertEqual(run(["-c", "-b", path, "bob", "b"]).status, 0)
        XCTAssertEqual(try verify(path, "bob", "b"), .accepted)
        XCTAssertEqual(try verify(path, "alice", "a"), .notAuthorized)
    }

    func testUpdateReplacesInPlaceAndKeepsOtherLines() throws {
        let path = try scratch.write(
            "pw", "# managed by hand\nseven:\(PasswordVectors.pbkdf2Secret)\n\nsix:\(PasswordVectors.sha512Hunter2)\n")
        XCTAssertEqual(run(["-b", path, "seven", "changed"]).status, 0)
        XCTAssertEqual(run(["-b", path, "new", "fresh"]).status, 0)
        let lines = try scratch.read("pw").components(separatedBy: "\n")
        XCTAssertEqual(lines[0], "# managed by hand")
        XCTAssertTrue(lines[1].hasPrefix("seven:$7$101$"))
        XCTAssertEqual(lines[2], "")
        XCTAssertEqual(lines[3], "six:\(PasswordVectors.sha512Hunter2)")
        XCTAssertTrue(lines[4].hasPrefix("new:$7$101$"))
        XCTAssertEqual(lines.count, 6)  // the file ends with a newline
        XCTAssertEqual(try verify(path, "seven", "changed"), .accepted)
        XCTAssertEqual(try verify(path, "seven", "secret"), .notAuthorized)
        XCTAssertEqual(try verify(path, "six", "hunter2"), .accepted)
        XCTAssertEqual(try verify(path, "new", "fresh"), .accepted)
    }

    func testDeleteRemovesOnlyThatUser() throws {
        let path = try scratch.write(
            "pw", "seven:\(PasswordVectors.pbkdf2Secret)\nsix:\(PasswordVectors.sha512Hunter2)\n")
        XCTAssertEqual(run(["-D", path, "seven"]).status, 0)
        XCTAssertEqual(try scratch.read("pw"), "six:\(PasswordVectors.sha512Hunter2)\n")
        let missing = run(["-D", path, "seven"])
        XCTAssertEqual(missing.status, 1)
        XCTAssertEqual(missing.console.errors, ["Warning: User seven not found in password file."])
    }

    func testIterationsOption() throws {
        let path = scratch.file("pw")
        XCTAssertEqual(run(["-c", "-I", "1000", "-b", path, "alice", "pw"]).status, 0)
        XCTAssertTrue(try scratch.read("pw").hasPrefix("alice:$7$1000$"))
        XCTAssertEqual(try verify(path, "alice", "pw"), .accepted)
    }

    func testInteractivePasswordIsAskedTwice() throws {
        let path = scratch.file("pw")
        let result = run(["-c", path, "alice"], answers: ["typed", "typed"])
        XCTAssertEqual(result.status, 0, "\(result.console.errors)")
        XCTAssertEqual(result.console.prompts, ["Password: ", "Reenter password: "])
        XCTAssertEqual(try verify(path, "alice", "typed"), .accepted)
    }

    func testInteractiveMismatchEmptyAndEndOfInputFail() {
        let path = scratch.file("pw")
        let mismatch = run(["-c", path, "alice"], answers: ["one", "two"])
        XCTAssertEqual(mismatch.status, 1)
        XCTAssertEqual(mismatch.console.errors, ["Error: Passwords do not match."])
        let empty = run(["-c", path, "alice"], answers: ["", ""])
        XCTAssertEqual(empty.status, 1)
        XCTAssertEqual(empty.console.errors, ["Error: Empty password."])
        let closed = run(["-c", path, "alice"], answers: [nil])
        XCTAssertEqual(closed.status, 1)
        XCTAssertFalse(FileManager.default.fileExists(atPath: path), "nothing is written after a failure")
    }

    /// As with mosquitto_passwd, `-b` may set an empty password (MQTT allows one).
    func testBatchModeAllowsEmptyPassword() throws {
        let path = scratch.file("pw")
        XCTAssertEqual(run(["-c", "-b", path, "alice", ""]).status, 0)
        XCTAssertEqual(try verify(path, "alice", ""), .accepted)
    }

    func testArgumentErrors() {
        let path = scratch.file("pw")
        let cases: [([String], String)] = [
            ([], "expected FILE USER"),
            (["-c", "-D", path, "a"], "-c and -D cannot be used together"),
            (["-b", "-D", path, "a", "p"], "-b and -D cannot be used together"),
            (["-b", path, "a"], "expected FILE USER PASSWORD"),
            ([path, "a", "extra"], "expected FILE USER"),
            (["-x", path, "a"], "unknown option -x"),
            (["-I", "0", path, "a"], "-I needs a number"),
            (["-c", "-b", path, "a:b", "p"], "must not contain the ':' character"),
            (["-c", "-b", path, "#a", "p"], "must not start with '#'"),
            (["-c", "-b", path, " a", "p"], "must not start or end with a space"),
            (["-c", "-b", path, "a\tb", "p"], "control characters"),
            (["-c", "-b", path, "", "p"], "must not be empty"),
            (["-b", path, "a", "p"], "cannot open"),
        ]
        for (arguments, message) in cases {
            let result = run(arguments)
            XCTAssertEqual(result.status, 1, "\(arguments)")
            XCTAssertTrue(
                result.console.errors.first?.contains(message) ?? false, "\(arguments): \(result.console.errors)")
        }
        XCTAssertFalse(FileManager.default.fileExists(atPath: path))
    }

    func testCorruptFileIsNotEdited() throws {
        let original = "seven:\(PasswordVectors.pbkdf2Secret)\ngarbage line\n"
        let path = try scratch.write("pw", original)
        let result = run(["-b", path, "new", "pw"])
        XCTAssertEqual(result.status, 1)
        XCTAssertTrue(result.console.errors.first?.contains("\(path):2:") ?? false, "\(result.console.errors)")
        XCTAssertEqual(try scratch.read("pw"), original)
    }

    func testNewFileModeFollowsUmaskAndExistingModeIsKept() throws {
        let path = scratch.file("pw")
        let previous = umask(0o027)
        defer { umask(previous) }
        XCTAssertEqual(run(["-c", "-b", path, "alice", "pw"]).status, 0)
        XCTAssertEqual(try mode(path), 0o640)
        XCTAssertEqual(chmod(path, 0o604), 0)
        XCTAssertEqual(run(["-b", path, "bob", "pw"]).status, 0)
        XCTAssertEqual(try mode(path), 0o604)
        let leftovers = try FileManager.default.contentsOfDirectory(atPath: scratch.path)
        XCTAssertEqual(leftovers, ["pw"], "no temporary file is left behind")
    }

    func testSymlinkIsKeptAndItsTargetUpdated() throws {
        let target = try scratch.write("real", "seven:\(PasswordVectors.pbkdf2Secret)\n")
        let link = scratch.file("link")
        XCTAssertEqual(symlink(target, link), 0)
        XCTAssertEqual(run(["-b", link, "bob", "pw"]).status, 0)
        XCTAssertEqual(try FileManager.default.destinationOfSymbolicLink(atPath: link), target)
        XCTAssertEqual(try verify(target, "bob", "pw"), .accepted)
        XCTAssertEqual(try verify(target, "seven", "secret"), .accepted)
    }

    private func mode(_ path: String) throws -> mode_t {
        var info = stat()
        guard stat(path, &info) == 0 else { throw CocoaError(.fileReadNoSuchFile) }
        return info.st_mode & 0o7777
    }
}
