// Shared subscriptions (`$share/<group>/<filter>`, as mosquitto 2.0 serves them to MQTT 3.1.1 clients): one member of
// each group per message, round robin; ordinary subscribers unaffected; no retained messages; membership kept by
// persistent sessions.
import MQTTCodec
import MidgeCore
import MidgeRecords
import XCTest

final class SharedSubscriptionTests: XCTestCase {
    private func workers(
        _ harness: Harness, _ count: Int, filter: String = "$share/g/jobs/#", qos: QoS = .atMostOnce, name: String = "w"
    ) -> [Client] {
        (0..<count).map { index in
            let worker = harness.connect("\(name)\(index)")
            worker.subscribeOnly([(filter, qos)])
            return worker
        }
    }

    func test_eachMessageGoesToOneMemberInTurn() {
        let harness = Harness()
        let members = workers(harness, 3)
        let publisher = harness.connect("p")
        for index in 0..<9 { publisher.publish("jobs/\(index)", "\(index)") }
        let received = members.map { payloads($0.take()) }
        XCTAssertEqual(received, [["0", "3", "6"], ["1", "4", "7"], ["2", "5", "8"]])
        XCTAssertEqual(harness.broker.statistics.sharedSubscriptions, 3)
    }

    func test_ordinarySubscribersAndOtherGroupsStillGetEveryMessage() {
        let harness = Harness()
        let groupA = workers(harness, 2, filter: "$share/a/jobs/+", name: "a")
        let groupB = workers(harness, 1, filter: "$share/b/jobs/#", name: "b").first!
        let watcher = harness.connect("watch")
        watcher.subscribeOnly([("jobs/#", .atMostOnce)])
        let publisher = harness.connect("p")
        for index in 0..<4 { publisher.publish("jobs/\(index)", "\(index)") }
        XCTAssertEqual(groupA.map { payloads($0.take()).count }, [2, 2])
        XCTAssertEqual(payloads(groupB.take()), ["0", "1", "2", "3"])
        XCTAssertEqual(payloads(watcher.take()), ["0", "1", "2", "3"])
    }

    func test_aMemberThatAlsoSubscribesOrdinarilyGetsBothCopies() {
        let harness = Harness()
        let worker = harness.connect("w")
        worker.subscribeOnly([("$share/g/t", .atMostOnce), ("t", .atMostOnce)])
        harness.connect("p").publish("t", "x")
        XCTAssertEqual(payloads(worker.take()), ["x", "x"], "the group is a subscriber of its own")
    }

    func test_invalidSharedFiltersAreRefused() {
        let harness = Harness()
        let client = harness.connect("c")
        // An empty group, no filter after the group, and an empty filter after it.
        let codes = client.subscribe([
            ("$share//t", .atMostOnce), ("$share/g", .atMostOnce), ("$share/g/", .atMostOnce),
            ("$share/ok/t", .atLeastOnce),
        ])
        XCTAssertEqual(codes, [.failure, .failure, .failure, .granted(.atLeastOnce)])
    }

    func test_noRetainedMessagesOnASharedSubscribe() {
        let harness = Harness()
        harness.connect("p").publish("jobs/1", "old", retain: true)
        let worker = harness.connect("w")
        XCTAssertEqual(worker.subscribe([("$share/g/jobs/#", .atMostOnce)]), [.granted(.atMostOnce)])
        XCTAssertEqual(worker.take(), [], "no retained message for a shared subscription")
    }

    func test_qosIsTheLowerOfPublishedAndTheMembersGrant() {
        let harness = Harness()
        let worker = harness.connect("w")
        worker.subscribeOnly([("$share/g/t", .atMostOnce)])
        harness.connect("p").publish("t", "x", qos: .atLeastOnce, id: 1)
        let deliveries = harness.takeDeliveries(worker.id)
        XCTAssertEqual(deliveries.map(\.qos), [.atMostOnce])
    }

    func test_aMemberWhoseOutputIsBlockedIsPassedOver() {
        let harness = Harness()
        let members = workers(harness, 2)
        harness.congest(members[0].id)
        let publisher = harness.connect("p")
        for index in 0..<4 { publisher.publish("jobs/\(index)", "\(index)") }
        XCTAssertEqual(payloads(members[1].take()), ["0", "1", "2", "3"], "the congested member is skipped")
        XCTAssertEqual(payloads(members[0].take()), [])
    }

    func test_anOfflinePersistentMemberGetsMessagesOnlyWhenNoMemberIsOnline() {
        let harness = Harness()
        let away = harness.connect("away", clean: false)
        away.subscribeOnly([("$share/g/t", .atLeastOnce)])
        away.drop()
        let online = harness.connect("online")
        online.subscribeOnly([("$share/g/t", .atLeastOnce)])
        let publisher = harness.connect("p")
        publisher.publish("t", "1", qos: .atLeastOnce, id: 1)
        publisher.publish("t", "2", qos: .atLeastOnce, id: 2)
        XCTAssertEqual(payloads(online.take()), ["1", "2"], "the online member takes them while it can")
        online.disconnect()
        publisher.publish("t", "3", qos: .atLeastOnce, id: 3)
        let back = harness.connectExpectingAnything("away", clean: false)
        XCTAssertEqual(payloads(back.take()), ["3"], "queued for the offline member once nobody else was there")
    }

    func test_persistentMembershipSurvivesReconnectAndUnsubscribeEndsIt() {
        let harness = Harness()
        let member = harness.connect("m", clean: false)
        member.subscribeOnly([("$share/g/t", .atMostOnce)])
        member.disconnect()
        let again = harness.connect("m", clean: false, sessionPresent: true)
        harness.connect("p").publish("t", "x")
        XCTAssertEqual(payloads(again.take()), ["x"])
        again.unsubscribe(["$share/g/t"])
        XCTAssertEqual(again.take(), [.unsuback(pid(2))])
        XCTAssertEqual(harness.broker.statistics.sharedSubscriptions, 0)
        harness.connect("p2").publish("t", "y")
        XCTAssertEqual(again.take(), [])
    }

    func test_membershipIsRestoredFromTheStore() {
        let harness = Harness()
        harness.enableDurability()
        let member = harness.connect("m", clean: false)
        member.subscribeOnly([("$share/g/t", .atLeastOnce)])
        _ = harness.commit()
        let restored = Harness()
        restored.enableDurability(restoring: harness.store ?? StoreState())
        XCTAssertEqual(restored.broker.statistics.sharedSubscriptions, 1)
        let back = restored.connect("m", clean: false, sessionPresent: true)
        restored.connect("p").publish("t", "after restart")
        XCTAssertEqual(payloads(back.take()), ["after restart"])
    }
}
