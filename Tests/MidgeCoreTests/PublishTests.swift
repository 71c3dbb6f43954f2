// Inbound PUBLISH and the outbound QoS flows: acknowledgements, ids, windows, resending (§3.3–3.7, §4.3–4.6).
import MQTTCodec
import MidgeCore
import XCTest

final class PublishTests: XCTestCase {
    func test_MQTT_3_3_4_1_qos0GetsNoReply() {
        let harness = Harness()
        let client = harness.connect("a")
        client.publish("t", "x")
        client.send(.pingreq)
        XCTAssertEqual(client.take(), [.pingresp])
    }

    func test_MQTT_4_3_2_2_qos1AcknowledgedWithSameIDAndReusedIDIsANewMessage() {
        let harness = Harness()
        let subscriber = harness.connect("s")
        subscriber.subscribeOnly([("t", .atMostOnce)])
        let client = harness.connect("a")
        client.publish("t", "one", qos: .atLeastOnce, id: 0x1234)
        XCTAssertEqual(client.take(), [.puback(pid(0x1234))])
        client.publish("t", "two", qos: .atLeastOnce, id: 0x1234, dup: true)
        XCTAssertEqual(client.take(), [.puback(pid(0x1234))])
        XCTAssertEqual(payloads(subscriber.take()), ["one", "two"])
    }

    func test_MQTT_4_3_3_2_qos2RoutedOnceUntilPubrel() {
        let harness = Harness()
        let subscriber = harness.connect("s")
        subscriber.subscribeOnly([("t", .exactlyOnce)])
        let client = harness.connect("a")
        client.publish("t", "once", qos: .exactlyOnce, id: 3)
        client.publish("t", "once", qos: .exactlyOnce, id: 3, dup: true)
        XCTAssertEqual(client.take(), [.pubrec(pid(3)), .pubrec(pid(3))])
        XCTAssertEqual(subscriber.take(), [pub("t", "once", qos: .exactlyOnce, id: 1)])
        client.send(.pubrel(pid(3)))
        XCTAssertEqual(client.take(), [.pubcomp(pid(3))])
        // After PUBCOMP the id starts a new message.
        client.publish("t", "again", qos: .exactlyOnce, id: 3)
        XCTAssertEqual(client.take(), [.pubrec(pid(3))])
        XCTAssertEqual(payloads(subscriber.take()), ["again"])
    }

    func test_MQTT_4_3_3_2_pubrelForUnknownIDGetsPubcomp() {
        let harness = Harness()
        let client = harness.connect("a")
        client.send(.pubrel(pid(77)))
        XCTAssertEqual(client.take(), [.pubcomp(pid(77))])
    }

    func test_MQTT_4_3_3_2_inboundQoS2StateSurvivesReconnect() {
        let harness = Harness()
        let subscriber = harness.connect("s")
        subscriber.subscribeOnly([("t", .atMostOnce)])
        let client = harness.connect("a", clean: false)
        client.publish("t", "x", qos: .exactlyOnce, id: 9)
        client.drop()
        let again = harness.connect("a", clean: false, sessionPresent: true)
        again.publish("t", "x", qos: .exactlyOnce, id: 9, dup: true)
        XCTAssertEqual(again.take(), [.pubrec(pid(9))])
        XCTAssertEqual(payloads(subscriber.take()), ["x"], "the resent PUBLISH is not routed twice")
    }

    func test_MQTT_4_6_0_2_and_4_6_0_3_acksInArrivalOrder() {
        let harness = Harness()
        let client = harness.connect("a")
        var expected: [Packet] = []
        for raw in UInt16(1)...100 {
            if raw % 3 == 0 {
                client.publish("t", "\(raw)", qos: .exactlyOnce, id: raw)
                expected.append(.pubrec(pid(raw)))
            } else {
                client.publish("t", "\(raw)", qos: .atLeastOnce, id: raw)
                expected.append(.puback(pid(raw)))
            }
        }
        XCTAssertEqual(client.take(), expected)
    }

    func test_MQTT_3_3_5_2_unauthorisedPublishAcknowledgedAndDropped() {
        let harness = Harness(accessControl: DenyTopics(publish: ["secret"]))
        let subscriber = harness.connect("s")
        subscriber.subscribeOnly([("#", .exactlyOnce)])
        let client = harness.connect("a")
        client.publish("secret", "0")
        client.publish("secret", "1", qos: .atLeastOnce, id: 1)
        client.publish("secret", "2", qos: .exactlyOnce, id: 2, retain: true)
        XCTAssertEqual(client.take(), [.puback(pid(1)), .pubrec(pid(2))])
        XCTAssertEqual(subscriber.take(), [])
        XCTAssertEqual(harness.broker.statistics.retainedMessages, 0)
        client.publish("open", "ok")
        XCTAssertEqual(payloads(subscriber.take()), ["ok"])
    }

    func test_publishAboveMaxQoSClosesTheConnection() {
        var configuration = BrokerConfiguration()
        configuration.maxQoS = .atLeastOnce
        let harness = Harness(configuration)
        let subscriber = harness.connect("s")
        subscriber.subscribeOnly([("t", .atLeastOnce)])
        let client = harness.connect("a", will: will("t", "will"))
        client.publish("t", "ok", qos: .atLeastOnce, id: 1)
        XCTAssertEqual(client.take(), [.puback(pid(1))])
        client.publish("t", "too high", qos: .exactlyOnce, id: 2)
        XCTAssertEqual(client.take(), [])
        guard case .protocolError? = client.closeReason else { return XCTFail("expected a protocol error close") }
        XCTAssertEqual(receiveAcking(subscriber), ["ok", "will"])
    }

    func test_publishToSysFromAClientIsDropped() {
        let harness = Harness()
        let subscriber = harness.connect("s")
        subscriber.subscribeOnly([("$SYS/#", .atLeastOnce), ("$SYSTEM/#", .atLeastOnce)])
        let client = harness.connect("a")
        client.publish("$SYS/broker/uptime", "fake", qos: .atLeastOnce, id: 1, retain: true)
        client.publish("$SYS", "fake")
        XCTAssertEqual(client.take(), [.puback(pid(1))])
        XCTAssertEqual(subscriber.take(), [])
        XCTAssertEqual(harness.broker.statistics.retainedMessages, 0)
        // Only the $SYS level itself is reserved.
        client.publish("$SYSTEM/x", "real")
        XCTAssertEqual(payloads(subscriber.take()), ["real"])
        // But for bridge states, which bridges publish (and leave as their Will) on the broker they connect to.
        client.publish("$SYS/broker/connection/edge-1/state", "1", retain: true)
        client.publish("$SYS/broker/connection/edge-1/state/x", "no")
        client.publish("$SYS/broker/connections/edge-1/state", "no")
        XCTAssertEqual(payloads(subscriber.take()), ["1"])
        XCTAssertEqual(harness.broker.statistics.retainedMessages, 1)
    }

    func test_MQTT_3_8_4_6_deliveredQoSIsTheLowerOfPublishedAndGranted() {
        let harness = Harness()
        let q0 = harness.connect("q0")
        q0.subscribeOnly([("t", .atMostOnce)])
        let q1 = harness.connect("q1")
        q1.subscribeOnly([("t", .atLeastOnce)])
        let q2 = harness.connect("q2")
        q2.subscribeOnly([("t", .exactlyOnce)])
        let publisher = harness.connect("p")
        publisher.publish("t", "two", qos: .exactlyOnce, id: 1)
        publisher.publish("t", "zero")
        XCTAssertEqual(q0.take(), [pub("t", "two"), pub("t", "zero")])
        XCTAssertEqual(q1.take(), [pub("t", "two", qos: .atLeastOnce, id: 1), pub("t", "zero")])
        XCTAssertEqual(q2.take(), [pub("t", "two", qos: .exactlyOnce, id: 1), pub("t", "zero")])
    }

    func test_MQTT_3_3_1_3_dupIsNeverCopiedFromThePublisher() {
        let harness = Harness()
        let q0 = harness.connect("q0")
        q0.subscribeOnly([("t", .atMostOnce)])
        let q1 = harness.connect("q1")
        q1.subscribeOnly([("t", .atLeastOnce)])
        harness.connect("p").publish("t", "x", qos: .atLeastOnce, id: 5, dup: true)
        XCTAssertEqual(q0.take(), [pub("t", "x")], "QoS 0 delivery: DUP=0 [MQTT-3.3.1-2]")
        XCTAssertEqual(q1.take(), [pub("t", "x", qos: .atLeastOnce, id: 1, dup: false)])
    }

    func test_MQTT_4_3_1_1_qos0DeliveryHasNoIDAndDupZero() {
        let harness = Harness()
        let subscriber = harness.connect("s")
        subscriber.subscribeOnly([("t", .exactlyOnce)])
        harness.connect("p").publish("t", "x", qos: .atMostOnce, dup: false)
        let deliveries = harness.takeDeliveries(subscriber.id)
        XCTAssertEqual(deliveries.count, 1)
        XCTAssertEqual(deliveries.first?.qos, .atMostOnce)
        XCTAssertNil(deliveries.first?.packetID)
        XCTAssertEqual(deliveries.first?.dup, false)
    }

    func test_fanOutSharesOneMessage() {
        let harness = Harness()
        let subscribers = (0..<5).map { harness.connect("s\($0)") }
        for subscriber in subscribers { subscriber.subscribeOnly([("t", .atLeastOnce)]) }
        harness.connect("p").publish("t", "shared", qos: .atLeastOnce, id: 1)
        let messages = subscribers.compactMap { harness.takeDeliveries($0.id).first?.message }
        XCTAssertEqual(messages.count, 5)
        for message in messages { XCTAssertTrue(message === messages[0], "payload must not be copied per subscriber") }
    }

    func test_MQTT_2_3_1_4_inflightIDsAreDistinctNonZeroAndNotReusedBeforeTheirAck() {
        var configuration = BrokerConfiguration()
        configuration.maxInflightMessages = 10
        let harness = Harness(configuration)
        let (subscriber, publisher) = harness.subscriberAndPublisher(.atLeastOnce)
        var inFlight: Set<UInt16> = []
        var everUsed = 0
        for round in 0..<200 {
            publisher.publish("t", "\(round)", qos: .atLeastOnce, id: 1)
            for packet in subscriber.take() {
                guard case .publish(let publish) = packet, let id = publish.packetID else {
                    return XCTFail("\(packet)")
                }
                XCTAssertTrue(inFlight.insert(id.rawValue).inserted, "id \(id) reused while in flight")
                everUsed += 1
            }
            XCTAssertLessThanOrEqual(inFlight.count, 10)
            // Acknowledge the oldest-but-one every other round, so the set of ids in flight keeps changing.
            if round % 2 == 1, let some = inFlight.sorted().dropFirst().first {
                subscriber.send(.puback(pid(some)))
                inFlight.remove(some)
            }
        }
        XCTAssertGreaterThan(everUsed, 100)
    }

    func test_MQTT_2_3_1_4_packetIDsWrapPastZeroAndSkipIDsStillInFlight() {
        var configuration = BrokerConfiguration()
        configuration.maxInflightMessages = 2
        let harness = Harness(configuration)
        let (subscriber, publisher) = harness.subscriberAndPublisher(.atLeastOnce)
        publisher.publish("t", "held", qos: .atLeastOnce, id: 1)
        XCTAssertEqual(subscriber.take(), [pub("t", "held", qos: .atLeastOnce, id: 1)])  // never acknowledged
        var ids: [UInt16] = []
        for _ in 0..<65_536 {
            publisher.publish("t", "x", qos: .atLeastOnce, id: 1)
            _ = publisher.take()
            guard case .publish(let publish)? = subscriber.take().first, let id = publish.packetID else {
                return XCTFail("expected a delivery")
            }
            ids.append(id.rawValue)
            subscriber.send(.puback(id))
        }
        XCTAssertEqual(Array(ids.prefix(2)), [2, 3])
        XCTAssertFalse(ids.contains(1), "id 1 is still in flight")
        XCTAssertEqual(Array(ids.suffix(3)), [65535, 2, 3], "wraps past 0 and skips the id in flight")
    }

    func test_maxInflightZeroMeansNoWindowLimit() {
        var configuration = BrokerConfiguration()
        configuration.maxInflightMessages = 0
        let harness = Harness(configuration)
        let (subscriber, publisher) = harness.subscriberAndPublisher(.exactlyOnce)
        for n in 1...500 { publisher.publish("t", "\(n)", qos: .atLeastOnce, id: 1) }
        XCTAssertEqual(subscriber.take().count, 500)
        XCTAssertEqual(harness.broker.statistics.inflightMessages, 500)
    }

    func test_inflightWindowQueuesTheRestInOrder() {
        var configuration = BrokerConfiguration()
        configuration.maxInflightMessages = 2
        let harness = Harness(configuration)
        let (subscriber, publisher) = harness.subscriberAndPublisher(.atLeastOnce)
        for n in 1...5 { publisher.publish("t", "\(n)", qos: .atLeastOnce, id: UInt16(n)) }
        XCTAssertEqual(
            subscriber.take(), [pub("t", "1", qos: .atLeastOnce, id: 1), pub("t", "2", qos: .atLeastOnce, id: 2)])
        // QoS 0 needs no window slot, but waits behind the queue to keep arrival order.
        publisher.publish("t", "zero")
        XCTAssertEqual(subscriber.take(), [])
        subscriber.send(.puback(pid(2)))
        XCTAssertEqual(subscriber.take(), [pub("t", "3", qos: .atLeastOnce, id: 3)])
        subscriber.send(.puback(pid(1)))
        subscriber.send(.puback(pid(3)))
        XCTAssertEqual(
            subscriber.take(),
            [pub("t", "4", qos: .atLeastOnce, id: 4), pub("t", "5", qos: .atLeastOnce, id: 5), pub("t", "zero")])
        // With the queue empty, QoS 0 goes straight out even though the window is full.
        publisher.publish("t", "zero again")
        XCTAssertEqual(subscriber.take(), [pub("t", "zero again")])
        XCTAssertEqual(harness.broker.statistics.inflightMessages, 2)
        XCTAssertEqual(harness.broker.statistics.queuedMessages, 0)
    }

    func test_MQTT_4_3_3_1_pubrecAnsweredWithPubrelAndThePublishIsNeverResent() {
        let harness = Harness()
        let subscriber = harness.connect("s", clean: false)
        subscriber.subscribeOnly([("t", .exactlyOnce)])
        harness.connect("p").publish("t", "x", qos: .exactlyOnce, id: 1)
        XCTAssertEqual(subscriber.take(), [pub("t", "x", qos: .exactlyOnce, id: 1)])
        subscriber.send(.pubrec(pid(1)))
        XCTAssertEqual(subscriber.take(), [.pubrel(pid(1))])
        // A repeated PUBREC gets the PUBREL again.
        subscriber.send(.pubrec(pid(1)))
        XCTAssertEqual(subscriber.take(), [.pubrel(pid(1))])
        subscriber.drop()
        let again = harness.connectExpectingAnything("s", clean: false)
        XCTAssertEqual(again.take(), [connack(.accepted, sessionPresent: true), .pubrel(pid(1))])
        again.send(.pubcomp(pid(1)))
        XCTAssertEqual(again.take(), [])
        XCTAssertEqual(harness.broker.statistics.inflightMessages, 0)
    }

    func test_MQTT_4_6_0_4_pubrelsInTheOrderPubrecsArrived() {
        let harness = Harness()
        let (subscriber, publisher) = harness.subscriberAndPublisher(.exactlyOnce, clean: false)
        for n in 1...3 { publisher.publish("t", "\(n)", qos: .exactlyOnce, id: UInt16(n)) }
        XCTAssertEqual(subscriber.take().count, 3)
        for raw: UInt16 in [3, 1, 2] { subscriber.send(.pubrec(pid(raw))) }
        XCTAssertEqual(subscriber.take(), [.pubrel(pid(3)), .pubrel(pid(1)), .pubrel(pid(2))])
        // On reconnect they are resent in that order too.
        subscriber.drop()
        let again = harness.connectExpectingAnything("s", clean: false)
        XCTAssertEqual(
            again.take(), [connack(.accepted, sessionPresent: true), .pubrel(pid(3)), .pubrel(pid(1)), .pubrel(pid(2))])
    }

    func test_MQTT_4_4_0_1_reconnectResendsUnackedPublishesAndPubrelsWithTheirIDs() {
        let harness = Harness()
        let (subscriber, publisher) = harness.subscriberAndPublisher(.exactlyOnce, clean: false)
        publisher.publish("t", "q1", qos: .atLeastOnce, id: 1)
        publisher.publish("t", "q2-released", qos: .exactlyOnce, id: 2)
        publisher.publish("t", "q2", qos: .exactlyOnce, id: 3)
        XCTAssertEqual(subscriber.take().count, 3)
        subscriber.send(.pubrec(pid(2)))
        XCTAssertEqual(subscriber.take(), [.pubrel(pid(2))])
        subscriber.drop(.connectionLost("reset by peer"))
        let again = harness.connectExpectingAnything("s", clean: false)
        XCTAssertEqual(
            again.take(),
            [
                connack(.accepted, sessionPresent: true),
                pub("t", "q1", qos: .atLeastOnce, id: 1, dup: true),
                pub("t", "q2", qos: .exactlyOnce, id: 3, dup: true),
                .pubrel(pid(2)),
            ])
        // The flows complete normally afterwards.
        again.send(.puback(pid(1)))
        again.send(.pubrec(pid(3)))
        XCTAssertEqual(again.take(), [.pubrel(pid(3))])
        again.send(.pubcomp(pid(2)))
        again.send(.pubcomp(pid(3)))
        XCTAssertEqual(harness.broker.statistics.inflightMessages, 0)
    }

    func test_MQTT_4_6_0_1_resentPublishesKeepTheirOriginalOrder() {
        let harness = Harness()
        let (subscriber, publisher) = harness.subscriberAndPublisher(.atLeastOnce, clean: false)
        for n in 1...5 { publisher.publish("t", "\(n)", qos: .atLeastOnce, id: UInt16(n)) }
        _ = subscriber.take()
        subscriber.drop()
        let again = harness.connectExpectingAnything("s", clean: false)
        let packets = again.take()
        XCTAssertEqual(packets.first, connack(.accepted, sessionPresent: true))
        XCTAssertEqual(payloads(packets), ["1", "2", "3", "4", "5"])
        XCTAssertEqual(
            packets.dropFirst(), (1...5).map { pub("t", "\($0)", qos: .atLeastOnce, id: UInt16($0), dup: true) }[...])
    }

    func test_MQTT_4_4_0_1_resendThenQueueAsTheWindowAllows() {
        var configuration = BrokerConfiguration()
        configuration.maxInflightMessages = 2
        let harness = Harness(configuration)
        let (subscriber, publisher) = harness.subscriberAndPublisher(.atLeastOnce, clean: false)
        for n in 1...3 { publisher.publish("t", "\(n)", qos: .atLeastOnce, id: UInt16(n)) }
        XCTAssertEqual(payloads(subscriber.take()), ["1", "2"])
        subscriber.drop()
        publisher.publish("t", "4", qos: .atLeastOnce, id: 4)
        let again = harness.connectExpectingAnything("s", clean: false)
        XCTAssertEqual(
            again.take(),
            [
                connack(.accepted, sessionPresent: true), pub("t", "1", qos: .atLeastOnce, id: 1, dup: true),
                pub("t", "2", qos: .atLeastOnce, id: 2, dup: true),
            ])
        again.send(.puback(pid(1)))
        XCTAssertEqual(again.take(), [pub("t", "3", qos: .atLeastOnce, id: 3)])
        again.send(.puback(pid(2)))
        XCTAssertEqual(again.take(), [pub("t", "4", qos: .atLeastOnce, id: 4)])
    }

    func test_acksForUnknownIDsAreIgnored() {
        let harness = Harness()
        let subscriber = subscriberWithOneQoS1AndOneQoS2Delivery(harness)
        subscriber.send(.puback(pid(99)))
        subscriber.send(.pubrec(pid(99)))
        subscriber.send(.pubcomp(pid(99)))
        subscriber.send(.pubcomp(pid(2)))  // a QoS 2 flow not released yet
        XCTAssertEqual(subscriber.take(), [])
        XCTAssertFalse(subscriber.isClosed)
        XCTAssertEqual(harness.broker.statistics.inflightMessages, 2)
        XCTAssertTrue(harness.logs.lines.contains { $0.0 == .debug && $0.1.contains("PUBACK for packet id 99") })
    }

    func test_anAcknowledgementOfTheWrongKindClosesTheConnection() {
        // mosquitto treats these as protocol errors: PUBREC or PUBCOMP for a QoS 1 delivery, PUBACK for a QoS 2 one.
        for (ack, id, reason) in [
            (Packet.pubrec(pid(1)), 1, "PUBREC for a QoS 1 delivery"),
            (Packet.pubcomp(pid(1)), 1, "PUBCOMP for a QoS 1 delivery"),
            (Packet.puback(pid(2)), 2, "PUBACK for a QoS 2 delivery"),
        ] {
            let subscriber = subscriberWithOneQoS1AndOneQoS2Delivery(Harness())
            subscriber.send(ack)
            XCTAssertEqual(subscriber.closeReason, .protocolError(reason), "id \(id)")
        }
    }

    func test_messageSizeLimitAcknowledgesAndDropsAnOversizedPayload() {
        var configuration = BrokerConfiguration()
        configuration.messageSizeLimit = 4
        let harness = Harness(configuration)
        let (subscriber, publisher) = harness.subscriberAndPublisher(.exactlyOnce)
        publisher.publish("t", "12345", qos: .atLeastOnce, id: 1)
        publisher.publish("t", "123456", qos: .exactlyOnce, id: 2)
        publisher.send(.pubrel(pid(2)))
        publisher.publish("t", "1234", qos: .atLeastOnce, id: 3)
        XCTAssertEqual(publisher.take(), [.puback(pid(1)), .pubrec(pid(2)), .pubcomp(pid(2)), .puback(pid(3))])
        XCTAssertFalse(publisher.isClosed, "the connection stays open, as in mosquitto")
        XCTAssertEqual(payloads(subscriber.take()), ["1234"])
        XCTAssertEqual(harness.broker.statistics.messagesOversized, 2)
        XCTAssertEqual(harness.logs.count("above message_size_limit (4)"), 2)
    }

    func test_MQTT_3_1_2_5_offlinePersistentSessionQueuesQoS1And2ButNotQoS0() {
        let harness = Harness()
        let subscriber = harness.connect("s", clean: false)
        subscriber.subscribeOnly([("t", .exactlyOnce)])
        subscriber.disconnect()
        let publisher = harness.connect("p")
        publisher.publish("t", "a", qos: .atLeastOnce, id: 1)
        publisher.publish("t", "zero")
        publisher.publish("t", "b", qos: .atLeastOnce, id: 2)
        publisher.publish("t", "c", qos: .exactlyOnce, id: 3)
        publisher.publish("t", "d", qos: .atLeastOnce, id: 4)
        XCTAssertEqual(harness.broker.statistics.queuedMessages, 4)
        let again = harness.connectExpectingAnything("s", clean: false)
        XCTAssertEqual(
            again.take(),
            [
                connack(.accepted, sessionPresent: true), pub("t", "a", qos: .atLeastOnce, id: 1),
                pub("t", "b", qos: .atLeastOnce, id: 2), pub("t", "c", qos: .exactlyOnce, id: 3),
                pub("t", "d", qos: .atLeastOnce, id: 4),
            ])
    }

    func test_queueQoS0MessagesWhenConfigured() {
        var configuration = BrokerConfiguration()
        configuration.queueQoS0Messages = true
        let harness = Harness(configuration)
        let subscriber = harness.connect("s", clean: false)
        subscriber.subscribeOnly([("t", .atLeastOnce)])
        subscriber.drop()
        let publisher = harness.connect("p")
        publisher.publish("t", "zero")
        publisher.publish("t", "one", qos: .atLeastOnce, id: 1)
        let again = harness.connectExpectingAnything("s", clean: false)
        XCTAssertEqual(
            again.take(),
            [connack(.accepted, sessionPresent: true), pub("t", "zero"), pub("t", "one", qos: .atLeastOnce, id: 1)])
    }

    func test_maxQueuedMessagesDropsCountsAndLogsOncePerEpisode() {
        var configuration = BrokerConfiguration()
        configuration.maxQueuedMessages = 2
        let harness = Harness(configuration)
        let subscriber = harness.connect("s", clean: false)
        subscriber.subscribeOnly([("t", .atLeastOnce)])
        subscriber.drop()
        let publisher = harness.connect("p")
        for n in 1...5 { publisher.publish("t", "\(n)", qos: .atLeastOnce, id: UInt16(n)) }
        XCTAssertEqual(harness.broker.statistics.messagesDropped, 3)
        XCTAssertEqual(harness.logs.count("Outgoing messages are being dropped for client s."), 1)
        let again = harness.connectExpectingAnything("s", clean: false)
        XCTAssertEqual(payloads(again.take()), ["1", "2"])
        again.drop()
        // A new episode logs again.
        for n in 6...8 { publisher.publish("t", "\(n)", qos: .atLeastOnce, id: UInt16(n)) }
        XCTAssertEqual(harness.broker.statistics.messagesDropped, 4)
        XCTAssertEqual(harness.logs.count("Outgoing messages are being dropped for client s."), 2)
    }

    func test_maxQueuedMessagesAppliesBeyondTheWindowOfAConnectedClient() {
        var configuration = BrokerConfiguration()
        configuration.maxInflightMessages = 1
        configuration.maxQueuedMessages = 1
        let harness = Harness(configuration)
        let (subscriber, publisher) = harness.subscriberAndPublisher(.atLeastOnce)
        for n in 1...3 { publisher.publish("t", "\(n)", qos: .atLeastOnce, id: UInt16(n)) }
        XCTAssertEqual(payloads(subscriber.take()), ["1"])
        subscriber.send(.puback(pid(1)))
        XCTAssertEqual(payloads(subscriber.take()), ["2"])
        subscriber.send(.puback(pid(2)))
        XCTAssertEqual(subscriber.take(), [])
        XCTAssertEqual(harness.broker.statistics.messagesDropped, 1)
    }

    func test_maxQueuedBytesLimitsQueuedPayload() {
        var configuration = BrokerConfiguration()
        configuration.maxQueuedMessages = 0
        configuration.maxQueuedBytes = 10
        let harness = Harness(configuration)
        let subscriber = harness.connect("s", clean: false)
        subscriber.subscribeOnly([("t", .atLeastOnce)])
        subscriber.drop()
        let publisher = harness.connect("p")
        publisher.publish("t", "12345", qos: .atLeastOnce, id: 1)
        publisher.publish("t", "123456", qos: .atLeastOnce, id: 2)  // 11 bytes: over
        publisher.publish("t", "abcde", qos: .atLeastOnce, id: 3)  // exactly 10
        XCTAssertEqual(harness.broker.statistics.messagesDropped, 1)
        let again = harness.connectExpectingAnything("s", clean: false)
        XCTAssertEqual(payloads(again.take()), ["12345", "abcde"])
    }

    func test_MQTT_4_5_0_1_messageGoesToEveryMatchingSessionOnlineOrOffline() {
        let harness = Harness()
        let online1 = harness.connect("on1")
        online1.subscribeOnly([("t", .atLeastOnce)])
        let online2 = harness.connect("on2")
        online2.subscribeOnly([("+", .atLeastOnce)])
        let offline = harness.connect("off", clean: false)
        offline.subscribeOnly([("#", .atLeastOnce)])
        offline.drop()
        harness.connect("p").publish("t", "all", qos: .atLeastOnce, id: 1)
        XCTAssertEqual(payloads(online1.take()), ["all"])
        XCTAssertEqual(payloads(online2.take()), ["all"])
        let back = harness.connectExpectingAnything("off", clean: false)
        XCTAssertEqual(payloads(back.take()), ["all"])
    }

    func test_MQTT_4_6_0_6_perSubscriberOrderIsArrivalOrderAcrossQoS() {
        let harness = Harness()
        let subscribers = [QoS.atMostOnce, .atLeastOnce, .exactlyOnce].map { qos in
            let client = harness.connect("s\(qos.rawValue)")
            client.subscribeOnly([("t", qos)])
            return client
        }
        let publisher = harness.connect("p")
        for n in 1...50 {
            let qos = QoS(rawValue: UInt8(n % 3)) ?? .atMostOnce
            publisher.publish("t", "\(n)", qos: qos, id: qos == .atMostOnce ? nil : UInt16(n))
        }
        for subscriber in subscribers {
            let received = receiveAcking(subscriber).compactMap { Int($0) }
            XCTAssertEqual(received, Array(1...50), "subscriber \(subscriber.id)")
        }
    }

    func test_messageReceivedAndSentCounters() {
        let harness = Harness()
        let (_, publisher) = harness.subscriberAndPublisher(.atMostOnce)
        publisher.publish("t", "1")
        publisher.publish("u", "2")
        let statistics = harness.broker.statistics
        XCTAssertEqual(statistics.messagesReceived, 2)
        XCTAssertEqual(statistics.messagesSent, 1)
    }

    /// Client "s" with a QoS 1 delivery in flight as id 1 and a QoS 2 one as id 2.
    private func subscriberWithOneQoS1AndOneQoS2Delivery(_ harness: Harness) -> Client {
        let subscriber = harness.connect("s")
        subscriber.subscribeOnly([("a", .atLeastOnce), ("b", .exactlyOnce)])
        let publisher = harness.connect("p")
        publisher.publish("a", "1", qos: .atLeastOnce, id: 1)
        publisher.publish("b", "2", qos: .exactlyOnce, id: 2)
        XCTAssertEqual(subscriber.take().count, 2)
        return subscriber
    }
}
