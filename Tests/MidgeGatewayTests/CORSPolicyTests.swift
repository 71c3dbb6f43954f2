// CORS: which origins get the headers, the preflight answer, and what a closed (default) policy sends.
import XCTest

@testable import MidgeGateway

final class CORSPolicyTests: XCTestCase {
    private func request(_ method: String, _ target: String, _ headers: [(String, String)]) -> HTTPRequest {
        var parser = HTTPRequestParser()
        var text = "\(method) \(target) HTTP/1.1\r\nHost: x\r\n"
        for (name, value) in headers { text += "\(name): \(value)\r\n" }
        text += "\r\n"
        Array(text.utf8).withUnsafeBytes { parser.append($0) }
        guard case .request(let parsed)? = try? parser.next() else { fatalError("test request did not parse") }
        return parsed
    }

    func testTheDefaultPolicySendsNoHeaders() {
        XCTAssertTrue(CORSPolicy().headers(origin: "https://app.example").fields.isEmpty)
    }

    func testListedOriginsAreEchoedAndOthersGetNothing() {
        let policy = CORSPolicy(origins: ["https://app.example", "http://localhost:8080"])
        XCTAssertEqual(
            policy.headers(origin: "https://app.example")["Access-Control-Allow-Origin"], "https://app.example")
        XCTAssertEqual(policy.headers(origin: "https://app.example")["Vary"], "Origin")
        XCTAssertEqual(
            policy.headers(origin: "HTTP://LOCALHOST:8080")["Access-Control-Allow-Origin"],
            "HTTP://LOCALHOST:8080")
        XCTAssertTrue(policy.headers(origin: "https://evil.example").fields.isEmpty)
        XCTAssertTrue(policy.headers(origin: nil).fields.isEmpty)
    }

    func testAnyOriginIsAStarUnlessCredentialsAreAllowed() {
        let any = CORSPolicy(origins: ["*"]).headers(origin: "https://a.example")
        XCTAssertEqual(any["Access-Control-Allow-Origin"], "*")
        let withCredentials = CORSPolicy(origins: ["*"], credentials: true).headers(origin: "https://a.example")
        XCTAssertEqual(withCredentials["Access-Control-Allow-Origin"], "https://a.example")
        XCTAssertEqual(withCredentials["Access-Control-Allow-Credentials"], "true")
    }

    func testPreflight() {
        let router = GatewayRouter(
            configuration: GatewayRouterConfiguration(cors: CORSPolicy(origins: ["https://app.example"])))
        let allowed = request(
            "OPTIONS", "/publish",
            [
                ("Origin", "https://app.example"), ("Access-Control-Request-Method", "POST"),
                ("Access-Control-Request-Headers", "authorization, content-type"),
            ])
        guard case .response(let answer) = router.route(allowed) else { return XCTFail("not answered") }
        XCTAssertEqual(answer.status, .noContent)
        XCTAssertEqual(answer.headers["Access-Control-Allow-Origin"], "https://app.example")
        XCTAssertEqual(answer.headers["Access-Control-Allow-Methods"], "POST, OPTIONS")
        XCTAssertEqual(answer.headers["Access-Control-Allow-Headers"], CORSPolicy.allowedHeaders)
        XCTAssertEqual(answer.headers["Access-Control-Max-Age"], "600")

        let other = request("OPTIONS", "/subscribe", [("Origin", "https://evil.example")])
        guard case .response(let refused) = router.route(other) else { return XCTFail("not answered") }
        XCTAssertEqual(refused.status, .forbidden)

        let wrongMethod = request(
            "OPTIONS", "/subscribe", [("Origin", "https://app.example"), ("Access-Control-Request-Method", "PUT")])
        guard case .response(let wrong) = router.route(wrongMethod) else { return XCTFail("not answered") }
        XCTAssertEqual(wrong.status, .methodNotAllowed)

        guard case .response(let plain) = router.route(request("OPTIONS", "/metrics", [])) else {
            return XCTFail("not answered")
        }
        XCTAssertEqual(plain.status, .noContent)
        XCTAssertEqual(plain.headers["Allow"], "GET, OPTIONS")

        guard case .response(let unknown) = router.route(request("OPTIONS", "/nowhere", [])) else {
            return XCTFail("not answered")
        }
        XCTAssertEqual(unknown.status, .notFound)
    }

    func testAFilterCutByAnUnescapedHashIsRefusedWithAHint() {
        let router = GatewayRouter()
        guard case .response(let answer) = router.route(request("GET", "/subscribe?topic=a/b/", [])) else {
            return XCTFail("accepted a cut filter")
        }
        XCTAssertEqual(answer.status, .badRequest)
        XCTAssertTrue(String(decoding: answer.body, as: UTF8.self).contains("%23"))
        guard case .request = router.route(request("GET", "/subscribe?topic=a/b/%23", [])) else {
            return XCTFail("refused the escaped form")
        }
    }
}
