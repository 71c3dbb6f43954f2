// PUBLISH to `$CONTROL/...` with a control handler (mosquitto 2.0's control API): consumed, answered on the response
// topic, never routed; the handler's disconnections end connections without their Wills.
import MQTTCodec
import MidgeCore
import Synchronization
import XCTest

/// Answers every request with "ok:" and the payload, and asks to disconnect what it was told to.
final class EchoControlHandler: ControlTopicHandler {
    let topic = TopicName("$CONTROL/test/v1")!
    let requests = Mutex<[(payload: String, clientID: String, username: String?)]>([])
    let disconnect: [ControlReply.Disconnect]

    init(disconnect: [ControlReply.Disconnect] = []) { self.disconnect = disconnect }

    func handle(payload: [UInt8], clientID: String, username: String?) -> ControlReply {
        requests.withLock { $0.append((String(decoding: payload, as: UTF8.self), clientID, username)) }
        return ControlReply(response: Array("ok:".utf8) + payload, disconnect: disconnect)
    }
}

final class ControlTopicTests: XCTestCase {
    func testRequestIsAnsweredOnTheResponseTopicAndNeverRouted() {
        let handler = EchoControlHandler()
        let harness = Harness(controlHandler: handler)
        let watcher = harness.connect("watcher")
        watcher.subscribeOnly([("$CONTROL/#", .atMostOnce)])
        let admin = harness.connect("admin", username: "root")
        admin.publish("$CONTROL/test/v1", "hello", qos: .atLeastOnce, id: 7)
        XCTAssertEqual(admin.take(), [.puback(pid(7))])
        XCTAssertEqual(handler.requests.withLock { $0.map(\.payload) }, ["hello"])
        XCTAssertEqual(handler.requests.withLock { $0.first?.username }, "root")
        // Only the broker's answer reaches the subscriber, not the request.
        let received = watcher.take()
        XCTAssertEqual(payloads(received), ["ok:hello"])
        guard case .publish(let answer)? = received.first else { return XCTFail("no answer") }
        XCTAssertEqual(answer.topic, TopicName("$CONTROL/test/v1/response"))
    }

    func testOtherControlTopicsAreAcknowledgedAndDropped() {
        let handler = EchoControlHandler()
        let harness = Harness(controlHandler: handler)
        let watcher = harness.connect("watcher")
        watcher.subscribeOnly([("$CONTROL/#", .atMostOnce)])
        let client = harness.connect("c")
        client.publish("$CONTROL/other/v1", "x", qos: .atLeastOnce, id: 1)
        XCTAssertEqual(client.take(), [.puback(pid(1))])
        XCTAssertEqual(watcher.take(), [])
        XCTAssertEqual(handler.requests.withLock { $0.count }, 0)
    }

    func testWithoutAHandlerControlTopicsAreOrdinary() {
        let harness = Harness()
        let watcher = harness.connect("watcher")
        watcher.subscribeOnly([("$CONTROL/#", .atMostOnce)])
        harness.connect("c").publish("$CONTROL/test/v1", "x")
        XCTAssertEqual(payloads(watcher.take()), ["x"])
    }

    func testARequestTheACLRefusesIsNotHandled() {
        struct NoControl: AccessControl {
            var checksDeliveries: Bool { false }
            func mayPublish(clientID: String, username: String?, topic: TopicName) -> Bool { clientID != "intruder" }
            func maySubscribe(clientID: String, username: String?, filter: TopicFilter) -> Bool { true }
            func mayReceive(clientID: String, username: String?, topic: TopicName) -> Bool { true }
        }
        let handler = EchoControlHandler()
        let harness = Harness(accessControl: NoControl(), controlHandler: handler)
        harness.connect("intruder").publish("$CONTROL/test/v1", "x")
        XCTAssertEqual(handler.requests.withLock { $0.count }, 0)
    }

    func testDisconnectionsEndMatchingConnectionsWithoutTheirWills() {
        let handler = EchoControlHandler(disconnect: [.username("bob"), .anonymous])
        let harness = Harness(controlHandler: handler)
        let watcher = harness.connect("watcher", username: "carol")
        watcher.subscribeOnly([("will/#", .atMostOnce)])
        let bob = harness.connect(
            "bob",
            will: Will(topic: TopicName("will/bob")!, payload: Array("gone".utf8), qos: .atMostOnce, retain: false),
            username: "bob")
        let anonymous = harness.connect("anon")
        let admin = harness.connect("admin", username: "root")
        admin.publish("$CONTROL/test/v1", "disable bob")
        XCTAssertTrue(bob.isClosed)
        XCTAssertTrue(anonymous.isClosed)
        XCTAssertFalse(admin.isClosed)
        XCTAssertFalse(watcher.isClosed)
        XCTAssertEqual(payloads(watcher.take()), [])
    }
}
