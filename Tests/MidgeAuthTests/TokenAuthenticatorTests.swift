// JWT authentication (HS256, RS256) with tokens made by Python, and the topics a token grants.
import MQTTCodec
import MidgeCore
import Synchronization
import XCTest

@testable import MidgeAuth

/// The injected clock: seconds since the epoch, moved by the test.
final class TestClock: Sendable {
    let seconds: Atomic<Int64>
    init(_ start: Int64) { seconds = Atomic(start) }
    func set(_ value: Int64) { seconds.store(value, ordering: .relaxed) }
    var now: @Sendable () -> Int64 { { [self] in seconds.load(ordering: .relaxed) } }
}

final class TokenAuthenticatorTests: XCTestCase {
    /// Between the fixtures' nbf (1700000000) and exp (2000000000).
    static let validTime: Int64 = 1_750_000_000

    private func hs256(_ clock: TestClock = TestClock(validTime), options: TokenAuthenticator.Options = .init())
        throws -> TokenAuthenticator
    {
        try TokenAuthenticator(.hs256(secret: TokenFixtures.secret), options: options, now: clock.now)
    }

    private func rs256(_ clock: TestClock = TestClock(validTime)) throws -> TokenAuthenticator {
        try TokenAuthenticator(.rs256(publicKeyPEM: TokenFixtures.publicKeyPEM), now: clock.now)
    }

    private func connect(_ auth: TokenAuthenticator, _ token: String, user: String? = "alice", id: String = "c1")
        -> ConnectReturnCode
    {
        auth.authenticate(clientID: id, username: user, password: Array(token.utf8))
    }

    private func rejection(_ auth: TokenAuthenticator, _ token: String, user: String = "alice")
        -> TokenAuthenticator.Rejection?
    {
        if case .failure(let why) = auth.verify(Array(token.utf8), clientID: "c1", username: user) { return why }
        return nil
    }

    private static func name(_ text: String) -> TopicName {
        guard let name = TopicName(text) else { preconditionFailure("bad test topic \(text)") }
        return name
    }

    private static func filter(_ text: String) -> TopicFilter {
        guard let filter = TopicFilter(text) else { preconditionFailure("bad test filter \(text)") }
        return filter
    }

    func testHS256TokenGrantsItsTopics() throws {
        let auth = try hs256()
        XCTAssertEqual(connect(auth, TokenFixtures.hsGood), .accepted)
        XCTAssertTrue(auth.checksDeliveries)
        XCTAssertTrue(auth.mayPublish(clientID: "c1", username: "alice", topic: Self.name("devices/alice/temp")))
        XCTAssertTrue(auth.mayPublish(clientID: "c1", username: "alice", topic: Self.name("devices/alice")))
        XCTAssertFalse(auth.mayPublish(clientID: "c1", username: "alice", topic: Self.name("devices/bob/temp")))
        XCTAssertFalse(auth.mayPublish(clientID: "c1", username: "alice", topic: Self.name("commands/alice/x")))
        XCTAssertTrue(auth.mayReceive(clientID: "c1", username: "alice", topic: Self.name("commands/alice/reboot")))
        XCTAssertTrue(auth.mayReceive(clientID: "c1", username: "alice", topic: Self.name("broadcast/news/today")))
        XCTAssertFalse(auth.mayReceive(clientID: "c1", username: "alice", topic: Self.name("commands/bob/reboot")))
        XCTAssertFalse(auth.mayReceive(clientID: "c1", username: "alice", topic: Self.name("devices/alice/temp")))
    }

    /// A subscription must lie within a granted filter.
    func testSubscriptionsAreBoundedByGrantedFilters() throws {
        let auth = try hs256()
        XCTAssertEqual(connect(auth, TokenFixtures.hsGood), .accepted)
        let allowed = ["commands/alice/+", "commands/alice/reboot", "broadcast/#", "broadcast/a/+", "broadcast"]
        let refused = [
            "commands/#", "commands/+/reboot", "commands/alice/x/y", "#", "+/alice/+", "$SYS/#", "broadcastx",
        ]
        for text in allowed {
            XCTAssertTrue(auth.maySubscribe(clientID: "c1", username: "alice", filter: Self.filter(text)), text)
        }
        for text in refused {
            XCTAssertFalse(auth.maySubscribe(clientID: "c1", username: "alice", filter: Self.filter(text)), text)
        }
    }

    func testRS256TokenIsAccepted() throws {
        let auth = try rs256()
        XCTAssertEqual(connect(auth, TokenFixtures.rsGood), .accepted)
        XCTAssertTrue(auth.mayPublish(clientID: "c1", username: "alice", topic: Self.name("devices/alice/x")))
    }

    func testForgedAndForeignTokensAreRefused() throws {
        let hs = try hs256()
        let rs = try rs256()
        XCTAssertEqual(rejection(hs, TokenFixtures.hsWrongKey), .signature)
        XCTAssertEqual(rejection(hs, TokenFixtures.hsNone), .algorithm("none"))
        XCTAssertEqual(rejection(hs, TokenFixtures.rsGood), .algorithm("RS256"))
        XCTAssertEqual(rejection(rs, TokenFixtures.rsOtherKey), .signature)
        XCTAssertEqual(rejection(rs, TokenFixtures.hsGood), .algorithm("HS256"))
        XCTAssertEqual(connect(hs, TokenFixtures.hsWrongKey), .notAuthorized)
        XCTAssertEqual(connect(rs, TokenFixtures.rsOtherKey), .notAuthorized)
    }

    /// The classic confusion: an HS256 token keyed with the server's RSA public key. It really is a valid
    /// HS256 token for that "secret", and an RS256 verifier must still refuse it.
    func testAlgorithmConfusionIsRefused() throws {
        let naive = try TokenAuthenticator(
            .hs256(secret: Array(TokenFixtures.publicKeyPEM.utf8)), now: TestClock(Self.validTime).now)
        XCTAssertEqual(connect(naive, TokenFixtures.rsConfused), .accepted, "the forgery is well made")
        XCTAssertEqual(rejection(try rs256(), TokenFixtures.rsConfused), .algorithm("HS256"))
    }

    /// Swapping the payload of a signed token breaks its signature.
    func testTamperedPayloadIsRefused() throws {
        let good = TokenFixtures.rsGood.split(separator: ".")
        let other = TokenFixtures.hsNoSub.split(separator: ".")
        let tampered = "\(good[0]).\(other[1]).\(good[2])"
        XCTAssertEqual(rejection(try rs256(), tampered), .signature)
        let hsGood = TokenFixtures.hsGood.split(separator: ".")
        XCTAssertEqual(rejection(try hs256(), "\(hsGood[0]).\(other[1]).\(hsGood[2])"), .signature)
    }

    func testExpiryAndNotBeforeFollowTheClock() throws {
        let clock = TestClock(1_800_000_000)
        let auth = try hs256(clock)
        XCTAssertEqual(rejection(auth, TokenFixtures.hsExpiring), .expired, "exp is exclusive")
        clock.set(1_799_999_999)
        XCTAssertNil(rejection(auth, TokenFixtures.hsExpiring))
        clock.set(1_699_999_999)
        XCTAssertEqual(rejection(auth, TokenFixtures.hsExpiring), .notYetValid)
        clock.set(1_700_000_000)
        XCTAssertNil(rejection(auth, TokenFixtures.hsExpiring), "nbf is inclusive")
    }

    func testLeewayToleratesClockSkew() throws {
        var options = TokenAuthenticator.Options()
        options.leeway = 10
        let clock = TestClock(1_800_000_009)
        let auth = try hs256(clock, options: options)
        XCTAssertNil(rejection(auth, TokenFixtures.hsExpiring))
        clock.set(1_800_000_010)
        XCTAssertEqual(rejection(auth, TokenFixtures.hsExpiring), .expired)
        clock.set(1_699_999_990)
        XCTAssertNil(rejection(auth, TokenFixtures.hsExpiring))
    }

    /// Access ends with the token, even on a connection that stays open.
    func testAccessEndsWhenTheTokenExpires() throws {
        let clock = TestClock(1_799_999_000)
        let auth = try hs256(clock)
        XCTAssertEqual(connect(auth, TokenFixtures.hsExpiring), .accepted)
        let topic = Self.name("devices/alice/x")
        XCTAssertTrue(auth.mayPublish(clientID: "c1", username: "alice", topic: topic))
        clock.set(1_800_000_000)
        XCTAssertFalse(auth.mayPublish(clientID: "c1", username: "alice", topic: topic))
        XCTAssertFalse(auth.mayReceive(clientID: "c1", username: "alice", topic: Self.name("broadcast/x")))
        XCTAssertFalse(auth.maySubscribe(clientID: "c1", username: "alice", filter: Self.filter("broadcast/#")))
    }

    func testExpiryIsRequiredUnlessDisabled() throws {
        XCTAssertEqual(rejection(try hs256(), TokenFixtures.hsNoExp), .missingExpiry)
        var options = TokenAuthenticator.Options()
        options.requireExpiry = false
        XCTAssertNil(rejection(try hs256(options: options), TokenFixtures.hsNoExp))
    }

    func testIssuerAndAudience() throws {
        var options = TokenAuthenticator.Options()
        options.issuer = "midge-tests"
        options.audience = "mqtt"
        XCTAssertNil(rejection(try hs256(options: options), TokenFixtures.hsGood))
        options.audience = "other"
        XCTAssertNil(rejection(try hs256(options: options), TokenFixtures.hsGood), "aud is an array")
        options.audience = "web"
        XCTAssertEqual(rejection(try hs256(options: options), TokenFixtures.hsGood), .audience)
        options.audience = nil
        options.issuer = "someone-else"
        XCTAssertEqual(rejection(try hs256(options: options), TokenFixtures.hsGood), .issuer)
    }

    func testSubjectMustBeTheUserName() throws {
        let auth = try hs256()
        XCTAssertEqual(rejection(auth, TokenFixtures.hsGood, user: "mallory"), .subject)
        XCTAssertEqual(connect(auth, TokenFixtures.hsGood, user: "mallory"), .notAuthorized)
        // Without `sub` any user name is taken, and the grants are bound to it.
        XCTAssertEqual(connect(auth, TokenFixtures.hsNoSub, user: "bob", id: "c2"), .accepted)
        XCTAssertTrue(auth.mayPublish(clientID: "c2", username: "bob", topic: Self.name("devices/alice/x")))
        XCTAssertFalse(auth.mayPublish(clientID: "c2", username: "eve", topic: Self.name("devices/alice/x")))
        XCTAssertEqual(connect(try hs256(), TokenFixtures.hsUnicode, user: "zoë"), .accepted)
    }

    func testClaimsMustBeValidFilters() throws {
        XCTAssertEqual(rejection(try hs256(), TokenFixtures.hsBadFilter), .claim("publish"))
    }

    func testCriticalHeaderIsRefused() throws {
        guard case .malformed? = rejection(try hs256(), TokenFixtures.hsCrit) else {
            return XCTFail("a crit header must be refused")
        }
    }

    func testMalformedTokensAreRefused() throws {
        let auth = try hs256()
        let parts = TokenFixtures.hsGood.split(separator: ".")
        for token in [
            "", "abc", "a.b", "a.b.c.d", "\(parts[0]).\(parts[1])", "!!.\(parts[1]).\(parts[2])",
            "e30.\(parts[1]).\(parts[2])", "bm90IGpzb24.\(parts[1]).\(parts[2])",
            "\(parts[0]).\(parts[1]).\(parts[2])=",
        ] {
            XCTAssertNotNil(rejection(auth, token), token)
            XCTAssertEqual(connect(auth, token), .notAuthorized, token)
        }
    }

    func testMissingPasswordAndAnonymousClients() throws {
        let auth = try hs256()
        XCTAssertEqual(auth.authenticate(clientID: "c1", username: "alice", password: nil), .notAuthorized)
        XCTAssertEqual(auth.authenticate(clientID: "c1", username: nil, password: nil), .accepted)
        XCTAssertFalse(auth.mayPublish(clientID: "c1", username: nil, topic: Self.name("devices/alice/x")))
        XCTAssertFalse(auth.mayReceive(clientID: "c1", username: nil, topic: Self.name("broadcast/x")))
    }

    /// A failed or anonymous reconnect with the same client id leaves no grants behind.
    func testGrantsFollowTheLatestConnect() throws {
        let auth = try hs256()
        let topic = Self.name("devices/alice/x")
        XCTAssertEqual(connect(auth, TokenFixtures.hsGood), .accepted)
        XCTAssertTrue(auth.mayPublish(clientID: "c1", username: "alice", topic: topic))
        XCTAssertEqual(connect(auth, TokenFixtures.hsWrongKey), .notAuthorized)
        XCTAssertFalse(auth.mayPublish(clientID: "c1", username: "alice", topic: topic))
        XCTAssertEqual(connect(auth, TokenFixtures.hsGood), .accepted)
        XCTAssertEqual(auth.authenticate(clientID: "c1", username: nil, password: nil), .accepted)
        XCTAssertFalse(auth.mayPublish(clientID: "c1", username: "alice", topic: topic))
        XCTAssertFalse(auth.mayPublish(clientID: "other", username: "alice", topic: topic), "grants are per client")
    }

    /// Client ids are bytes: a canonically equivalent id is another client.
    func testClientIDsCompareAsBytes() throws {
        let auth = try hs256()
        XCTAssertEqual(connect(auth, TokenFixtures.hsGood, id: "caf\u{E9}"), .accepted)
        let topic = Self.name("devices/alice/x")
        XCTAssertTrue(auth.mayPublish(clientID: "caf\u{E9}", username: "alice", topic: topic))
        XCTAssertFalse(auth.mayPublish(clientID: "cafe\u{301}", username: "alice", topic: topic))
        XCTAssertEqual(auth.authenticate(clientID: "cafe\u{301}", username: nil, password: nil), .accepted)
        XCTAssertTrue(auth.mayPublish(clientID: "caf\u{E9}", username: "alice", topic: topic), "not forgotten")
    }

    /// `$SYS` stays the broker's to write even when a token grants `#`-like filters.
    func testReservedTopics() throws {
        var options = TokenAuthenticator.Options()
        options.publishClaim = "subscribe"  // reuse the fixture's `broadcast/#` as a publish grant
        let auth = try hs256(options: options)
        XCTAssertEqual(connect(auth, TokenFixtures.hsGood), .accepted)
        XCTAssertTrue(auth.mayPublish(clientID: "c1", username: "alice", topic: Self.name("broadcast/x")))
        XCTAssertFalse(auth.mayPublish(clientID: "c1", username: "alice", topic: Self.name("$SYS/broker/x")))
    }

    func testUnusableKeysAreRefusedAtStartUp() {
        XCTAssertThrowsError(try TokenAuthenticator(.hs256(secret: Array("too short".utf8))))
        XCTAssertThrowsError(try TokenAuthenticator(.rs256(publicKeyPEM: TokenFixtures.smallPublicKeyPEM))) { error in
            XCTAssertTrue("\(error)".contains("2048"), "\(error)")
        }
        XCTAssertThrowsError(try TokenAuthenticator(.rs256(publicKeyPEM: "not a key")))
    }

    func testConcurrentClientsKeepTheirOwnGrants() throws {
        let auth = try hs256()
        let results = UnsafeSendableBox(Array(repeating: false, count: 32))
        DispatchQueue.concurrentPerform(iterations: 32) { index in
            let id = "client-\(index)"
            let good = index % 2 == 0
            let token = good ? TokenFixtures.hsGood : TokenFixtures.hsWrongKey
            let code = auth.authenticate(clientID: id, username: "alice", password: Array(token.utf8))
            let may = auth.mayPublish(clientID: id, username: "alice", topic: Self.name("devices/alice/x"))
            results.set(index, good ? (code == .accepted && may) : (code == .notAuthorized && !may))
        }
        for index in 0..<32 { XCTAssertTrue(results.get(index), "client-\(index)") }
    }
}
