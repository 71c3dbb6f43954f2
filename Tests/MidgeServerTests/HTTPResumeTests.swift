// Resuming HTTP subscriptions without a client id: a Last-Event-ID from an earlier connection must never hide the
// new connection's first events.
import MQTTCodec
import MidgeCore
import XCTest

@testable import MidgeServer

final class HTTPResumeTests: XCTestCase {
    /// Browsers send Last-Event-ID on every automatic reconnect, also for a stream that has no client id.
    func testReconnectingEventSourceWithoutClientIDGetsItsFirstNewEvents() {
        let harness = GatewayHarness()
        let first = harness.openHTTP()
        harness.send("GET /subscribe?topic=e HTTP/1.1\r\n\r\n", on: first)
        harness.mqttPublish("e", "one")
        harness.mqttPublish("e", "two")
        XCTAssertTrue(first.text.contains("id: 2\n"), first.text)
        harness.drop(first)
        let second = harness.openHTTP()
        harness.send("GET /subscribe?topic=e HTTP/1.1\r\nLast-Event-ID: 2\r\n\r\n", on: second)
        harness.mqttPublish("e", "three")
        let body = ParsedResponse.all(second.text).first?.body ?? ""
        XCTAssertTrue(body.contains("\"payload\":\"three\""), "the first new event is written: \(body)")
        XCTAssertTrue(body.contains("id: 3\n"), "ids keep rising above the one the client saw: \(body)")
    }

    /// A fresh long poll that names an id this gateway never gave (an earlier run's) answers with the next message,
    /// not the one after N more.
    func testFreshLongPollWithLastEventIDAnswersTheNextMessage() {
        let harness = GatewayHarness()
        let client = harness.openHTTP()
        harness.send("GET /subscribe?topic=lp&mode=longpoll&timeout=5&last_event_id=7 HTTP/1.1\r\n\r\n", on: client)
        harness.mqttPublish("lp", "next")
        let responses = ParsedResponse.all(client.text)
        XCTAssertEqual(responses.count, 1, client.text)
        XCTAssertEqual(
            responses.first?.body, #"{"messages":[{"id":"1","topic":"lp","payload":"next","qos":0,"retain":false}]}"#)
    }
}
