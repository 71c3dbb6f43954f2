// The `http_*` listener keys: parsed, applied to the gateway, and what they change (heartbeat, retry, idle timeout,
// long-poll limits, /metrics credentials, CORS headers on answers and streams, gzip).
import MQTTCodec
import MidgeCore
import XCTest

@testable import MidgeGateway
@testable import MidgeServer

final class HTTPSettingsTests: XCTestCase {
    private let alice = "Authorization: Basic \(Array("alice:secret".utf8).base64)\r\n"

    func testKeysBelongToTheirListenerAndReachTheGateway() throws {
        let text = """
            listener 1883
            listener 8080
            protocol http
            http_sse_heartbeat 5
            http_sse_retry 500
            http_idle_timeout 30
            http_longpoll_timeout 400
            http_longpoll_max_timeout 120
            http_history_messages 50
            http_history_seconds 90
            http_history_bytes 65536
            http_history_topics 10
            http_max_body_size 4096
            http_metrics_open true
            http_cors_origins https://app.example http://localhost:3000
            http_cors_credentials true
            """
        let configuration = try Configuration.parse(text: text, fileName: "t")
        XCTAssertEqual(configuration.listeners[0].http, HTTPListenerSettings())
        let http = configuration.listeners[1].http
        XCTAssertEqual(http.corsOrigins, ["https://app.example", "http://localhost:3000"])
        let settings = HTTPGatewaySettings(http)
        XCTAssertEqual(settings.heartbeatSeconds, 5)
        XCTAssertEqual(settings.retryMilliseconds, 500)
        XCTAssertEqual(settings.idleSeconds, 30)
        XCTAssertEqual(settings.router.defaultLongPollSeconds, 120, "a default above the maximum is lowered to it")
        XCTAssertEqual(settings.router.maxLongPollSeconds, 120)
        XCTAssertEqual(
            settings.history,
            TopicHistoryLimits(messagesPerTopic: 50, maxAgeSeconds: 90, maxBytes: 65536, maxTopics: 10))
        XCTAssertEqual(settings.limits.maxBodyBytes, 4096)
        XCTAssertTrue(settings.metricsOpen)
        XCTAssertEqual(settings.router.cors, CORSPolicy(origins: http.corsOrigins, credentials: true))
    }

    func testBadValuesAreRefusedWithTheKey() {
        let cases = [
            "http_sse_heartbeat 0", "http_sse_retry -1", "http_idle_timeout x", "http_history_messages 0",
            "http_metrics_open yes", "http_cors_origins https://app.example/path", "http_cors_origins",
            "http_longpoll_timeout 1 2",
        ]
        for line in cases {
            XCTAssertThrowsError(
                try Configuration.parse(text: "listener 80\nprotocol http\n" + line, fileName: "t"),
                line
            ) { error in
                XCTAssertEqual((error as? ConfigError)?.key, String(line.split(separator: " ")[0]), line)
            }
        }
    }

    func testRetryFromTheSettingsOpensTheStream() {
        var settings = HTTPGatewaySettings()
        settings.retryMilliseconds = 750
        let harness = GatewayHarness(settings: settings)
        let client = harness.openHTTP()
        harness.send("GET /subscribe?topic=r HTTP/1.1\r\n\r\n", on: client)
        XCTAssertTrue(client.text.contains("\r\n\r\nretry: 750\n\n"), client.text)
    }

    func testMetricsNeedAcceptedCredentialsWhenAnonymousClientsAreRefused() {
        let auth = AliceOnly()
        let harness = GatewayHarness(authenticator: auth, accessControl: auth, allowAnonymous: false)
        let anonymous = harness.openHTTP()
        harness.send("GET /metrics HTTP/1.1\r\n\r\n", on: anonymous)
        XCTAssertEqual(ParsedResponse.all(anonymous.text).first?.status, 401)
        let wrong = harness.openHTTP()
        let bad = Array("alice:no".utf8).base64
        harness.send("GET /metrics HTTP/1.1\r\nAuthorization: Basic \(bad)\r\n\r\n", on: wrong)
        XCTAssertEqual(ParsedResponse.all(wrong.text).first?.status, 401)
        let good = harness.openHTTP()
        harness.send("GET /metrics HTTP/1.1\r\n\(alice)\r\n", on: good)
        XCTAssertEqual(ParsedResponse.all(good.text).first?.status, 200)
        // The same connection asks again without a new login.
        harness.send("GET /metrics HTTP/1.1\r\n\(alice)\r\n", on: good)
        XCTAssertEqual(ParsedResponse.all(good.text).map(\.status), [200, 200])
    }

    func testMetricsOpenAnswersWithoutCredentials() {
        let auth = AliceOnly()
        var settings = HTTPGatewaySettings()
        settings.metricsOpen = true
        let harness = GatewayHarness(
            authenticator: auth, accessControl: auth, allowAnonymous: false, settings: settings)
        let client = harness.openHTTP()
        harness.send("GET /metrics HTTP/1.1\r\n\r\n", on: client)
        XCTAssertEqual(ParsedResponse.all(client.text).first?.status, 200)
    }

    func testCORSHeadersOnAnswersAndStreamsForAllowedOriginsOnly() {
        var settings = HTTPGatewaySettings()
        settings.router.cors = CORSPolicy(origins: ["https://app.example"], credentials: true)
        let harness = GatewayHarness(settings: settings)
        let publisher = harness.openHTTP()
        harness.send(
            "POST /publish?topic=c HTTP/1.1\r\nOrigin: https://app.example\r\nContent-Length: 1\r\n\r\nx",
            on: publisher)
        let answer = ParsedResponse.all(publisher.text).first
        XCTAssertEqual(answer?.header("Access-Control-Allow-Origin"), "https://app.example")
        XCTAssertEqual(answer?.header("Access-Control-Allow-Credentials"), "true")

        let stranger = harness.openHTTP()
        harness.send(
            "POST /publish?topic=c HTTP/1.1\r\nOrigin: https://evil.example\r\nContent-Length: 1\r\n\r\nx",
            on: stranger)
        XCTAssertNil(ParsedResponse.all(stranger.text).first?.header("Access-Control-Allow-Origin"))

        let stream = harness.openHTTP()
        harness.send("GET /subscribe?topic=c HTTP/1.1\r\nOrigin: https://app.example\r\n\r\n", on: stream)
        XCTAssertEqual(
            ParsedResponse.all(stream.text).first?.header("Access-Control-Allow-Origin"), "https://app.example")

        let preflight = harness.openHTTP()
        harness.send(
            "OPTIONS /publish HTTP/1.1\r\nOrigin: https://app.example\r\nAccess-Control-Request-Method: POST\r\n\r\n",
            on: preflight)
        let preflightAnswer = ParsedResponse.all(preflight.text).first
        XCTAssertEqual(preflightAnswer?.status, 204)
        XCTAssertEqual(preflightAnswer?.header("Access-Control-Allow-Methods"), "POST, OPTIONS")
        XCTAssertNil(preflight.closed, "a preflight keeps the connection")
    }

    func testRefusedRequestsAreLogged() throws {
        let running = try RunningServer(threads: 1, config: "listener 0 127.0.0.1\nprotocol http\n")
        defer { running.stop() }
        let port = running.server.listeners[1].port
        let answer = try HTTPTestClient.exchange(
            port: port, "GET /subscribe?topic=a/ HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
        XCTAssertEqual(answer.status, 400)
        XCTAssertNotNil(running.log.waitForLine { $0.contains("GET /subscribe answered 400 Bad Request") })
        let broken = try HTTPTestClient.exchange(port: port, "NOT HTTP\r\n\r\n")
        XCTAssertEqual(broken.status, 400)
        XCTAssertNotNil(running.log.waitForLine { $0.contains("closing the connection") })
    }

    /// The bytes after the first head, undecoded.
    private func bodyBytes(_ wire: [UInt8]) -> [UInt8] {
        let separator: [UInt8] = [13, 10, 13, 10]
        guard let end = (0..<(wire.count - 3)).first(where: { Array(wire[$0..<($0 + 4)]) == separator }) else {
            return []
        }
        return Array(wire[(end + 4)...])
    }

    func testGzipForPollAnswersAndStreamsWhenEnabledAndAccepted() throws {
        var settings = HTTPGatewaySettings()
        settings.compression = true
        let harness = GatewayHarness(settings: settings)
        let payload = String(repeating: "0123456789", count: 40)
        let stream = harness.openHTTP()
        harness.send("GET /subscribe?topic=z HTTP/1.1\r\nAccept-Encoding: gzip\r\n\r\n", on: stream)
        XCTAssertTrue(stream.text.contains("Content-Encoding: gzip\r\n"), stream.text)
        harness.mqttPublish("z", payload)
        let streamed = String(decoding: try XCTUnwrap(GzipStream.decompress(bodyBytes(stream.wire))), as: UTF8.self)
        XCTAssertTrue(streamed.hasPrefix("retry: 2000\n\nid: 1\ndata: "), streamed)
        XCTAssertTrue(streamed.contains(payload))

        let poll = harness.openHTTP()
        harness.send(
            "GET /subscribe?topic=z&mode=poll&since=oldest HTTP/1.1\r\nAccept-Encoding: gzip\r\n\r\n", on: poll)
        XCTAssertTrue(poll.text.contains("Content-Encoding: gzip\r\n"), poll.text)
        let answer = String(decoding: try XCTUnwrap(GzipStream.decompress(bodyBytes(poll.wire))), as: UTF8.self)
        XCTAssertTrue(answer.hasPrefix(#"{"messages":[{"id":"1","topic":"z","payload":"0123"#), answer)

        let plain = harness.openHTTP()
        harness.send("GET /subscribe?topic=z&mode=poll&since=oldest HTTP/1.1\r\n\r\n", on: plain)
        XCTAssertFalse(plain.text.contains("Content-Encoding"), "not without Accept-Encoding")
    }

    func testTheConsoleIsServedOnlyWhenOn() {
        let off = GatewayHarness()
        let first = off.openHTTP()
        off.send("GET /console HTTP/1.1\r\n\r\n", on: first)
        XCTAssertEqual(ParsedResponse.all(first.text).first?.status, 404)
        var settings = HTTPGatewaySettings()
        settings.console = true
        let on = GatewayHarness(settings: settings)
        let second = on.openHTTP()
        on.send("GET /console HTTP/1.1\r\n\r\n", on: second)
        let page = ParsedResponse.all(second.text).first
        XCTAssertEqual(page?.status, 200)
        XCTAssertEqual(page?.header("Content-Type"), "text/html; charset=utf-8")
        XCTAssertTrue(page?.header("Content-Security-Policy")?.contains("connect-src 'self'") ?? false)
        XCTAssertTrue(page?.body.contains("new EventSource(url)") ?? false)
        XCTAssertFalse(page?.body.contains("innerHTML") ?? true, "payloads never become markup")
    }
}
