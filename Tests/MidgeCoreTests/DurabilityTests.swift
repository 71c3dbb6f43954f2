// Persistence in the core (§3.1.2.4, §3.3.1.3, §4.3): the records it appends to its record log, the acknowledgements
// it holds until the log confirms them, rebuilding from the log's records, an unwritable store,
// persistent_client_expiration.
import MQTTCodec
import MidgeCore
import MidgeRecords
import XCTest

final class DurabilityTests: XCTestCase {
    func test_memoryOnlyBrokerBuildsNoRecords() {
        let harness = Harness()
        let subscriber = harness.connect("s", clean: false)
        subscriber.subscribeOnly([("t", .atLeastOnce)])
        subscriber.disconnect()
        let publisher = harness.connect("p")
        publisher.publish("t", "x", qos: .atLeastOnce, id: 1, retain: true)
        XCTAssertEqual(publisher.take(), [.puback(pid(1))])
        XCTAssertFalse(harness.broker.isDurable)
        XCTAssertNil(harness.log)
        XCTAssertTrue(harness.broker.sendsHeldForNextAppend.isEmpty)
    }

    func test_pubackWaitsForTheRecordsOfItsMessage() {
        // A QoS 1 message for an offline persistent session: body and queued delivery are recorded, and the PUBACK
        // leaves only once they are durable.
        let harness = Harness()
        harness.enableDurability()
        let subscriber = harness.connect("s", clean: false)
        subscriber.subscribeOnly([("t", .atLeastOnce)])
        subscriber.disconnect()
        let publisher = harness.connect("p")
        harness.commitsAtOnce = false
        publisher.publish("t", "kept", qos: .atLeastOnce, id: 7)
        XCTAssertEqual(publisher.take(), [], "PUBACK before the records are durable")
        let records = harness.commit()
        guard case .messageStored(let messageID, let topicName, let payload, .atLeastOnce)? = records.first else {
            return XCTFail("\(records)")
        }
        XCTAssertEqual(topicName, topic("t"))
        XCTAssertEqual(payload, Array("kept".utf8))
        XCTAssertEqual(
            Array(records.dropFirst()),
            [.deliveryQueued(clientID: "s", messageID: messageID, qos: .atLeastOnce, retain: false)])
        XCTAssertEqual(publisher.take(), [.puback(pid(7))])
        XCTAssertEqual(harness.store?.sessions["s"]?.queue.count, 1)
    }

    func test_MQTT_4_6_0_2_laterAcknowledgementsWaitBehindHeldOnes() {
        // The second PUBLISH needs no record, but its PUBACK may not overtake the first one's: its append is an empty
        // barrier, confirmed after the first.
        let harness = Harness()
        harness.enableDurability()
        let subscriber = harness.connect("s", clean: false)
        subscriber.subscribeOnly([("kept", .atLeastOnce)])
        subscriber.disconnect()
        let publisher = harness.connect("p")
        harness.commitsAtOnce = false
        publisher.publish("kept", "1", qos: .atLeastOnce, id: 1)
        guard let log = harness.log, let first = log.pending.last else { return XCTFail("no append") }
        publisher.publish("nobody/listens", "2", qos: .atLeastOnce, id: 2)
        publisher.send(.pingreq)
        XCTAssertEqual(publisher.take(), [.pingresp])
        guard let second = log.pending.last, second.sequence > first.sequence else { return XCTFail("no barrier") }
        XCTAssertEqual(second.records, [], "a barrier: nothing to write, only order to keep")
        XCTAssertTrue(second.confirm)
        harness.confirm(through: first.sequence)
        XCTAssertEqual(publisher.take(), [.puback(pid(1))], "only what the confirmed append held")
        harness.confirm(through: second.sequence)
        XCTAssertEqual(publisher.take(), [.puback(pid(2))])
        // Nothing outstanding any more: the next PUBACK without records goes at once.
        publisher.publish("nobody/listens", "3", qos: .atLeastOnce, id: 3)
        XCTAssertEqual(publisher.take(), [.puback(pid(3))])
    }

    func test_acknowledgementsAreReleasedOnlyByTheLogsConfirmation() {
        // Through the seam: the core appends, the log decides when. Nothing the log has not confirmed is acknowledged,
        // whatever else the core is told meanwhile, and one confirmation releases every append up to it, in order.
        let harness = Harness()
        harness.enableDurability()
        let subscriber = harness.connect("s", clean: false)
        subscriber.subscribeOnly([("t", .atLeastOnce)])
        subscriber.disconnect()
        let publisher = harness.connect("p")
        harness.commitsAtOnce = false
        publisher.publish("t", "1", qos: .atLeastOnce, id: 1)
        publisher.publish("t", "2", qos: .exactlyOnce, id: 2)
        harness.advance(1)
        publisher.send(.pingreq)
        XCTAssertEqual(publisher.take(), [.pingresp], "PUBACK and PUBREC before the log confirmed")
        guard let log = harness.log else { return XCTFail("no log") }
        XCTAssertEqual(log.pending.count, 2)
        XCTAssertEqual(log.pending.map(\.confirm), [true, true])
        harness.confirm(through: log.pending[1].sequence)
        XCTAssertEqual(publisher.take(), [.puback(pid(1)), .pubrec(pid(2))])
        XCTAssertEqual(log.pending, [])
    }

    func test_recordsReachTheLogInOrderOneAppendPerRun() {
        // Each run of the core is one append, numbered in order; the records keep the order of the changes.
        let harness = Harness()
        harness.enableDurability()
        harness.commitsAtOnce = false
        let subscriber = harness.connectExpectingAnything("s", clean: false)
        subscriber.send(
            .subscribe(
                Subscribe(packetID: pid(1), requests: [SubscriptionRequest(filter: filter("t"), qos: .atLeastOnce)])))
        subscriber.unsubscribe(["t"])
        guard let log = harness.log else { return XCTFail("no log") }
        XCTAssertEqual(log.pending.map(\.sequence), [1, 2, 3])
        XCTAssertEqual(
            log.pending.flatMap(\.records),
            [
                .sessionCreated(clientID: "s", unixSeconds: 1_700_000_000),
                .subscriptionAdded(clientID: "s", filter: filter("t"), qos: .atLeastOnce),
                .subscriptionRemoved(clientID: "s", filter: filter("t")),
            ])
        XCTAssertEqual(subscriber.take(), [], "CONNACK, SUBACK and UNSUBACK wait for their records")
        harness.commit()
        XCTAssertEqual(
            subscriber.take(),
            [
                connack(.accepted), .suback(SubAck(packetID: pid(1), returnCodes: [.granted(.atLeastOnce)])),
                .unsuback(pid(2)),
            ])
    }

    func test_restartRecoversWhatWasAcknowledgedFromTheConfirmedRecords() {
        // A crash while the log has confirmed only the first append: what was acknowledged is in what a restart
        // recovers from the log's records; the second message was never acknowledged, so losing it breaks no promise.
        let before = Harness()
        before.enableDurability()
        let subscriber = before.connect("s", clean: false)
        subscriber.subscribeOnly([("t", .atLeastOnce)])
        subscriber.disconnect()
        let publisher = before.connect("p")
        before.commitsAtOnce = false
        publisher.publish("t", "acknowledged", qos: .atLeastOnce, id: 1)
        guard let log = before.log, let first = log.pending.last else { return XCTFail("no append") }
        publisher.publish("t", "lost", qos: .atLeastOnce, id: 2)
        before.confirm(through: first.sequence)
        XCTAssertEqual(publisher.take(), [.puback(pid(1))])

        let after = Harness()
        let summary = after.enableDurability(restoring: StoreState(records: log.durableRecords))
        XCTAssertEqual(summary.queuedMessages, 1)
        let back = after.connectExpectingAnything("s", clean: false)
        XCTAssertEqual(
            back.take(), [connack(.accepted, sessionPresent: true), pub("t", "acknowledged", qos: .atLeastOnce, id: 1)])
    }

    func test_cleanSessionTrafficWritesNothing() {
        // Clean sessions are not durable: no records, and acknowledgements go at once.
        let harness = Harness()
        harness.enableDurability()
        harness.commitsAtOnce = false
        let (subscriber, publisher) = harness.subscriberAndPublisher(.exactlyOnce)
        publisher.publish("t", "x", qos: .exactlyOnce, id: 4)
        XCTAssertEqual(publisher.take(), [.pubrec(pid(4))])
        publisher.send(.pubrel(pid(4)))
        XCTAssertEqual(publisher.take(), [.pubcomp(pid(4))])
        XCTAssertEqual(subscriber.take(), [pub("t", "x", qos: .exactlyOnce, id: 1)])
        XCTAssertEqual(harness.log?.pending, [])
    }

    func test_retainedMessagesAreRecorded() {
        let harness = Harness()
        harness.enableDurability()
        let publisher = harness.connect("p")
        publisher.publish("r/1", "v1", qos: .atLeastOnce, id: 1, retain: true)
        publisher.publish("r/2", "v2", qos: .atMostOnce, retain: true)
        publisher.publish("r/1", "", qos: .atLeastOnce, id: 2, retain: true)
        XCTAssertEqual(publisher.take(), [.puback(pid(1)), .puback(pid(2))])
        XCTAssertEqual(harness.store?.retained.keys.map(\.description), ["r/2"])
        XCTAssertEqual(harness.store?.retained[topic("r/2")]?.payload, Array("v2".utf8))
    }

    func test_brokersOwnSysTopicsAreNotRecorded() {
        // $SYS messages are published again every interval after a restart: keeping them would only grow the log.
        let harness = Harness()
        harness.enableDurability()
        harness.commitsAtOnce = false
        var actions: [Action] = []
        harness.broker.publish(
            Message(topic: topic("$SYS/broker/uptime"), payload: Array("5".utf8), qos: .atMostOnce), retain: true,
            into: &actions)
        harness.broker.appendRecords()
        XCTAssertEqual(harness.log?.pending, [])
    }

    func test_unwritableStoreRefusesQoS1And2ButServesQoS0() {
        // Nothing already acknowledged is touched; new QoS 1/2 PUBLISHes are neither routed nor acknowledged.
        let harness = Harness()
        harness.enableDurability()
        let (subscriber, publisher) = harness.subscriberAndPublisher(.exactlyOnce)
        harness.broker.setStoreWritable(false)
        XCTAssertFalse(harness.broker.storeWritable)
        publisher.publish("t", "q1", qos: .atLeastOnce, id: 1)
        publisher.publish("t", "q2", qos: .exactlyOnce, id: 2)
        publisher.publish("t", "q0")
        XCTAssertEqual(publisher.take(), [])
        XCTAssertEqual(payloads(subscriber.take()), ["q0"])
        XCTAssertEqual(harness.broker.statistics.publishesRefused, 2)
        XCTAssertTrue(harness.logs.contains("the store cannot write"))
        harness.broker.setStoreWritable(true)
        XCTAssertTrue(harness.logs.contains("2 QoS 1/2 publishes were refused"))
        publisher.publish("t", "q1", qos: .atLeastOnce, id: 1, dup: true)
        XCTAssertEqual(publisher.take(), [.puback(pid(1))])
        XCTAssertEqual(payloads(subscriber.take()), ["q1"])
    }

    func test_MQTT_4_4_0_1_restoreRebuildsSessionsFlowsAndRetained() {
        // Everything a restart must bring back: subscriptions, a queue, an unacknowledged PUBLISH (resent with DUP=1
        // and its id), a flow at PUBREL (only the PUBREL is resent), inbound QoS 2 ids, retained messages.
        let before = Harness()
        before.enableDurability()
        let subscriber = before.connect("s", clean: false)
        subscriber.subscribeOnly([("a", .atLeastOnce), ("b", .exactlyOnce)])
        let publisher = before.connect("p", clean: false)
        publisher.publish("a", "in flight", qos: .atLeastOnce, id: 1)
        publisher.publish("b", "released", qos: .exactlyOnce, id: 2)
        publisher.send(.pubrel(pid(2)))
        publisher.publish("b", "held id", qos: .exactlyOnce, id: 3)
        publisher.publish("r", "retained", qos: .atLeastOnce, id: 4, retain: true)
        XCTAssertEqual(
            publisher.take(), [.puback(pid(1)), .pubrec(pid(2)), .pubcomp(pid(2)), .pubrec(pid(3)), .puback(pid(4))])
        XCTAssertEqual(
            subscriber.take(),
            [
                pub("a", "in flight", qos: .atLeastOnce, id: 1), pub("b", "released", qos: .exactlyOnce, id: 2),
                pub("b", "held id", qos: .exactlyOnce, id: 3),
            ])
        subscriber.send(.pubrec(pid(2)))
        XCTAssertEqual(subscriber.take(), [.pubrel(pid(2))])
        subscriber.drop()
        publisher.drop()
        let other = before.connect("q")
        other.publish("a", "queued", qos: .atLeastOnce, id: 9)
        guard let state = before.store else { return XCTFail("no store") }

        let after = Harness()
        let summary = after.enableDurability(restoring: state)
        XCTAssertEqual(summary.sessions, 2)
        XCTAssertEqual(summary.retainedMessages, 1)
        XCTAssertEqual(summary.queuedMessages, 1)
        XCTAssertEqual(summary.inflightMessages, 3)
        let back = after.connectExpectingAnything("s", clean: false)
        XCTAssertEqual(
            back.take(),
            [
                connack(.accepted, sessionPresent: true), pub("a", "in flight", qos: .atLeastOnce, id: 1, dup: true),
                pub("b", "held id", qos: .exactlyOnce, id: 3, dup: true), .pubrel(pid(2)),
                pub("a", "queued", qos: .atLeastOnce, id: 4),
            ])
        // The publisher's inbound id 3 is still awaiting PUBREL: a resend is answered, not routed again.
        let publisherBack = after.connect("p", clean: false, sessionPresent: true)
        publisherBack.publish("b", "held id", qos: .exactlyOnce, id: 3, dup: true)
        XCTAssertEqual(publisherBack.take(), [.pubrec(pid(3))])
        XCTAssertEqual(back.take(), [])
        let reader = after.connect("reader")
        reader.subscribe([("r", .atLeastOnce)])
        XCTAssertEqual(reader.take(), [pub("r", "retained", qos: .atLeastOnce, id: 1, retain: true)])
    }

    func test_persistentSessionExpiresWhileRunning() {
        var configuration = BrokerConfiguration()
        configuration.persistentClientExpiration = 120
        let harness = Harness(configuration)
        harness.enableDurability()
        let client = harness.connect("s", clean: false)
        client.subscribeOnly([("t", .atLeastOnce)])
        client.disconnect()
        harness.advance(60)
        harness.connect("s", clean: false, sessionPresent: true).disconnect()
        harness.advance(100)
        XCTAssertFalse(harness.logs.contains("Expiring client s"), "away 100 of 120 seconds")
        XCTAssertEqual(harness.broker.statistics.clientsExpired, 0)
        // Offline sessions are checked once a minute: gone within the limit plus a minute.
        harness.advance(60)
        XCTAssertTrue(harness.logs.contains("Expiring client s"))
        XCTAssertEqual(harness.broker.statistics.clientsExpired, 1, "$SYS/broker/clients/expired counts it")
        XCTAssertNil(harness.store?.sessions["s"], "the store keeps the expired session")
        harness.connect("s", clean: false, sessionPresent: false)
    }

    func test_expiredSessionsAreEndedAtRestore() {
        var state = StoreState()
        state.apply(.sessionCreated(clientID: "old", unixSeconds: 1_000))
        state.apply(.sessionCreated(clientID: "recent", unixSeconds: 1_700_000_000 - 10))
        var configuration = BrokerConfiguration()
        configuration.persistentClientExpiration = 3600
        let harness = Harness(configuration)
        harness.commitsAtOnce = false
        let summary = harness.enableDurability(restoring: state, unixSeconds: 1_700_000_000)
        XCTAssertEqual(summary.sessions, 1)
        XCTAssertEqual(summary.expiredSessions, 1)
        XCTAssertEqual(harness.commit(), [.sessionEnded(clientID: "old")])
        harness.commitsAtOnce = true
        harness.connect("recent", clean: false, sessionPresent: true)
    }
}
