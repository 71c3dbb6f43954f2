// Token clients admitted with their claims as their own permissions (`AdmissionAnswer.accessControl`).
import MQTTCodec
import MidgeCore
import XCTest

@testable import MidgeAuth

final class TokenAdmissionTests: XCTestCase {
    private static let validTime: Int64 = 1_800_000_000

    private func request(
        _ clientID: String, username: String?, password: String?, assigned: Bool = false
    ) -> AdmissionRequest {
        AdmissionRequest(
            connection: ConnectionID(loop: 0, serial: 1), clientID: clientID, clientIDWasAssigned: assigned,
            username: username, password: password.map { Array($0.utf8) }, cleanSession: true,
            info: ConnectionInfo(remoteAddress: "127.0.0.1:1", listenerPort: 1883))
    }

    private func topic(_ text: String) -> TopicName { TopicName(text)! }

    func testAnAcceptedTokenCarriesItsClaimsAsTheClientsPermissions() throws {
        let clock = ClockBox(Self.validTime)
        let tokens = try TokenAuthenticator(.hs256(secret: TokenFixtures.secret), now: { clock.now })
        let answer = tokens.admit(request("phone", username: "alice", password: TokenFixtures.hsGood))
        XCTAssertEqual(answer.verdict, .accepted)
        XCTAssertEqual(answer.username, "alice")
        let access = try XCTUnwrap(answer.accessControl)
        XCTAssertTrue(access.checksDeliveries)
        XCTAssertTrue(access.mayPublish(clientID: "phone", username: "alice", topic: topic("devices/alice/x")))
        XCTAssertFalse(access.mayPublish(clientID: "phone", username: "alice", topic: topic("devices/bob/x")))
        XCTAssertFalse(access.mayReceive(clientID: "phone", username: "alice", topic: topic("devices/bob/x")))

        // Another CONNECT under the same id does not change what this client was granted.
        _ = tokens.admit(request("phone", username: "mallory", password: "not a token"))
        XCTAssertTrue(access.mayPublish(clientID: "phone", username: "alice", topic: topic("devices/alice/x")))

        // The grants end with the token.
        clock.now = Int64.max / 2
        XCTAssertFalse(access.mayPublish(clientID: "phone", username: "alice", topic: topic("devices/alice/x")))
    }

    func testABadTokenIsRefusedWithoutPermissions() throws {
        let tokens = try TokenAuthenticator(.hs256(secret: TokenFixtures.secret), now: { Self.validTime })
        let answer = tokens.admit(request("phone", username: "alice", password: TokenFixtures.hsWrongKey))
        XCTAssertEqual(answer.verdict, .notAuthorized)
        XCTAssertNil(answer.accessControl)
    }

    func testTheChainGivesTokenClientsTheirClaimsAndPasswordClientsTheListenersRules() throws {
        let tokens = try TokenAuthenticator(.hs256(secret: TokenFixtures.secret), now: { Self.validTime })
        let chain = TokenOrPasswordAuthenticator(tokens: tokens, passwords: AllowAll(), rules: AllowAll())
        let token = chain.admit(request("phone", username: "alice", password: TokenFixtures.hsGood))
        XCTAssertEqual(token.verdict, .accepted)
        XCTAssertNotNil(token.accessControl)
        let password = chain.admit(request("d1", username: "dev", password: "secret"))
        XCTAssertEqual(password.verdict, .accepted)
        XCTAssertNil(password.accessControl, "the listener's ACL applies")
        let assigned = chain.admit(request("auto-1", username: "alice", password: TokenFixtures.hsGood, assigned: true))
        XCTAssertEqual(assigned.verdict, .identifierRejected, "a token is for the id the client sent")
    }
}

private final class ClockBox: @unchecked Sendable {
    var now: Int64
    init(_ now: Int64) { self.now = now }
}
