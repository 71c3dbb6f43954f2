// Retained messages (§3.3.1.3).
import MQTTCodec
import MidgeCore
import XCTest

final class RetainTests: XCTestCase {
    func test_MQTT_3_3_1_5_retainedMessageIsStoredWithItsQoS() {
        let harness = Harness()
        harness.connect("p").publish("a/b", "kept", qos: .atLeastOnce, id: 1, retain: true)
        let subscriber = harness.connect("s")
        subscriber.subscribe([("a/b", .atLeastOnce)])
        XCTAssertEqual(subscriber.take(), [pub("a/b", "kept", qos: .atLeastOnce, id: 1, retain: true)])
        XCTAssertEqual(harness.broker.statistics.retainedMessages, 1)
    }

    func test_MQTT_3_3_1_6_newSubscriptionGetsTheRetainedMessageOfEveryMatchingTopic() {
        let harness = Harness()
        let publisher = harness.connect("p")
        for name in ["a/1", "a/2", "b/1", "a/1/deep", "$SYS/x"] { publisher.publish(name, name, retain: true) }
        let plus = harness.connect("plus")
        plus.subscribe([("a/+", .atMostOnce)])
        XCTAssertEqual(Set(payloads(plus.take())), ["a/1", "a/2"])
        let hash = harness.connect("hash")
        hash.subscribe([("#", .atMostOnce)])
        XCTAssertEqual(Set(payloads(hash.take())), ["a/1", "a/2", "b/1", "a/1/deep"], "no $ topics [MQTT-4.7.2-1]")
        let parent = harness.connect("parent")
        parent.subscribe([("a/1/#", .atMostOnce)])
        XCTAssertEqual(Set(payloads(parent.take())), ["a/1", "a/1/deep"])
        let exact = harness.connect("exact")
        exact.subscribe([("b/1", .atMostOnce)])
        XCTAssertEqual(payloads(exact.take()), ["b/1"])
    }

    func test_retainedWildcardReplayReachesDollarTopicsOnlyThroughDollarFilters() {
        let harness = Harness()
        harness.connect("p").publish("$foo/bar", "d", retain: true)
        let wildcard = harness.connect("w")
        wildcard.subscribe([("+/bar", .atMostOnce), ("#", .atMostOnce)])
        XCTAssertEqual(wildcard.take(), [])
        let dollar = harness.connect("d")
        dollar.subscribe([("$foo/+", .atMostOnce)])
        XCTAssertEqual(dollar.take(), [pub("$foo/bar", "d", retain: true)])
    }

    func test_MQTT_3_3_1_8_replayHasRetainOneAndTheLowerQoS() {
        let harness = Harness()
        let publisher = harness.connect("p")
        publisher.publish("two", "2", qos: .exactlyOnce, id: 1, retain: true)
        publisher.publish("zero", "0", retain: true)
        let subscriber = harness.connect("s")
        subscriber.subscribe([("two", .atLeastOnce), ("zero", .exactlyOnce)])
        XCTAssertEqual(
            subscriber.take(),
            [pub("two", "2", qos: .atLeastOnce, id: 1, retain: true), pub("zero", "0", retain: true)])
    }

    func test_MQTT_3_3_1_9_liveForwardHasRetainZero() {
        let harness = Harness()
        let subscriber = harness.connect("s")
        subscriber.subscribeOnly([("t", .atLeastOnce)])
        harness.connect("p").publish("t", "x", qos: .atLeastOnce, id: 1, retain: true)
        XCTAssertEqual(subscriber.take(), [pub("t", "x", qos: .atLeastOnce, id: 1, retain: false)])
    }

    func test_MQTT_3_3_1_10_emptyRetainedPayloadDeletesAndIsForwarded() {
        let harness = Harness()
        let publisher = harness.connect("p")
        publisher.publish("t", "x", retain: true)
        let live = harness.connect("live")
        live.subscribe([("t", .atMostOnce)])
        XCTAssertEqual(live.take(), [pub("t", "x", retain: true)])
        publisher.publish("t", "", retain: true)
        XCTAssertEqual(live.take(), [pub("t", "", retain: false)])
        let late = harness.connect("late")
        late.subscribe([("t", .atMostOnce)])
        XCTAssertEqual(late.take(), [])
        XCTAssertEqual(harness.broker.statistics.retainedMessages, 0)
    }

    func test_MQTT_3_3_1_11_emptyRetainedPayloadIsNeverStored() {
        let harness = Harness()
        harness.connect("p").publish("fresh", "", qos: .atLeastOnce, id: 1, retain: true)
        let late = harness.connect("late")
        late.subscribe([("fresh", .atMostOnce)])
        XCTAssertEqual(late.take(), [])
        XCTAssertEqual(harness.broker.statistics.retainedMessages, 0)
    }

    func test_MQTT_3_3_1_7_newRetainedMessageReplacesTheOld() {
        let harness = Harness()
        let publisher = harness.connect("p")
        publisher.publish("t", "old", qos: .atLeastOnce, id: 1, retain: true)
        publisher.publish("t", "new", retain: true)
        let late = harness.connect("late")
        late.subscribe([("t", .atLeastOnce)])
        XCTAssertEqual(late.take(), [pub("t", "new", retain: true)])
        XCTAssertEqual(harness.broker.statistics.retainedMessages, 1)
    }

    func test_MQTT_3_3_1_12_nonRetainedPublishLeavesTheStoreAlone() {
        let harness = Harness()
        let publisher = harness.connect("p")
        publisher.publish("t", "a", retain: true)
        publisher.publish("t", "b")
        publisher.publish("t", "")
        let late = harness.connect("late")
        late.subscribe([("t", .atMostOnce)])
        XCTAssertEqual(late.take(), [pub("t", "a", retain: true)])
    }

    func test_MQTT_3_1_2_7_retainedMessagesSurviveTheSessionThatPublishedThem() {
        let harness = Harness()
        let publisher = harness.connect("p")
        publisher.publish("t", "stays", retain: true)
        publisher.disconnect()
        XCTAssertEqual(harness.broker.statistics.sessions, 0)
        let late = harness.connect("late")
        late.subscribe([("t", .atMostOnce)])
        XCTAssertEqual(late.take(), [pub("t", "stays", retain: true)])
    }

    func test_retainUnavailableClosesARetainedPublish() {
        // As mosquitto: with retain_available false a PUBLISH with RETAIN=1 is a protocol error; RETAIN=0 flows.
        var configuration = BrokerConfiguration()
        configuration.retainAvailable = false
        let harness = Harness(configuration)
        let live = harness.connect("live")
        live.subscribeOnly([("t", .atMostOnce)])
        let publisher = harness.connect("p")
        publisher.publish("t", "plain")
        publisher.publish("t", "x", retain: true)
        XCTAssertEqual(publisher.closeReason, .protocolError("retained PUBLISH while retain_available is false"))
        XCTAssertEqual(live.take(), [pub("t", "plain")])
        XCTAssertEqual(harness.broker.statistics.retainedMessages, 0)
    }

    func test_retainedReplayToAnOfflineSessionIsQueued() {
        var configuration = BrokerConfiguration()
        configuration.maxInflightMessages = 1
        let harness = Harness(configuration)
        let publisher = harness.connect("p")
        for n in 1...3 { publisher.publish("r/\(n)", "\(n)", qos: .atLeastOnce, id: UInt16(n), retain: true) }
        let subscriber = harness.connect("s")
        subscriber.subscribe([("r/+", .atLeastOnce)])
        let first = subscriber.take()
        XCTAssertEqual(first.count, 1, "the window holds one; the other replays wait in the queue")
        XCTAssertEqual(Set(receiveAcking(subscriber) + payloads(first)).count, 1)
        // Acknowledging the first releases the rest.
        guard case .publish(let publish)? = first.first, let id = publish.packetID else { return XCTFail() }
        subscriber.send(.puback(id))
        XCTAssertEqual(Set(payloads(first) + receiveAcking(subscriber)), ["1", "2", "3"])
    }

    func test_retainedStoreDeletesPruneTheTree() {
        let harness = Harness()
        let publisher = harness.connect("p")
        for n in 0..<20 { publisher.publish("a/b/\(n)", "x", retain: true) }
        publisher.publish("a", "parent", retain: true)
        XCTAssertEqual(harness.broker.statistics.retainedMessages, 21)
        for n in 0..<20 { publisher.publish("a/b/\(n)", "", retain: true) }
        XCTAssertEqual(harness.broker.statistics.retainedMessages, 1)
        let late = harness.connect("late")
        late.subscribe([("a/#", .atMostOnce)])
        XCTAssertEqual(late.take(), [pub("a", "parent", retain: true)])
    }
}
