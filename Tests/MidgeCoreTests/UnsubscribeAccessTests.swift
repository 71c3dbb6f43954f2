// UNSUBSCRIBE refused by the access control (mosquitto's dynamic-security unsubscribe rules): still acknowledged
// [MQTT-3.10.4-4], and the subscription stays.
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
