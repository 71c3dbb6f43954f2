// Verified password-file credentials are remembered for a while, forgotten on reload, and never for a refusal.
import MQTTCodec
import MidgeCore
import Synchronization
import XCTest

@testable import MidgeAuth

/// Accepts `user`/`pw` and counts its checks.
private final class CountingAuthenticator: Authenticator {
    let checks = Atomic<Int>(0)
    func authenticate(clientID: String, username: String?, password: [UInt8]?) -> ConnectReturnCode {
        checks.wrappingAdd(1, ordering: .relaxed)
        return username == "user" && password == Array("pw".utf8) ? .accepted : .badUsernameOrPassword
    }
    var count: Int { checks.load(ordering: .relaxed) }
}

private final class FakeClock: Sendable {
    let seconds = Atomic<Int64>(1000)
}

final class CredentialCacheTests: XCTestCase {
    private func make(lifetime: Int64 = 60) -> (ReloadableAuthenticator, CountingAuthenticator, FakeClock) {
        let inner = CountingAuthenticator()
        let clock = FakeClock()
        let cache = CredentialCache(lifetime: lifetime, now: { clock.seconds.load(ordering: .relaxed) })
        return (ReloadableAuthenticator(inner, cache: cache), inner, clock)
    }

    func testAnAcceptedCredentialIsCheckedOnceWithinItsLifetime() {
        let (reloadable, inner, clock) = make()
        for index in 0..<5 {
            let code = reloadable.authenticate(clientID: "c\(index)", username: "user", password: Array("pw".utf8))
            XCTAssertEqual(code, .accepted)
        }
        XCTAssertEqual(inner.count, 1)
        clock.seconds.store(1060, ordering: .relaxed)
        XCTAssertEqual(reloadable.authenticate(clientID: "c", username: "user", password: Array("pw".utf8)), .accepted)
        XCTAssertEqual(inner.count, 2, "checked again once expired")
    }

    func testRefusalsAreNeverCachedAndPasswordsAreDistinguished() {
        let (reloadable, inner, _) = make()
        XCTAssertEqual(reloadable.authenticate(clientID: "c", username: "user", password: Array("pw".utf8)), .accepted)
        for _ in 0..<3 {
            let code = reloadable.authenticate(clientID: "c", username: "user", password: Array("pwx".utf8))
            XCTAssertEqual(code, .badUsernameOrPassword)
        }
        XCTAssertEqual(
            reloadable.authenticate(clientID: "c", username: "use", password: Array("rpw".utf8)),
            .badUsernameOrPassword)
        XCTAssertEqual(inner.count, 5)
    }

    func testReplacingTheFileForgetsEveryCredential() {
        let (reloadable, inner, _) = make()
        XCTAssertEqual(reloadable.authenticate(clientID: "c", username: "user", password: Array("pw".utf8)), .accepted)
        let replacement = CountingAuthenticator()
        reloadable.replace(with: replacement)
        XCTAssertEqual(reloadable.authenticate(clientID: "c", username: "user", password: Array("pw".utf8)), .accepted)
        XCTAssertEqual(inner.count, 1)
        XCTAssertEqual(replacement.count, 1, "the new file checked it")
    }

    func testLifetimeZeroTurnsTheCacheOff() {
        let (reloadable, inner, _) = make(lifetime: 0)
        for _ in 0..<3 { _ = reloadable.authenticate(clientID: "c", username: "user", password: Array("pw".utf8)) }
        XCTAssertEqual(inner.count, 3)
    }
}
