// What one client can make the broker hold: topic depth, subscriptions per session, retained messages broker-wide,
// and the memory ceiling the driver reports (`memory_limit`).
import MQTTCodec
import MidgeCore
import XCTest

final class LimitTests: XCTestCase {
    private func deep(_ levels: Int) -> String { Array(repeating: "x", count: levels).joined(separator: "/") }

    private func configuration(_ change: (inout BrokerConfiguration) -> Void) -> BrokerConfiguration {
        var configuration = BrokerConfiguration()
        change(&configuration)
        return configuration
    }

    func test_topicsAtTheDepthLimitAreServed() {
        let harness = Harness()
        let (subscriber, publisher) = harness.subscriberAndPublisher(.atMostOnce, filter: deep(199) + "/+")
        publisher.publish(deep(200), "at the limit")
        XCTAssertEqual(payloads(subscriber.take()), ["at the limit"])
        XCTAssertFalse(publisher.isClosed)
        XCTAssertEqual(harness.broker.statistics.topicsTooDeep, 0)
    }

    func test_publishDeeperThanTheLimitClosesTheConnection() {
        let harness = Harness()
        let (subscriber, publisher) = harness.subscriberAndPublisher(.atMostOnce, filter: "#")
        publisher.publish(deep(201), "too deep", retain: true)
        XCTAssertEqual(publisher.closeReason, .protocolError("publish topic of 201 levels, above max_topic_levels"))
        XCTAssertEqual(subscriber.take(), [], "nothing routed")
        XCTAssertEqual(harness.broker.statistics.retainedMessages, 0, "nothing retained")
        XCTAssertEqual(harness.broker.statistics.topicsTooDeep, 1)
        XCTAssertEqual(harness.logs.count("above max_topic_levels"), 1, "logged once")
    }

    func test_subscribeWithOneFilterTooDeepClosesWithoutSubscribingAny() {
        let harness = Harness()
        let client = harness.connect("c")
        client.send(
            .subscribe(
                Subscribe(
                    packetID: pid(1),
                    requests: [
                        SubscriptionRequest(filter: filter("ok"), qos: .atMostOnce),
                        SubscriptionRequest(filter: filter(deep(1000) + "/#"), qos: .atMostOnce),
                    ])))
        XCTAssertEqual(client.take(), [], "no SUBACK")
        XCTAssertEqual(client.closeReason, .protocolError("subscribe topic of 1001 levels, above max_topic_levels"))
        XCTAssertEqual(harness.broker.statistics.subscriptions, 0)
    }

    func test_unsubscribeAndWillDeeperThanTheLimitClose() {
        let harness = Harness()
        let client = harness.connect("c")
        client.unsubscribe([deep(300)])
        XCTAssertEqual(client.take(), [], "no UNSUBACK")
        XCTAssertEqual(client.closeReason, .protocolError("unsubscribe topic of 300 levels, above max_topic_levels"))

        let willing = harness.connectExpectingAnything(
            "w", will: Will(topic: TopicName(deep(250))!, payload: [1], qos: .atMostOnce, retain: true))
        XCTAssertEqual(willing.take(), [], "closed without a CONNACK, as mosquitto does")
        XCTAssertEqual(willing.closeReason, .protocolError("connect topic of 250 levels, above max_topic_levels"))
        XCTAssertEqual(harness.broker.statistics.sessions, 0)
    }

    func test_depthLimitIsConfigurable() {
        let harness = Harness(configuration { $0.maxTopicLevels = 3 })
        let client = harness.connect("c")
        XCTAssertEqual(client.subscribe([("a/b/c", .atMostOnce)]), [.granted(.atMostOnce)])
        client.publish("a/b/c/d", "x")
        XCTAssertNotNil(client.closeReason)
    }

    func test_maxSubscriptionsRefusesNewFiltersButNotReplacements() {
        let harness = Harness(configuration { $0.maxSubscriptions = 2 })
        let client = harness.connect("c")
        XCTAssertEqual(
            client.subscribe([("a", .atMostOnce), ("b", .atMostOnce), ("c", .atMostOnce), ("a", .atLeastOnce)]),
            [.granted(.atMostOnce), .granted(.atMostOnce), .failure, .granted(.atLeastOnce)])
        XCTAssertEqual(harness.broker.statistics.subscriptions, 2)
        XCTAssertEqual(harness.broker.statistics.subscriptionsRefused, 1)
        XCTAssertEqual(harness.logs.count("max_subscriptions (2) reached"), 1)
        XCTAssertFalse(client.isClosed, "a refused filter leaves the connection open")
        client.unsubscribe(["b"])
        _ = client.take()
        XCTAssertEqual(client.subscribe([("c", .atMostOnce)], id: 3), [.granted(.atMostOnce)], "room again")
        // Another session has its own allowance.
        XCTAssertEqual(harness.connect("d").subscribe([("a", .atMostOnce)]), [.granted(.atMostOnce)])
    }

    func test_retainedMessagesMaxRefusesNewTopicsButStillRoutes() {
        let harness = Harness(configuration { $0.retainedMessagesMax = 2 })
        let (subscriber, publisher) = harness.subscriberAndPublisher(.atMostOnce, filter: "r/#")
        publisher.publish("r/1", "a", retain: true)
        publisher.publish("r/2", "b", retain: true)
        publisher.publish("r/3", "c", retain: true)
        XCTAssertEqual(payloads(subscriber.take()), ["a", "b", "c"], "refused retained copies are still routed")
        XCTAssertEqual(harness.broker.statistics.retainedMessages, 2)
        XCTAssertEqual(harness.broker.statistics.retainedRefused, 1)
        XCTAssertTrue(harness.logs.contains("retained_messages_max (2) reached"))
        publisher.publish("r/1", "replaced", retain: true)
        let late = harness.connect("late")
        late.subscribe([("r/#", .atMostOnce)])
        XCTAssertEqual(Set(payloads(late.take())), ["replaced", "b"])
    }

    func test_retainedBytesMaxCountsTopicAndPayload() {
        let harness = Harness(configuration { $0.retainedBytesMax = 10 })
        let publisher = harness.connect("p")
        publisher.publish("ab", "12345678", retain: true)  // 10 bytes: at the limit
        publisher.publish("c", "1", retain: true)  // 2 more: refused
        XCTAssertEqual(harness.broker.statistics.retainedBytes, 10)
        publisher.publish("ab", "123456789", retain: true)  // 11: refused, and the stale 10-byte one deleted
        XCTAssertEqual(harness.broker.statistics.retainedMessages, 0)
        XCTAssertEqual(harness.broker.statistics.retainedRefused, 2)
    }

    func test_aboveTheMemoryCeilingNewConnectionsAreRefusedAndConnectedClientsServed() {
        let harness = Harness()
        let (subscriber, publisher) = harness.subscriberAndPublisher(.atLeastOnce, filter: "t/#")
        let offline = harness.connect("offline", clean: false)
        offline.subscribeOnly([("t/#", .atLeastOnce)])
        offline.drop()
        harness.broker.memoryCeilingReached = true
        XCTAssertTrue(harness.logs.contains("Memory limit reached"))

        let newcomer = harness.connectExpectingAnything("new")
        XCTAssertEqual(newcomer.take(), [.connack(ConnAck(sessionPresent: false, returnCode: .serverUnavailable))])
        XCTAssertNotNil(newcomer.closeReason)

        publisher.publish("t/1", "live", qos: .atLeastOnce, id: 1, retain: true)
        XCTAssertEqual(publisher.take(), [.puback(pid(1))], "the publisher is still served")
        XCTAssertEqual(payloads(subscriber.take()), ["live"], "a flowing subscriber still gets it")
        XCTAssertEqual(harness.broker.statistics.retainedMessages, 0, "no new retained message")
        let statistics = harness.broker.statistics
        XCTAssertEqual(statistics.messagesDroppedForMemory, 1, "nothing queued for the offline session")
        XCTAssertEqual(statistics.connectionsRefusedForMemory, 1)
        XCTAssertEqual(statistics.retainedRefused, 1)

        harness.broker.memoryCeilingReached = false
        XCTAssertTrue(harness.logs.contains("below the limit again"))
        XCTAssertEqual(
            harness.connectExpectingAnything("later").take().first,
            .connack(ConnAck(sessionPresent: false, returnCode: .accepted)))
        publisher.publish("t/2", "kept", qos: .atLeastOnce, id: 2, retain: true)
        XCTAssertEqual(harness.broker.statistics.retainedMessages, 1)
    }
}
