// Bearer tokens on the HTTP gateway: a token's claims decide what it may publish, even beside an ACL file that
// does not name its user, because the gateway asks the ACL only once the core has verified the token.
import COpenSSL
import MQTTCodec
import MidgeAuth
import MidgeCore
import XCTest

@testable import MidgeServer

final class HTTPTokenTests: XCTestCase {
    private static let secret = Array("http-token-secret-0123456789abcdef".utf8)

    func testBearerTokenPublishesWithinItsClaimsAndIsRefusedOutside() throws {
        let tokens = try TokenAuthenticator(.hs256(secret: Self.secret))
        let rules = try ACLFile(text: "user device\ntopic readwrite app/#\n", source: "acl")
        let chain = TokenOrPasswordAuthenticator(tokens: tokens, passwords: nil, rules: rules)
        let harness = GatewayHarness(authenticator: chain, accessControl: chain, allowAnonymous: false)
        let token = Self.token(#"{"sub":"alice","exp":4000000000,"publish":["app/alice/#"]}"#)

        let allowed = harness.openHTTP()
        harness.send(
            "POST /publish?topic=app/alice/x HTTP/1.1\r\nAuthorization: Bearer \(token)\r\nContent-Length: 2\r\n\r\nhi",
            on: allowed)
        XCTAssertEqual(ParsedResponse.all(allowed.text).first?.status, 200, allowed.text)

        let outside = harness.openHTTP()
        harness.send(
            "POST /publish?topic=app/bob/x HTTP/1.1\r\nAuthorization: Bearer \(token)\r\nContent-Length: 2\r\n\r\nhi",
            on: outside)
        XCTAssertEqual(ParsedResponse.all(outside.text).first?.status, 403, outside.text)

        let forged = harness.openHTTP()
        let claims = ##"{"sub":"alice","exp":4000000000,"publish":["#"]}"##
        let bad = Self.token(claims, secret: Array(repeating: 7, count: 40))
        harness.send(
            "POST /publish?topic=app/alice/x HTTP/1.1\r\nAuthorization: Bearer \(bad)\r\nContent-Length: 2\r\n\r\nhi",
            on: forged)
        XCTAssertEqual(ParsedResponse.all(forged.text).first?.status, 401, forged.text)
    }

    /// An HS256 JWT with these claims, signed with OpenSSL's HMAC.
    private static func token(_ claims: String, secret: [UInt8] = secret) -> String {
        let signingInput = base64URL(Array(#"{"alg":"HS256","typ":"JWT"}"#.utf8)) + "." + base64URL(Array(claims.utf8))
        var digest = [UInt8](repeating: 0, count: 32)
        var length: UInt32 = 0
        let input = Array(signingInput.utf8)
        _ = HMAC(EVP_sha256(), secret, Int32(secret.count), input, input.count, &digest, &length)
        return signingInput + "." + base64URL(Array(digest.prefix(Int(length))))
    }

    private static func base64URL(_ bytes: [UInt8]) -> String {
        bytes.base64.replacingOccurrences(of: "+", with: "-").replacingOccurrences(of: "/", with: "_")
            .replacingOccurrences(of: "=", with: "")
    }
}
