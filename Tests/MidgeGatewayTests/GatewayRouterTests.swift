// The HTTP API's routes: publish (raw, JSON, bulk), subscribe (SSE, long poll), metrics, credentials, refusals.

import MQTTCodec
import MidgeText
import XCTest

@testable import MidgeGateway

final class GatewayRouterTests: XCTestCase {
    let router = GatewayRouter()

    func request(
        _ method: String, _ target: String, body: String = "", headers: [(String, String)] = []
    ) -> HTTPRequest {
        HTTPRequest(
            method: method, target: target, headers: HTTPHeaders([("Host", "h")] + headers), body: Array(body.utf8))
    }

    func routed(
        _ request: HTTPRequest, file: StaticString = #filePath, line: UInt = #line
    ) -> (GatewayRequest, GatewayCredentials?)? {
        switch router.route(request) {
        case .request(let routed, let credentials): return (routed, credentials)
        case .response(let response):
            XCTFail(
                "refused: \(response.status) \(String(decoding: response.body, as: UTF8.self))", file: file, line: line)
            return nil
        }
    }

    func publishes(_ request: HTTPRequest, file: StaticString = #filePath, line: UInt = #line) -> [GatewayMessage] {
        guard case .publish(let commands)? = routed(request, file: file, line: line)?.0 else {
            XCTFail("expected a publish", file: file, line: line)
            return []
        }
        return commands
    }

    func subscription(_ request: HTTPRequest, file: StaticString = #filePath, line: UInt = #line) -> SubscribeCommand? {
        guard case .subscribe(let command)? = routed(request, file: file, line: line)?.0 else {
            XCTFail("expected a subscribe", file: file, line: line)
            return nil
        }
        return command
    }

    /// The refusal's status and JSON message.
    func refusal(_ request: HTTPRequest, file: StaticString = #filePath, line: UInt = #line) -> (Int, String)? {
        guard case .response(let response) = router.route(request) else {
            XCTFail("expected a refusal", file: file, line: line)
            return nil
        }
        XCTAssertEqual(response.headers["Content-Type"], "application/json", file: file, line: line)
        let body = String(decoding: response.body, as: UTF8.self)
        XCTAssertTrue(body.hasPrefix(#"{"error":""#), body, file: file, line: line)
        return (response.status.code, body)
    }

    func command(_ topic: String, _ payload: String, qos: QoS = .atMostOnce, retain: Bool = false) -> GatewayMessage {
        GatewayMessage(topic: TopicName(topic)!, payload: Array(payload.utf8), qos: qos, retain: retain)
    }

    // MARK: - Routes

    func testUnknownRoutesAndWrongMethods() {
        XCTAssertEqual(refusal(request("GET", "/nowhere"))?.0, 404)
        XCTAssertEqual(refusal(request("GET", "/publish/"))?.0, 404)
        XCTAssertEqual(refusal(request("GET", "/publish?topic=a"))?.0, 405)
        XCTAssertEqual(refusal(request("POST", "/subscribe?topic=a"))?.0, 405)
        XCTAssertEqual(refusal(request("DELETE", "/metrics"))?.0, 405)
        guard case .response(let response) = router.route(request("PUT", "/publish")) else { return XCTFail() }
        XCTAssertEqual(response.headers["Allow"], "POST, OPTIONS")
    }

    func testMetrics() {
        XCTAssertEqual(routed(request("GET", "/metrics"))?.0, .metrics)
    }

    // MARK: - Publish

    func testRawBodyWithQueryParameters() {
        XCTAssertEqual(
            publishes(request("POST", "/publish?topic=sensors/t1&qos=1&retain=true", body: "21.5")),
            [command("sensors/t1", "21.5", qos: .atLeastOnce, retain: true)])
        XCTAssertEqual(publishes(request("POST", "/publish?topic=a%2Fb%20c")), [command("a/b c", "")])
        XCTAssertEqual(publishes(request("POST", "/publish?retain&topic=a")), [command("a", "", retain: true)])
        // With ?topic= the body is the payload even when it is JSON.
        XCTAssertEqual(
            publishes(request("POST", "/publish?topic=a", body: #"{"topic":"b"}"#)), [command("a", #"{"topic":"b"}"#)])
    }

    func testRawBodyIsKeptByteForByte() {
        var raw = request("POST", "/publish?topic=bin")
        raw.body = [0x00, 0xFF, 0x0D, 0x0A]
        XCTAssertEqual(publishes(raw).first?.payload, [0x00, 0xFF, 0x0D, 0x0A])
    }

    func testJSONObject() {
        XCTAssertEqual(
            publishes(request("POST", "/publish", body: #"{"topic":"a/b","payload":"héllo","qos":2,"retain":true}"#)),
            [command("a/b", "héllo", qos: .exactlyOnce, retain: true)])
        XCTAssertEqual(
            publishes(request("POST", "/publish", body: #"{"topic":"a","payload_base64":"AP8="}"#)).first?.payload,
            [0x00, 0xFF])
        XCTAssertEqual(publishes(request("POST", "/publish", body: #"{"topic":"a"}"#)), [command("a", "")])
    }

    func testBulkArrayUsesQueryDefaults() {
        let body = #"[{"topic":"a","payload":"1"},{"topic":"b","payload":"2","qos":0,"retain":false}]"#
        XCTAssertEqual(
            publishes(request("POST", "/publish?qos=1&retain=1", body: body)),
            [command("a", "1", qos: .atLeastOnce, retain: true), command("b", "2")])
    }

    func testBadPublishes() {
        let cases: [(String, String, Int, String)] = [
            ("/publish", "", 400, "give ?topic="),
            ("/publish", "not json", 400, "not valid JSON"),
            ("/publish", "42", 400, "object or an array"),
            ("/publish", "[]", 400, "empty"),
            ("/publish", "[1]", 400, "message 0: not an object"),
            ("/publish", #"{"payload":"x"}"#, 400, #"\"topic\" must be a string"#),
            ("/publish", #"{"topic":"a/+"}"#, 400, "invalid topic name"),
            ("/publish", #"{"topic":""}"#, 400, "invalid topic name"),
            ("/publish", #"{"topic":"a","qos":3}"#, 400, "qos"),
            ("/publish", #"{"topic":"a","qos":1.5}"#, 400, "qos"),
            ("/publish", #"{"topic":"a","qos":"1"}"#, 400, "qos"),
            ("/publish", #"{"topic":"a","qos":true}"#, 400, "qos"),
            ("/publish", #"{"topic":"a","retain":1}"#, 400, "retain"),
            ("/publish", #"{"topic":"a","payload":1}"#, 400, "payload"),
            ("/publish", #"{"topic":"a","payload":"x","payload_base64":"eA=="}"#, 400, "not both"),
            ("/publish", #"{"topic":"a","payload_base64":"!!"}"#, 400, "base64"),
            ("/publish", #"{"topic":"a","retained":true}"#, 400, "unknown field"),
            ("/publish", ##"[{"topic":"a"},{"topic":"#"}]"##, 400, "message 1: invalid topic name"),
            ("/publish?topic=a/%23", "", 400, "invalid topic name"),
            ("/publish?topic=a&qos=5", "", 400, "qos must be 0, 1 or 2"),
            ("/publish?topic=a&retain=maybe", "", 400, "retain must be true or false"),
            ("/publish?topic=a%2", "", 400, "percent-encoding"),
            ("/publish?topic=a%00", "", 400, "invalid topic name"),
        ]
        for (target, body, status, message) in cases {
            let result = refusal(request("POST", target, body: body))
            XCTAssertEqual(result?.0, status, "\(target) \(body)")
            XCTAssertTrue(result?.1.contains(message) ?? false, "\(target) \(body): \(result?.1 ?? "")")
        }
    }

    func testBulkLimit() {
        let limited = GatewayRouter(configuration: GatewayRouterConfiguration(maxMessagesPerRequest: 2))
        let body = #"[{"topic":"a"},{"topic":"b"},{"topic":"c"}]"#
        guard case .response(let response) = limited.route(request("POST", "/publish", body: body)) else {
            return XCTFail("expected 413")
        }
        XCTAssertEqual(response.status, .contentTooLarge)
    }

    // MARK: - Credentials

    func testBasicCredentials() {
        let basic = Base64.encode(Array("alice:s3:cret".utf8))
        let result = routed(request("GET", "/metrics", headers: [("Authorization", "Basic \(basic)")]))
        XCTAssertEqual(result?.1, GatewayCredentials(username: "alice", password: Array("s3:cret".utf8)))
        let tokenOnly = Base64.encode(Array(":tok".utf8))
        XCTAssertEqual(
            routed(request("GET", "/metrics", headers: [("Authorization", "basic \(tokenOnly)")]))?.1,
            GatewayCredentials(username: nil, password: Array("tok".utf8)))
    }

    func testBearerAndQueryTokens() {
        XCTAssertEqual(
            routed(request("GET", "/metrics", headers: [("Authorization", "Bearer abc.def.ghi")]))?.1,
            GatewayCredentials(username: nil, password: Array("abc.def.ghi".utf8)))
        XCTAssertEqual(
            routed(request("GET", "/subscribe?topic=a&access_token=t%2Bk"))?.1,
            GatewayCredentials(username: nil, password: Array("t+k".utf8)))
        XCTAssertNil(routed(request("GET", "/metrics"))?.1 ?? nil, "no credentials at all")
    }

    func testBadCredentials() {
        XCTAssertEqual(refusal(request("GET", "/metrics", headers: [("Authorization", "Basic !!!")]))?.0, 400)
        let noColon = Base64.encode(Array("alice".utf8))
        XCTAssertEqual(refusal(request("GET", "/metrics", headers: [("Authorization", "Basic \(noColon)")]))?.0, 400)
        XCTAssertEqual(refusal(request("GET", "/metrics", headers: [("Authorization", "Bearer")]))?.0, 400)
        XCTAssertEqual(
            refusal(
                request("GET", "/metrics", headers: [("Authorization", "Bearer a"), ("Authorization", "Bearer b")]))?.0,
            400)
        guard
            case .response(let response) = router.route(
                request("GET", "/metrics", headers: [("Authorization", "Digest x")]))
        else { return XCTFail("expected 401") }
        XCTAssertEqual(response.status, .unauthorized)
        XCTAssertEqual(response.headers["WWW-Authenticate"], HTTPResponse.authenticationChallenge)
        XCTAssertEqual(HTTPResponse.unauthorized().headers["WWW-Authenticate"], HTTPResponse.authenticationChallenge)
    }

    // MARK: - Subscribe

    func testServerSentEventsSubscription() {
        let command = subscription(request("GET", "/subscribe?topic=a/%2B/c&topic=d/%23&topic=+&qos=1&client_id=dash"))
        XCTAssertEqual(command?.filters, ["a/+/c", "d/#", "+"].map { TopicFilter($0)! })
        XCTAssertEqual(command?.qos, .atLeastOnce)
        XCTAssertEqual(command?.clientID, "dash")
        XCTAssertEqual(command?.mode, .sse)
        XCTAssertEqual(command?.format, .json)
        XCTAssertNil(command?.lastEventID)
    }

    func testLastEventIDFromHeaderOrQuery() {
        XCTAssertEqual(
            subscription(request("GET", "/subscribe?topic=a&last_event_id=7", headers: [("Last-Event-ID", "42")]))?
                .lastEventID, "42", "EventSource's header wins")
        XCTAssertEqual(subscription(request("GET", "/subscribe?topic=a&last_event_id=7"))?.lastEventID, "7")
        XCTAssertEqual(subscription(request("GET", "/subscribe?topic=a&last_event_id=%C3%A9%207"))?.lastEventID, "é 7")
    }

    /// An id from the query can hold nothing the Last-Event-ID header could not: an SSE `id:` field with a line
    /// break or NUL cannot be written, so such an id is refused here rather than trapping where it is echoed.
    func testLastEventIDWithLineBreakOrNULIsRefused() {
        for encoded in ["a%0Ab", "a%0Db", "a%00b", "%FF"] {
            let result = refusal(request("GET", "/subscribe?topic=a&last_event_id=\(encoded)"))
            XCTAssertEqual(result?.0, 400, encoded)
            XCTAssertTrue(result?.1.contains("last_event_id") ?? false, encoded)
        }
    }

    func testLongPollAndFormat() {
        XCTAssertEqual(
            subscription(request("GET", "/subscribe?topic=a&mode=longpoll"))?.mode, .longPoll(timeoutSeconds: 30))
        XCTAssertEqual(
            subscription(request("GET", "/subscribe?topic=a&mode=longpoll&timeout=0"))?.mode,
            .longPoll(timeoutSeconds: 0))
        XCTAssertEqual(subscription(request("GET", "/subscribe?topic=a&format=raw"))?.format, .raw)
    }

    func testBadSubscriptions() {
        let cases: [(String, String)] = [
            ("/subscribe", "topic is required"),
            ("/subscribe?topic=a/%23/b", "invalid topic filter"),
            ("/subscribe?topic=a%2B", "invalid topic filter"),
            ("/subscribe?topic=", "invalid topic filter"),
            ("/subscribe?topic=a&qos=3", "qos"),
            ("/subscribe?topic=a&mode=websocket", "mode"),
            ("/subscribe?topic=a&mode=longpoll&timeout=301", "timeout"),
            ("/subscribe?topic=a&mode=longpoll&timeout=soon", "timeout"),
            ("/subscribe?topic=a&format=xml", "format"),
            ("/subscribe?topic=a&client_id=", "client_id"),
        ]
        for (target, message) in cases {
            let result = refusal(request("GET", target))
            XCTAssertEqual(result?.0, 400, target)
            XCTAssertTrue(result?.1.contains(message) ?? false, "\(target): \(result?.1 ?? "")")
        }
        let tooMany = "/subscribe?" + (0...32).map { "topic=t\($0)" }.joined(separator: "&")
        XCTAssertEqual(refusal(request("GET", tooMany))?.0, 400)
    }

    // MARK: - Responses

    func testPublishedAndLongPollResponses() {
        XCTAssertEqual(String(decoding: HTTPResponse.published(count: 3).body, as: UTF8.self), #"{"published":3}"#)
        let messages: [(id: String, message: GatewayMessage)] = [
            ("1", GatewayMessage(topic: TopicName("a")!, payload: Array("x\n\"y\"".utf8), qos: .atLeastOnce)),
            ("2", GatewayMessage(topic: TopicName("b")!, payload: [0xFF, 0x00], retain: true)),
        ]
        XCTAssertEqual(
            String(decoding: HTTPResponse.longPoll(messages).body, as: UTF8.self),
            #"{"messages":[{"id":"1","topic":"a","payload":"x\n\"y\"","qos":1,"retain":false},"#
                + #"{"id":"2","topic":"b","payload_base64":"/wA=","qos":0,"retain":true}]}"#)
        XCTAssertEqual(String(decoding: HTTPResponse.longPoll([]).body, as: UTF8.self), #"{"messages":[]}"#)
    }
}
