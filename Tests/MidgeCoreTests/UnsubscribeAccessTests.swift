// What mosquitto's dynamic-security rules need from the core besides the usual checks: a refused UNSUBSCRIBE is still
// acknowledged [MQTT-3.10.4-4] and the subscription stays; shared subscriptions checked as sent.
import MQTTCodec
import MidgeCore
import XCTest

final class UnsubscribeAccessTests: XCTestCase {
    struct KeepsPinned: AccessControl {
        var checksDeliveries: Bool { false }
        func mayPublish(clientID: String, username: String?, topic: TopicName) -> Bool { true }
        func maySubscribe(clientID: String, username: String?, filter: TopicFilter) -> Bool { true }
        func mayReceive(clientID: String, username: String?, topic: TopicName) -> Bool { true }
        func mayUnsubscribe(clientID: String, username: String?, filter: TopicFilter) -> Bool {
            filter != TopicFilter("pinned")
        }
    }

    struct SharedAsSent: AccessControl {
        var checksDeliveries: Bool { false }
        var checksSharedFiltersAsSent: Bool { true }
        func mayPublish(clientID: String, username: String?, topic: TopicName) -> Bool { true }
        func maySubscribe(clientID: String, username: String?, filter: TopicFilter) -> Bool {
            filter.bytes.starts(with: Array("$share/".utf8))
        }
        func mayReceive(clientID: String, username: String?, topic: TopicName) -> Bool { true }
    }

    func testSharedSubscriptionsCanBeCheckedAsSent() {
        let harness = Harness(accessControl: SharedAsSent())
        let subscriber = harness.connect("s")
        XCTAssertEqual(
            subscriber.subscribe([("$share/g/jobs", .atMostOnce), ("jobs", .atMostOnce)]),
            [.granted(.atMostOnce), .failure])
    }

    func testARefusedUnsubscribeIsAcknowledgedAndTheSubscriptionStays() {
        let harness = Harness(accessControl: KeepsPinned())
        let subscriber = harness.connect("s")
        subscriber.subscribeOnly([("pinned", .atMostOnce), ("free", .atMostOnce)])
        subscriber.unsubscribe(["pinned", "free"])
        XCTAssertEqual(subscriber.take(), [.unsuback(pid(2))])
        let publisher = harness.connect("p")
        publisher.publish("free", "gone")
        publisher.publish("pinned", "kept")
        XCTAssertEqual(payloads(subscriber.take()), ["kept"])
    }
}
