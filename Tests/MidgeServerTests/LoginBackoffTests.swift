// The failed-login back-off: keyed by address and user name, so one client's bad passwords cannot lock out other
// users (or the same user with the right password) from the same address; MQTT and HTTP share it.
import MQTTCodec
import MQTTTestSupport
import MidgeCore
import XCTest

@testable import MidgeAuth
@testable import MidgeServer

final class LoginBackoffTests: XCTestCase {
    private static func passwords(_ users: [(String, String)]) throws -> PasswordFile {
        let text = users.map { $0.0 + ":" + PasswordHash.make(password: Array($0.1.utf8)).encoded + "\n" }.joined()
        return try PasswordFile(text: text, source: "test")
    }

    /// Before: eight guesses waiting for `mallory` made every CONNECT from the address get CONNACK 3.
    func testGuessesForOneUserDoNotRefuseAnotherUserFromTheSameAddress() throws {
        let file = try Self.passwords([("alice", "right"), ("mallory", "real")])
        let running = try RunningServer(threads: 2, config: "allow_anonymous false\n") { $0.authenticator = file }
        defer { running.stop() }
        for attempt in 0..<AuthGate.freeFailures {
            let guess = ChannelClient(try RawClient(port: running.port))
            XCTAssertEqual(
                try guess.connect("guess-\(attempt)", username: "mallory", password: "x").returnCode, .notAuthorized)
        }
        // These wait for their delayed checks while alice logs in.
        let waiting = try (0..<AuthGate.maxWaitingPerAddress).map { attempt in
            let guess = ChannelClient(try RawClient(port: running.port))
            try guess.send(
                .connect(Connect(clientID: "late-\(attempt)", username: "mallory", password: Array("y".utf8))))
            return guess
        }
        XCTAssertNotNil(running.log.waitForLine { $0.contains("Delaying the authentication") })
        let alice = ChannelClient(try RawClient(port: running.port))
        XCTAssertEqual(try alice.connect("alice", username: "alice", password: "right").returnCode, .accepted)
        for guess in waiting {
            guard case .connack(let connack) = try guess.receive() else { return XCTFail("expected CONNACK") }
            XCTAssertEqual(connack.returnCode, .notAuthorized)
        }
    }

    func testPolicyIsPerAddressAndUserAndASuccessResetsIt() {
        var backoff = LoginBackoff()
        for _ in 0..<10 { backoff.recordFailure(host: "10.0.0.1", username: "mallory", now: 100) }
        XCTAssertGreaterThan(backoff.delay(host: "10.0.0.1", username: "mallory", now: 100), 0)
        XCTAssertEqual(backoff.delay(host: "10.0.0.1", username: "alice", now: 100), 0, "another user")
        XCTAssertEqual(backoff.delay(host: "10.0.0.2", username: "mallory", now: 100), 0, "another address")
        XCTAssertEqual(backoff.delay(host: "10.0.0.1", username: "mallory", now: 100 + 61), 0, "forgotten")
        for _ in 0..<5 { backoff.recordFailure(host: "10.0.0.1", username: "bob", now: 200) }
        XCTAssertGreaterThan(backoff.delay(host: "10.0.0.1", username: "bob", now: 200), 0)
        backoff.recordSuccess(host: "10.0.0.1", username: "bob")
        XCTAssertEqual(backoff.delay(host: "10.0.0.1", username: "bob", now: 200), 0, "reset by a success")
    }

    /// Rotating user names does not escape the back-off for long: past `addressFreeFailures` failures the address
    /// as a whole waits, though never more than `maxDelay`.
    func testManyUserNamesFromOneAddressAreDelayedToo() {
        var backoff = LoginBackoff()
        for index in 0..<LoginBackoff.addressFreeFailures {
            backoff.recordFailure(host: "10.0.0.9", username: "user\(index)", now: 10)
        }
        XCTAssertEqual(backoff.delay(host: "10.0.0.9", username: "fresh", now: 10), 0)
        backoff.recordFailure(host: "10.0.0.9", username: "one-more", now: 10)
        let delay = backoff.delay(host: "10.0.0.9", username: "fresh", now: 10)
        XCTAssertGreaterThan(delay, 0)
        XCTAssertLessThanOrEqual(delay, AuthGate.maxDelay)
    }
}
