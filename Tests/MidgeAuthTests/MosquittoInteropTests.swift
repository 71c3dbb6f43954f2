// Password files crossing between midge and mosquitto 2.0: made by mosquitto_passwd and read by Midge,
// made by `midge passwd` and accepted by mosquitto's own broker. Skipped when mosquitto is not installed.
import Foundation
import Glibc
import MQTTCodec
import MQTTTestSupport
import XCTest

@testable import MidgeAuth

final class MosquittoInteropTests: XCTestCase {
    private var scratch: ScratchDirectory!

    override func setUpWithError() throws { scratch = try ScratchDirectory() }
    override func tearDown() { scratch.remove() }

    private func tool(_ name: String) throws -> String {
        guard let path = findExecutable(name) else {
            throw XCTSkip("\(name) is not installed (Debian: apt-get install mosquitto mosquitto-clients)")
        }
        return path
    }

    func testFileMadeByMosquittoPasswdVerifies() throws {
        let mosquittoPasswd = try tool("mosquitto_passwd")
        let path = scratch.file("pw")
        XCTAssertEqual(try runProcess(mosquittoPasswd, ["-c", "-b", path, "alice", "pä ss:wörd"]).status, 0)
        XCTAssertEqual(try runProcess(mosquittoPasswd, ["-b", path, "bob", "hunter2"]).status, 0)
        // mosquitto 1.x's format, which mosquitto_passwd 2.0 still writes on request.
        XCTAssertEqual(try runProcess(mosquittoPasswd, ["-H", "sha512", "-b", path, "carol", "old"]).status, 0)
        let file = try PasswordFile(path: path)
        func login(_ user: String, _ password: String) -> ConnectReturnCode {
            file.authenticate(clientID: "c", username: user, password: Array(password.utf8))
        }
        XCTAssertEqual(login("alice", "pä ss:wörd"), .accepted)
        XCTAssertEqual(login("bob", "hunter2"), .accepted)
        XCTAssertEqual(login("carol", "old"), .accepted)
        XCTAssertEqual(login("alice", "hunter2"), .notAuthorized)
        XCTAssertEqual(login("dave", "hunter2"), .notAuthorized)
    }

    /// mosquitto_passwd can keep editing a file `midge passwd` made, and the result still reads in Midge.
    func testMosquittoPasswdEditsFileMadeByMidge() throws {
        let mosquittoPasswd = try tool("mosquitto_passwd")
        let path = scratch.file("pw")
        XCTAssertEqual(PasswordCommand.run(arguments: ["-c", "-b", path, "alice", "one"]), 0)
        let added = try runProcess(mosquittoPasswd, ["-b", path, "bob", "two"])
        XCTAssertEqual(added.status, 0, added.output)
        let file = try PasswordFile(path: path)
        XCTAssertEqual(file.authenticate(clientID: "c", username: "alice", password: Array("one".utf8)), .accepted)
        XCTAssertEqual(file.authenticate(clientID: "c", username: "bob", password: Array("two".utf8)), .accepted)
    }

    /// The strongest check that the format is right: mosquitto's broker accepts a `midge passwd` file.
    func testMosquittoBrokerAcceptsFileMadeByMidge() throws {
        let mosquitto = try tool("mosquitto")
        let mosquittoPub = try tool("mosquitto_pub")
        let path = scratch.file("pw")
        XCTAssertEqual(PasswordCommand.run(arguments: ["-c", "-b", path, "alice", "s3cret"]), 0)
        XCTAssertEqual(PasswordCommand.run(arguments: ["-b", path, "bob", "pä ss"]), 0)
        // Readable by the unprivileged user mosquitto switches to when started as root.
        XCTAssertEqual(chmod(scratch.path, 0o755), 0)
        XCTAssertEqual(chmod(path, 0o644), 0)

        let port = try freeLoopbackPort()
        let config = try scratch.write(
            "mosquitto.conf",
            "listener \(port) 127.0.0.1\nallow_anonymous false\npassword_file \(path)\n")
        let broker = Process()
        broker.executableURL = URL(fileURLWithPath: mosquitto)
        broker.arguments = ["-c", config]
        let log = Pipe()
        broker.standardOutput = log
        broker.standardError = log
        try broker.run()
        defer {
            if broker.isRunning { broker.terminate() }
            broker.waitUntilExit()
        }
        try waitUntilListening(port: port, process: broker)

        func connack(_ arguments: [String]) throws -> String {
            let result = try runProcess(
                mosquittoPub,
                ["-h", "127.0.0.1", "-p", "\(port)", "-V", "mqttv311", "-t", "t", "-m", "m", "-d"] + arguments)
            return result.output.components(separatedBy: "\n").first { $0.contains("CONNACK") } ?? result.output
        }
        XCTAssertTrue(try connack(["-u", "alice", "-P", "s3cret"]).contains("CONNACK (0)"))
        XCTAssertTrue(try connack(["-u", "bob", "-P", "pä ss"]).contains("CONNACK (0)"))
        // mosquitto's own answer to bad credentials, which PasswordFile matches: 5, not 4.
        XCTAssertTrue(try connack(["-u", "alice", "-P", "wrong"]).contains("CONNACK (5)"))
        XCTAssertTrue(try connack(["-u", "nobody", "-P", "s3cret"]).contains("CONNACK (5)"))
    }

    /// A port the kernel just handed out on 127.0.0.1; another process could take it in between, which
    /// would show as the broker failing to start, not as a wrong result.
    private func freeLoopbackPort() throws -> UInt16 {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw XCTSkip("no socket") }
        defer { close(fd) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        address.sin_port = 0
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let bound = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { pointer -> Bool in
                bind(fd, pointer, length) == 0 && getsockname(fd, pointer, &length) == 0
            }
        }
        guard bound else { throw XCTSkip("cannot bind a loopback port") }
        return UInt16(bigEndian: address.sin_port)
    }
}
