// SUBSCRIBE and UNSUBSCRIBE (§3.8, §3.10).
import MQTTCodec
import MidgeCore
import XCTest

final class SubscribeTests: XCTestCase {
    func test_MQTT_3_8_4_1_and_3_9_3_1_oneSubackWithOneCodePerFilterInOrder() {
        let harness = Harness()
        let client = harness.connect("a")
        client.send(
            .subscribe(
                Subscribe(
                    packetID: pid(42),
                    requests: [
                        SubscriptionRequest(filter: filter("x"), qos: .exactlyOnce),
                        SubscriptionRequest(filter: filter("y"), qos: .atMostOnce),
                        SubscriptionRequest(filter: filter("z"), qos: .atLeastOnce),
                    ])))
        XCTAssertEqual(
            client.take(),
            [
                .suback(
                    SubAck(
                        packetID: pid(42),
                        returnCodes: [.granted(.exactlyOnce), .granted(.atMostOnce), .granted(.atLeastOnce)]))
            ])
    }

    func test_grantedQoSIsCappedByMaxQoS() {
        var configuration = BrokerConfiguration()
        configuration.maxQoS = .atLeastOnce
        let harness = Harness(configuration)
        let client = harness.connect("a")
        XCTAssertEqual(
            client.subscribe([("x", .exactlyOnce), ("y", .atMostOnce), ("z", .atLeastOnce)]),
            [.granted(.atLeastOnce), .granted(.atMostOnce), .granted(.atLeastOnce)])
        // A broker-originated QoS 2 message is downgraded to the capped grant.
        var actions: [Action] = []
        harness.broker.publish(
            Message(topic: topic("x"), payload: Array("m".utf8), qos: .exactlyOnce), retain: false, into: &actions)
        guard case .send(_, .publish(let delivery))? = actions.first else { return XCTFail("\(actions)") }
        XCTAssertEqual(delivery.qos, .atLeastOnce)
    }

    func test_MQTT_3_8_4_5_deniedFilterGetsFailureAndOthersAreGranted() {
        let harness = Harness(accessControl: DenyTopics(subscribe: ["secret/#"]))
        let client = harness.connect("a")
        XCTAssertEqual(
            client.subscribe([("open", .atLeastOnce), ("secret/#", .atLeastOnce), ("more", .atMostOnce)]),
            [.granted(.atLeastOnce), .failure, .granted(.atMostOnce)])
        harness.connect("p").publish("secret/x", "no")
        XCTAssertEqual(client.take(), [])
        XCTAssertEqual(harness.broker.statistics.subscriptions, 2)
    }

    func test_MQTT_3_8_4_1_subackEvenWhenEveryFilterIsRefused() {
        let harness = Harness(accessControl: DenyTopics(subscribe: ["a", "b"]))
        let client = harness.connect("c")
        XCTAssertEqual(client.subscribe([("a", .atMostOnce), ("b", .atLeastOnce)]), [.failure, .failure])
    }

    func test_MQTT_3_8_4_3_identicalFilterReplacesTheSubscriptionAndResendsRetained() {
        let harness = Harness()
        let publisher = harness.connect("p")
        publisher.publish("t", "kept", qos: .atLeastOnce, id: 1, retain: true)
        let client = harness.connect("a")
        client.subscribe([("t", .atMostOnce)])
        XCTAssertEqual(client.take(), [pub("t", "kept", retain: true)])
        client.subscribe([("t", .atLeastOnce)], id: 2)
        XCTAssertEqual(client.take(), [pub("t", "kept", qos: .atLeastOnce, id: 1, retain: true)])
        publisher.publish("t", "live", qos: .atLeastOnce, id: 2)
        XCTAssertEqual(client.take(), [pub("t", "live", qos: .atLeastOnce, id: 2)], "one copy, at the new QoS")
        XCTAssertEqual(harness.broker.statistics.subscriptions, 1)
    }

    func test_MQTT_3_8_4_4_severalFiltersActLikeASeriesOfSubscribes() {
        let harness = Harness()
        harness.connect("p").publish("a", "retained", qos: .exactlyOnce, id: 1, retain: true)
        let client = harness.connect("c")
        XCTAssertEqual(
            client.subscribe([("a", .atMostOnce), ("b", .atLeastOnce), ("a", .exactlyOnce)]),
            [.granted(.atMostOnce), .granted(.atLeastOnce), .granted(.exactlyOnce)])
        XCTAssertEqual(client.take(), [pub("a", "retained", qos: .exactlyOnce, id: 1, retain: true)])
        XCTAssertEqual(harness.broker.statistics.subscriptions, 2)
    }

    /// One SUBSCRIBE with tens of thousands of filters (repeats included) is handled in one linear pass: one code
    /// per filter, each distinct filter subscribed once, its retained message sent once.
    func test_MQTT_3_8_4_4_hugeSubscribeWithRepeatedFilters() {
        let harness = Harness()
        harness.connect("p").publish("f/7", "retained", qos: .atMostOnce, retain: true)
        let client = harness.connect("c")
        let requests = (0..<30_000).map { ("f/\($0 % 10_000)", QoS.atMostOnce) }
        XCTAssertEqual(client.subscribe(requests), Array(repeating: .granted(.atMostOnce), count: 30_000))
        XCTAssertEqual(client.take(), [pub("f/7", "retained", retain: true)])
        XCTAssertEqual(harness.broker.statistics.subscriptions, 10_000)
    }

    func test_MQTT_2_3_1_7_subackAndUnsubackEchoThePacketID() {
        let harness = Harness()
        let client = harness.connect("a")
        for raw: UInt16 in [1, 0x7FFF, 0xFFFF] {
            XCTAssertEqual(client.subscribe([("t", .atMostOnce)], id: raw), [.granted(.atMostOnce)])
            client.unsubscribe(["t"], id: raw)
            XCTAssertEqual(client.take(), [.unsuback(pid(raw))])
        }
    }

    func test_MQTT_3_10_4_1_unsubscribeComparesFiltersExactly() {
        let harness = Harness()
        let client = harness.connect("a")
        client.subscribeOnly([("a/+", .atMostOnce)])
        let publisher = harness.connect("p")
        client.unsubscribe(["a/b"])
        XCTAssertEqual(client.take(), [.unsuback(pid(2))])
        publisher.publish("a/b", "still")
        XCTAssertEqual(payloads(client.take()), ["still"])
        client.unsubscribe(["a/+"])
        XCTAssertEqual(client.take(), [.unsuback(pid(2))])
        publisher.publish("a/b", "gone")
        XCTAssertEqual(client.take(), [])
    }

    func test_MQTT_3_10_4_5_unsubackEvenWhenNothingWasRemoved() {
        let harness = Harness()
        let client = harness.connect("a")
        client.unsubscribe(["never/subscribed"], id: 9)
        XCTAssertEqual(client.take(), [.unsuback(pid(9))])
    }

    func test_MQTT_3_10_4_6_severalFiltersGetOneUnsuback() {
        let harness = Harness()
        let client = harness.connect("c")
        client.subscribeOnly([("a", .atMostOnce), ("b", .atMostOnce), ("c", .atMostOnce)])
        client.unsubscribe(["a", "b"])
        XCTAssertEqual(client.take(), [.unsuback(pid(2))])
        let publisher = harness.connect("p")
        for name in ["a", "b", "c"] { publisher.publish(name, name) }
        XCTAssertEqual(payloads(client.take()), ["c"])
        XCTAssertEqual(harness.broker.statistics.subscriptions, 1)
    }

    func test_MQTT_3_10_4_2_noNewMessagesThroughADeletedSubscriptionNorQueued() {
        let harness = Harness()
        let client = harness.connect("c", clean: false)
        client.subscribeOnly([("t", .atLeastOnce)])
        client.unsubscribe(["t"])
        _ = client.take()
        client.drop()
        harness.connect("p").publish("t", "x", qos: .atLeastOnce, id: 1)
        let back = harness.connectExpectingAnything("c", clean: false)
        XCTAssertEqual(back.take(), [connack(.accepted, sessionPresent: true)])
    }

    func test_MQTT_3_10_4_3_deliveriesInFlightCompleteAfterUnsubscribe() {
        let harness = Harness()
        let client = harness.connect("c", clean: false)
        client.subscribeOnly([("q1", .atLeastOnce), ("q2", .exactlyOnce)])
        let publisher = harness.connect("p")
        publisher.publish("q1", "one", qos: .atLeastOnce, id: 1)
        publisher.publish("q2", "two", qos: .exactlyOnce, id: 2)
        XCTAssertEqual(client.take().count, 2)
        client.unsubscribe(["q1", "q2"])
        XCTAssertEqual(client.take(), [.unsuback(pid(2))])
        client.send(.pubrec(pid(2)))
        XCTAssertEqual(client.take(), [.pubrel(pid(2))], "the QoS 2 flow continues")
        // On a reconnect the unacknowledged QoS 1 delivery is still resent.
        client.drop()
        let back = harness.connectExpectingAnything("c", clean: false)
        XCTAssertEqual(
            back.take(),
            [
                connack(.accepted, sessionPresent: true), pub("q1", "one", qos: .atLeastOnce, id: 1, dup: true),
                .pubrel(pid(2)),
            ])
    }
}
