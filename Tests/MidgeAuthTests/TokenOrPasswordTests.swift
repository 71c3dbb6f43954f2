// Tokens and password-file users on one broker: each is authenticated by its own kind and held to its own rules.
import MQTTCodec
import MidgeCore
import XCTest

@testable import MidgeAuth

final class TokenOrPasswordTests: XCTestCase {
    private static let validTime: Int64 = 1_800_000_000

    private func chain(passwords: (any Authenticator)? = nil, rules: any AccessControl = AllowAll()) throws
        -> TokenOrPasswordAuthenticator
    {
        let tokens = try TokenAuthenticator(.hs256(secret: TokenFixtures.secret), now: { Self.validTime })
        return TokenOrPasswordAuthenticator(tokens: tokens, passwords: passwords, rules: rules)
    }

    private func topic(_ text: String) -> TopicName { TopicName(text)! }

    func testATokenIsVerifiedAndHeldToItsClaims() throws {
        let auth = try chain()
        XCTAssertEqual(
            auth.authenticate(clientID: "phone", username: "alice", password: Array(TokenFixtures.hsGood.utf8)),
            .accepted)
        XCTAssertTrue(auth.mayPublish(clientID: "phone", username: "alice", topic: topic("devices/alice/x")))
        XCTAssertFalse(auth.mayPublish(clientID: "phone", username: "alice", topic: topic("devices/bob/x")))
        XCTAssertFalse(auth.mayReceive(clientID: "phone", username: "alice", topic: topic("devices/bob/x")))
    }

    func testATokenClientMustSendItsOwnClientID() throws {
        let auth = try chain()
        XCTAssertEqual(
            auth.authenticate(clientID: "", username: "alice", password: Array(TokenFixtures.hsGood.utf8)),
            .identifierRejected)
        XCTAssertEqual(
            auth.authenticate(clientID: "own-id", username: "alice", password: Array(TokenFixtures.hsGood.utf8)),
            .accepted)
    }

    func testAForgedTokenIsRefusedAndNotTriedAsAPassword() throws {
        let file = try PasswordFile(text: "", source: "empty")
        let auth = try chain(passwords: file)
        XCTAssertNotEqual(
            auth.authenticate(clientID: "phone", username: "alice", password: Array(TokenFixtures.hsWrongKey.utf8)),
            .accepted)
    }

    func testPasswordClientsKeepTheACLFileRules() throws {
        let rules = try ACLFile(text: "user dev\ntopic readwrite sensors/#\n", source: "acl")
        let auth = try chain(passwords: AcceptEveryone(), rules: rules)
        XCTAssertEqual(auth.authenticate(clientID: "d1", username: "dev", password: Array("secret".utf8)), .accepted)
        XCTAssertTrue(auth.mayPublish(clientID: "d1", username: "dev", topic: topic("sensors/1")))
        XCTAssertFalse(auth.mayPublish(clientID: "d1", username: "dev", topic: topic("devices/alice/x")))
    }

    func testAClientThatSwitchesToAPasswordLosesItsTokenGrants() throws {
        let rules = try ACLFile(text: "user alice\ntopic read broadcast/#\n", source: "acl")
        let auth = try chain(passwords: AcceptEveryone(), rules: rules)
        _ = auth.authenticate(clientID: "c", username: "alice", password: Array(TokenFixtures.hsGood.utf8))
        XCTAssertTrue(auth.mayPublish(clientID: "c", username: "alice", topic: topic("devices/alice/x")))
        _ = auth.authenticate(clientID: "c", username: "alice", password: Array("plain".utf8))
        XCTAssertFalse(auth.mayPublish(clientID: "c", username: "alice", topic: topic("devices/alice/x")))
    }

    func testWithoutAPasswordFileOnlyTokensAndAnonymousClientsGetIn() throws {
        let auth = try chain()
        XCTAssertEqual(auth.authenticate(clientID: "a", username: nil, password: nil), .accepted)
        XCTAssertEqual(auth.authenticate(clientID: "b", username: "bob", password: Array("guess".utf8)), .notAuthorized)
    }

    func testTokenShapeDetection() {
        XCTAssertTrue(TokenOrPasswordAuthenticator.looksLikeToken(Array(TokenFixtures.hsGood.utf8)))
        XCTAssertFalse(TokenOrPasswordAuthenticator.looksLikeToken(Array("eyJ.only-two".utf8)))
        XCTAssertFalse(TokenOrPasswordAuthenticator.looksLikeToken(Array("correct horse battery staple".utf8)))
        XCTAssertFalse(TokenOrPasswordAuthenticator.looksLikeToken(Array("eyJhbGc.e30=.sig".utf8)))
    }
}

/// A password check that accepts every user: these tests are about which rules apply, not about passwords.
private struct AcceptEveryone: Authenticator {
    func authenticate(clientID: String, username: String?, password: [UInt8]?) -> ConnectReturnCode { .accepted }
}
