// `upgrade_outgoing_qos`: deliveries at the subscription's granted QoS, whatever the publisher used (mosquitto's
// meaning of the key), for live forwards, queued messages and retained replays.
import MQTTCodec
import MidgeCore
import XCTest

final class UpgradeOutgoingQoSTests: XCTestCase {
    private func upgrading() -> BrokerConfiguration {
        var configuration = BrokerConfiguration()
        configuration.upgradeOutgoingQoS = true
        return configuration
    }

    func testOffByDefaultDeliveryIsTheLowerOfBoth() {
        let harness = Harness()
        let (subscriber, publisher) = harness.subscriberAndPublisher(.exactlyOnce)
        publisher.publish("t", "low")
        XCTAssertEqual(subscriber.take(), [pub("t", "low")])
    }

    func testLiveForwardGoesOutAtTheGrantedQoS() {
        let harness = Harness(upgrading())
        let (subscriber, publisher) = harness.subscriberAndPublisher(.exactlyOnce)
        publisher.publish("t", "zero")
        publisher.publish("t", "one", qos: .atLeastOnce, id: 7)
        XCTAssertEqual(
            subscriber.take(), [pub("t", "zero", qos: .exactlyOnce, id: 1), pub("t", "one", qos: .exactlyOnce, id: 2)])
    }

    func testGrantStillCapsAHigherPublish() {
        let harness = Harness(upgrading())
        let (subscriber, publisher) = harness.subscriberAndPublisher(.atLeastOnce)
        publisher.publish("t", "two", qos: .exactlyOnce, id: 3)
        XCTAssertEqual(subscriber.take(), [pub("t", "two", qos: .atLeastOnce, id: 1)])
    }

    func testEachSubscriberGetsItsOwnGrant() {
        let harness = Harness(upgrading())
        let zero = harness.connect("zero")
        zero.subscribeOnly([("t", .atMostOnce)])
        let one = harness.connect("one")
        one.subscribeOnly([("t", .atLeastOnce)])
        harness.connect("p").publish("t", "m")
        XCTAssertEqual(zero.take(), [pub("t", "m")])
        XCTAssertEqual(one.take(), [pub("t", "m", qos: .atLeastOnce, id: 1)])
    }

    func testOfflinePersistentSessionQueuesTheUpgradedQoS0Message() {
        let harness = Harness(upgrading())
        let subscriber = harness.connect("s", clean: false)
        subscriber.subscribeOnly([("t", .atLeastOnce)])
        subscriber.drop()
        harness.connect("p").publish("t", "while away")
        let back = harness.connectExpectingAnything("s", clean: false)
        XCTAssertEqual(
            back.take(), [connack(.accepted, sessionPresent: true), pub("t", "while away", qos: .atLeastOnce, id: 1)])
    }

    func testRetainedReplayGoesOutAtTheGrantedQoS() {
        let harness = Harness(upgrading())
        harness.connect("p").publish("r", "kept", retain: true)
        let subscriber = harness.connect("s")
        subscriber.subscribe([("r", .exactlyOnce)])
        XCTAssertEqual(subscriber.take(), [pub("r", "kept", qos: .exactlyOnce, id: 1, retain: true)])
    }
}
