// `max_inflight_bytes`: the in-flight window of QoS 1/2 deliveries per client is bounded by payload bytes too, as
// mosquitto bounds it; deliveries past it wait in the queue and go out as acknowledgements free the bytes.
import MQTTCodec
import MidgeCore
import XCTest

final class InflightBytesTests: XCTestCase {
    private func limited(bytes: Int, messages: Int = 20) -> BrokerConfiguration {
        var configuration = BrokerConfiguration()
        configuration.maxInflightBytes = bytes
        configuration.maxInflightMessages = messages
        return configuration
    }

    func testDeliveriesQueueOnceTheBytesInFlightReachTheLimit() {
        let harness = Harness(limited(bytes: 10))
        let (subscriber, publisher) = harness.subscriberAndPublisher(.atLeastOnce)
        for payload in ["aaaa", "bbbb", "cccc", "dddd"] { publisher.publish("t", payload, qos: .atLeastOnce, id: 1) }
        // 4 + 4 bytes are below 10, so a third goes; 12 bytes then hold the fourth back.
        XCTAssertEqual(payloads(subscriber.take()), ["aaaa", "bbbb", "cccc"])
        XCTAssertEqual(harness.broker.statistics.queuedMessages, 1)
        subscriber.send(.puback(pid(1)))
        XCTAssertEqual(subscriber.take(), [pub("t", "dddd", qos: .atLeastOnce, id: 4)])
    }

    func testAMessageLargerThanTheLimitStillGoesAlone() {
        let harness = Harness(limited(bytes: 4))
        let (subscriber, publisher) = harness.subscriberAndPublisher(.exactlyOnce)
        publisher.publish("t", "larger than four", qos: .exactlyOnce, id: 1)
        publisher.publish("t", "next", qos: .exactlyOnce, id: 2)
        XCTAssertEqual(payloads(subscriber.take()), ["larger than four"])
        // A QoS 2 delivery holds its bytes until PUBCOMP, not PUBREC.
        subscriber.send(.pubrec(pid(1)))
        XCTAssertEqual(subscriber.take(), [.pubrel(pid(1))])
        subscriber.send(.pubcomp(pid(1)))
        XCTAssertEqual(payloads(subscriber.take()), ["next"])
    }

    func testTheMessageCountStillAppliesBesideTheBytes() {
        let harness = Harness(limited(bytes: 1000, messages: 2))
        let (subscriber, publisher) = harness.subscriberAndPublisher(.atLeastOnce)
        for payload in ["1", "2", "3"] { publisher.publish("t", payload, qos: .atLeastOnce, id: 1) }
        XCTAssertEqual(payloads(subscriber.take()), ["1", "2"])
    }

    func testQoS0IsNotCountedOrHeld() {
        let harness = Harness(limited(bytes: 1))
        let (subscriber, publisher) = harness.subscriberAndPublisher(.atLeastOnce)
        publisher.publish("t", "held open", qos: .atLeastOnce, id: 1)
        publisher.publish("t", "zero")
        XCTAssertEqual(payloads(subscriber.take()), ["held open", "zero"])
        publisher.publish("t", "queued", qos: .atLeastOnce, id: 2)
        publisher.publish("t", "zero again")
        XCTAssertEqual(subscriber.take(), [], "behind a queued delivery QoS 0 waits its turn [MQTT-4.6.0-5]")
        subscriber.send(.puback(pid(1)))
        XCTAssertEqual(payloads(subscriber.take()), ["queued", "zero again"])
    }

    func testWithoutALimitEverythingGoesOut() {
        let harness = Harness(limited(bytes: 0))
        let (subscriber, publisher) = harness.subscriberAndPublisher(.atLeastOnce)
        for _ in 0..<5 { publisher.publish("t", String(repeating: "x", count: 1000), qos: .atLeastOnce, id: 1) }
        XCTAssertEqual(payloads(subscriber.take()).count, 5)
    }
}
