// Slow subscribers: output congestion reported by the driver, queue limits, and `queue_full_policy` drop and block.
import MQTTCodec
import MidgeCore
import XCTest

final class FlowControlTests: XCTestCase {
    private func configuration(
        policy: QueueFullPolicy, queued: Int, inflight: Int = 20
    ) -> BrokerConfiguration {
        var configuration = BrokerConfiguration()
        configuration.queueFullPolicy = policy
        configuration.maxQueuedMessages = queued
        configuration.maxInflightMessages = inflight
        return configuration
    }

    func test_congestedOutputQueuesQoS0UntilItDrains() {
        let harness = Harness()
        let (subscriber, publisher) = harness.subscriberAndPublisher(.atMostOnce)
        publisher.publish("t", "before")
        XCTAssertEqual(payloads(subscriber.take()), ["before"])
        harness.congest(subscriber.id)
        for n in 1...3 { publisher.publish("t", "\(n)") }
        XCTAssertEqual(subscriber.take(), [])
        harness.drain(subscriber.id)
        XCTAssertEqual(payloads(subscriber.take()), ["1", "2", "3"])
        publisher.publish("t", "after")
        XCTAssertEqual(payloads(subscriber.take()), ["after"])
    }

    /// A 40-byte output window, a QoS 0 subscriber of "t" and a publisher.
    private func windowed(_ policy: QueueFullPolicy) -> (Harness, Client, Client) {
        var settings = configuration(policy: policy, queued: 10)
        settings.outputWindowBytes = 40
        let harness = Harness(settings)
        let subscriber = harness.connect("s")
        subscriber.subscribeOnly([("t", .atMostOnce)])
        return (harness, subscriber, harness.connect("p"))
    }

    func test_outputWindowAsksForConfirmationAtHalfAndWaitsWhenFull() {
        // Each delivery of "t" with a 5-byte payload counts 1 + 5 + 8 = 14 bytes against a 40-byte window: the
        // second passes half of it (a confirmation is asked for), the third fills it.
        let (harness, subscriber, publisher) = windowed(.drop)
        for n in 1...5 { publisher.publish("t", "msg-\(n)") }
        XCTAssertEqual(payloads(subscriber.take()), ["msg-1", "msg-2", "msg-3"])
        XCTAssertEqual(harness.takeReadingChanges(), [.confirmOutput(subscriber.id)])
        // The answer covers the first two: 14 bytes stay unconfirmed, and the queue moves on in order.
        harness.confirm(subscriber.id)
        XCTAssertEqual(payloads(subscriber.take()), ["msg-4", "msg-5"])
        XCTAssertEqual(harness.takeReadingChanges(), [.confirmOutput(subscriber.id)])
        harness.confirm(subscriber.id)
        publisher.publish("t", "msg-6")
        XCTAssertEqual(payloads(subscriber.take()), ["msg-6"])
        XCTAssertEqual(harness.takeReadingChanges(), [.confirmOutput(subscriber.id)])
        XCTAssertEqual(harness.broker.statistics.messagesDropped, 0)
    }

    func test_aDriverThatAnswersInTimeNeverStallsTheStream() {
        let (harness, subscriber, publisher) = windowed(.drop)
        for n in 1...20 {
            publisher.publish("t", "msg-\(n % 10)")
            for change in harness.takeReadingChanges() { harness.confirm(change.connection) }
        }
        XCTAssertEqual(subscriber.take().count, 20)
        XCTAssertEqual(harness.broker.statistics.messagesDropped, 0)
    }

    func test_congestionAndAFullWindowBlockTheOutputEachOnItsOwn() {
        let (harness, subscriber, publisher) = windowed(.block)
        publisher.publish("t", "msg-1")
        harness.congest(subscriber.id)
        for n in 2...5 { publisher.publish("t", "msg-\(n)") }
        XCTAssertEqual(payloads(subscriber.take()), ["msg-1"])
        harness.drain(subscriber.id)
        XCTAssertEqual(payloads(subscriber.take()), ["msg-2", "msg-3"], "14 + 14 + 14 bytes fill the window")
        XCTAssertEqual(harness.takeReadingChanges(), [.confirmOutput(subscriber.id)])
        harness.drain(subscriber.id)
        XCTAssertEqual(subscriber.take(), [], "a drain does not free the window")
        harness.confirm(subscriber.id)
        XCTAssertEqual(payloads(subscriber.take()), ["msg-4", "msg-5"])
    }

    func test_dropPolicyDropsNewDeliveriesToACongestedSubscriberAndLogsTheEpisode() {
        let harness = Harness(configuration(policy: .drop, queued: 2))
        let (subscriber, publisher) = harness.subscriberAndPublisher(.atMostOnce)
        harness.congest(subscriber.id)
        for n in 1...5 { publisher.publish("t", "\(n)") }
        XCTAssertEqual(harness.broker.statistics.messagesDropped, 3)
        XCTAssertEqual(harness.logs.count("Outgoing messages are being dropped for client s."), 1)
        XCTAssertEqual(harness.takeReadingChanges(), [])
        harness.drain(subscriber.id)
        XCTAssertEqual(payloads(subscriber.take()), ["1", "2"])
        XCTAssertTrue(harness.logs.contains("Client s has room again; 3 messages to it were dropped."))
    }

    func test_blockPolicyHoldsThePublisherUntilTheQueueIsHalfEmpty() {
        let harness = Harness(configuration(policy: .block, queued: 2, inflight: 1))
        let (subscriber, publisher) = harness.subscriberAndPublisher(.atLeastOnce)
        for n in 1...5 { publisher.publish("t", "\(n)", qos: .atLeastOnce, id: UInt16(n)) }
        // Every PUBLISH is acknowledged: the broker has taken responsibility for all five.
        XCTAssertEqual(publisher.take(), (1...5).map { Packet.puback(pid(UInt16($0))) })
        XCTAssertEqual(harness.takeReadingChanges(), [.pause(publisher.id)])
        XCTAssertEqual(harness.broker.statistics.messagesDropped, 0)
        XCTAssertEqual(harness.broker.statistics.publishersHeld, 1)

        XCTAssertEqual(payloads(subscriber.take()), ["1"])
        subscriber.send(.puback(pid(1)))
        subscriber.send(.puback(pid(2)))
        XCTAssertEqual(payloads(subscriber.take()), ["2", "3"])
        XCTAssertEqual(harness.takeReadingChanges(), [], "three and then two queued: not yet half of 2")
        subscriber.send(.puback(pid(3)))
        XCTAssertEqual(harness.takeReadingChanges(), [.resume(publisher.id)])
        XCTAssertEqual(receiveAcking(subscriber), ["4", "5"])
    }

    func test_blockPolicyHoldsPublishersOfACongestedQoS0Subscriber() {
        let harness = Harness(configuration(policy: .block, queued: 2))
        let subscriber = harness.connect("s")
        subscriber.subscribeOnly([("t", .atMostOnce)])
        let publishers = [harness.connect("p1"), harness.connect("p2")]
        harness.congest(subscriber.id)
        for n in 1...6 { publishers[n % 2].publish("t", "\(n)") }
        XCTAssertEqual(harness.takeReadingChanges(), [.pause(publishers[1].id), .pause(publishers[0].id)])
        harness.drain(subscriber.id)
        XCTAssertEqual(payloads(subscriber.take()), ["1", "2", "3", "4", "5", "6"])
        XCTAssertEqual(harness.takeReadingChanges(), [.resume(publishers[1].id), .resume(publishers[0].id)])
        XCTAssertEqual(harness.broker.statistics.messagesDropped, 0)
    }

    func test_aPublisherHeldByTwoQueuesResumesOnlyWhenBothHaveDrained() {
        let harness = Harness(configuration(policy: .block, queued: 1, inflight: 1))
        let subscribers = [harness.connect("s1"), harness.connect("s2")]
        for subscriber in subscribers { subscriber.subscribeOnly([("t", .atLeastOnce)]) }
        let publisher = harness.connect("p")
        for n in 1...3 { publisher.publish("t", "\(n)", qos: .atLeastOnce, id: UInt16(n)) }
        XCTAssertEqual(harness.takeReadingChanges(), [.pause(publisher.id)])
        XCTAssertEqual(receiveAcking(subscribers[0]), ["1", "2", "3"])
        XCTAssertEqual(harness.takeReadingChanges(), [])
        XCTAssertEqual(receiveAcking(subscribers[1]), ["1", "2", "3"])
        XCTAssertEqual(harness.takeReadingChanges(), [.resume(publisher.id)])
    }

    /// [MQTT-3.1.2-24] the broker is not reading a held client, so its silence does not count against it; the
    /// keepalive clock restarts at the release.
    func test_MQTT_3_1_2_24_aHeldPublisherIsNotTimedOut() {
        let harness = Harness(configuration(policy: .block, queued: 1, inflight: 1))
        let subscriber = harness.connect("s")
        subscriber.subscribeOnly([("t", .atLeastOnce)])
        let publisher = harness.connect("p", keepAlive: 10)
        for n in 1...3 { publisher.publish("t", "\(n)", qos: .atLeastOnce, id: UInt16(n)) }
        XCTAssertEqual(harness.takeReadingChanges(), [.pause(publisher.id)])
        harness.advance(20)
        XCTAssertFalse(publisher.isClosed)
        XCTAssertEqual(receiveAcking(subscriber), ["1", "2", "3"])
        XCTAssertEqual(harness.takeReadingChanges(), [.resume(publisher.id)])
        harness.advance(14)
        XCTAssertFalse(publisher.isClosed)
        harness.advance(2)
        XCTAssertEqual(publisher.closeReason, .keepaliveTimeout)
    }

    /// The policy protects connected subscribers: one that goes away releases its publishers, and its offline
    /// queue drops at the limit as mosquitto's does.
    func test_aSubscriberGoingOfflineReleasesItsPublishersAndItsQueueDrops() {
        let harness = Harness(configuration(policy: .block, queued: 1, inflight: 1))
        let (subscriber, publisher) = harness.subscriberAndPublisher(.atLeastOnce, clean: false)
        for n in 1...3 { publisher.publish("t", "\(n)", qos: .atLeastOnce, id: UInt16(n)) }
        XCTAssertEqual(harness.takeReadingChanges(), [.pause(publisher.id)])
        subscriber.drop()
        XCTAssertEqual(harness.takeReadingChanges(), [.resume(publisher.id)])
        publisher.publish("t", "4", qos: .atLeastOnce, id: 4)
        XCTAssertEqual(harness.broker.statistics.messagesDropped, 1)
        XCTAssertEqual(harness.takeReadingChanges(), [])
    }

    /// A client that publishes to a topic it subscribes to holds itself; the driver still passes its PUBACKs,
    /// which drain its queue and release it.
    func test_aClientFeedingItsOwnQueueIsReleasedByItsOwnAcks() {
        let harness = Harness(configuration(policy: .block, queued: 2, inflight: 1))
        let client = harness.connect("me")
        client.subscribeOnly([("t", .atLeastOnce)])
        for n in 1...4 { client.publish("t", "\(n)", qos: .atLeastOnce, id: UInt16(n)) }
        XCTAssertEqual(harness.takeReadingChanges(), [.pause(client.id)])
        XCTAssertEqual(receiveAcking(client), ["1", "2", "3", "4"])
        XCTAssertEqual(harness.takeReadingChanges(), [.resume(client.id)])
    }

    /// Deliveries with no publisher to hold (retained messages for a new subscription, Wills) go over the limit
    /// rather than being dropped.
    func test_blockPolicyQueuesRetainedMessagesBeyondTheLimit() {
        let harness = Harness(configuration(policy: .block, queued: 1, inflight: 1))
        let publisher = harness.connect("p")
        for n in 1...3 { publisher.publish("r/\(n)", "\(n)", qos: .atLeastOnce, id: UInt16(n), retain: true) }
        let subscriber = harness.connect("s")
        subscriber.subscribe([("r/#", .atLeastOnce)])
        XCTAssertEqual(receiveAcking(subscriber).sorted(), ["1", "2", "3"])
        XCTAssertEqual(harness.broker.statistics.messagesDropped, 0)
        XCTAssertEqual(harness.takeReadingChanges(), [])
    }

    func test_congestionReportsForUnknownConnectionsAreIgnored() {
        let harness = Harness()
        let stranger = harness.newConnectionID()
        harness.congest(stranger)
        harness.drain(stranger)
        XCTAssertTrue(harness.actions.isEmpty)
    }
}
