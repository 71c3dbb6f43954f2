// Connections from a broker bridging to this one (`Connect.isBridge`, mosquitto's `try_private`): what the bridge
// published is not sent back to it, and its deliveries keep the RETAIN flag as published.
import MQTTCodec
import MidgeCore
import XCTest

final class BridgeTests: XCTestCase {
    func test_aBridgeIsNotSentWhatItPublishedAtAnyQoS() {
        let harness = Harness()
        let bridge = harness.connect("bridge", isBridge: true)
        // Two filters, one a wildcard, both matching: the bridge would get one copy without the rule.
        bridge.subscribeOnly([("#", .exactlyOnce), ("t", .exactlyOnce)])
        let subscriber = harness.connect("s")
        subscriber.subscribeOnly([("t", .exactlyOnce)])

        bridge.publish("t", "q0")
        XCTAssertEqual(bridge.take(), [])
        XCTAssertEqual(subscriber.take(), [pub("t", "q0")])

        bridge.publish("t", "q1", qos: .atLeastOnce, id: 1)
        XCTAssertEqual(bridge.take(), [.puback(pid(1))])
        XCTAssertEqual(subscriber.take(), [pub("t", "q1", qos: .atLeastOnce, id: 1)])

        bridge.publish("t", "q2", qos: .exactlyOnce, id: 2)
        bridge.send(.pubrel(pid(2)))
        XCTAssertEqual(bridge.take(), [.pubrec(pid(2)), .pubcomp(pid(2))])
        XCTAssertEqual(subscriber.take(), [pub("t", "q2", qos: .exactlyOnce, id: 2)])
    }

    func test_aBridgeStillGetsWhatOthersPublish() {
        let harness = Harness()
        let bridge = harness.connect("bridge", isBridge: true)
        bridge.subscribeOnly([("#", .atLeastOnce)])
        let publisher = harness.connect("p")
        publisher.publish("a/b", "from p", qos: .atLeastOnce, id: 1)
        XCTAssertEqual(bridge.take(), [pub("a/b", "from p", qos: .atLeastOnce, id: 1)])
    }

    func test_anOrdinaryClientStillGetsItsOwnPublish() {
        // MQTT 3.1.1 has no no-local: a client subscribed to its own topic gets what it publishes.
        let harness = Harness()
        let client = harness.connect("c")
        client.subscribeOnly([("t", .atLeastOnce)])
        client.publish("t", "mine", qos: .atLeastOnce, id: 1)
        XCTAssertEqual(client.take(), [.puback(pid(1)), pub("t", "mine", qos: .atLeastOnce, id: 1)])
    }

    func test_aBridgeGetsRetainAsPublishedAndClientsGetRetainCleared() {
        let harness = Harness()
        let bridge = harness.connect("bridge", isBridge: true)
        bridge.subscribeOnly([("t", .atLeastOnce)])
        let subscriber = harness.connect("s")
        subscriber.subscribeOnly([("t", .atLeastOnce)])
        let publisher = harness.connect("p")

        publisher.publish("t", "kept", qos: .atLeastOnce, id: 1, retain: true)
        publisher.publish("t", "live", qos: .atLeastOnce, id: 2)
        // An empty retained message clears the topic here, and so at the other broker too.
        publisher.publish("t", "", qos: .atLeastOnce, id: 3, retain: true)
        XCTAssertEqual(
            bridge.take(),
            [
                pub("t", "kept", qos: .atLeastOnce, id: 1, retain: true), pub("t", "live", qos: .atLeastOnce, id: 2),
                pub("t", "", qos: .atLeastOnce, id: 3, retain: true),
            ])
        XCTAssertEqual(
            subscriber.take(),
            [
                pub("t", "kept", qos: .atLeastOnce, id: 1), pub("t", "live", qos: .atLeastOnce, id: 2),
                pub("t", "", qos: .atLeastOnce, id: 3),
            ])  // [MQTT-3.3.1-9]
    }

    func test_deliveriesQueuedForAnAbsentBridgeKeepRetain() {
        let harness = Harness()
        let bridge = harness.connect("bridge", clean: false, isBridge: true)
        bridge.subscribeOnly([("t", .atLeastOnce)])
        bridge.drop()
        harness.connect("p").publish("t", "while away", qos: .atLeastOnce, id: 1, retain: true)
        let back = harness.connectExpectingAnything("bridge", clean: false, isBridge: true)
        XCTAssertEqual(
            back.take(),
            [
                connack(.accepted, sessionPresent: true),
                pub("t", "while away", qos: .atLeastOnce, id: 1, retain: true),
            ])
    }

    func test_theBridgeFlagComesFromEachConnect() {
        // The same persistent session, taken up by a client that does not say it is a bridge, is an ordinary one.
        let harness = Harness()
        let bridge = harness.connect("id", clean: false, isBridge: true)
        bridge.subscribeOnly([("t", .atMostOnce)])
        bridge.disconnect()
        let client = harness.connect("id", clean: false, sessionPresent: true)
        client.publish("t", "echo", retain: true)
        XCTAssertEqual(client.take(), [pub("t", "echo")])
        client.disconnect()
        let bridgeAgain = harness.connect("id", clean: false, sessionPresent: true, isBridge: true)
        bridgeAgain.publish("t", "no echo", retain: true)
        XCTAssertEqual(bridgeAgain.take(), [])
    }

    func test_aRestoredBridgeSessionIsABridgeAgainAtItsNextConnect() {
        let before = Harness()
        before.enableDurability()
        before.connect("bridge", clean: false, isBridge: true).subscribeOnly([("#", .atLeastOnce)])
        guard let state = before.store else { return XCTFail("no store") }

        let after = Harness()
        after.enableDurability(restoring: state)
        let bridge = after.connect("bridge", clean: false, sessionPresent: true, isBridge: true)
        bridge.publish("t", "no echo", qos: .atLeastOnce, id: 1, retain: true)
        XCTAssertEqual(bridge.take(), [.puback(pid(1))])
        after.connect("p").publish("t", "from p", qos: .atLeastOnce, id: 1, retain: true)
        XCTAssertEqual(bridge.take(), [pub("t", "from p", qos: .atLeastOnce, id: 1, retain: true)])
    }

    func test_theWillOfABridgeIsNotQueuedForItsOwnSession() {
        // mosquitto publishes a Will with its client's id as the source, so no-local holds for it too.
        let harness = Harness()
        let bridge = harness.connect(
            "bridge", clean: false, will: will("state", "0", qos: .atLeastOnce, retain: true), isBridge: true)
        bridge.subscribeOnly([("state", .atLeastOnce)])
        let subscriber = harness.connect("s")
        subscriber.subscribeOnly([("state", .atLeastOnce)])
        bridge.drop()
        XCTAssertEqual(subscriber.take(), [pub("state", "0", qos: .atLeastOnce, id: 1)])
        let back = harness.connectExpectingAnything("bridge", clean: false, isBridge: true)
        XCTAssertEqual(back.take(), [connack(.accepted, sessionPresent: true)])
    }

    func test_aBridgeInASharedGroupIsSentItsOwnMessage() {
        // No-local does not apply to shared subscriptions (mosquitto's subs__shared_process); RETAIN still does.
        let harness = Harness()
        let bridge = harness.connect("bridge", isBridge: true)
        bridge.subscribeOnly([("$share/g/t", .atMostOnce)])
        bridge.publish("t", "shared", retain: true)
        XCTAssertEqual(bridge.take(), [pub("t", "shared", retain: true)])
    }

    func test_aBridgeHasAtLeastAHundredInFlightWhereAClientHasItsMaxInflightMessages() {
        var configuration = BrokerConfiguration()
        configuration.maxInflightMessages = 20
        let harness = Harness(configuration)
        let bridge = harness.connect("bridge", isBridge: true)
        bridge.subscribeOnly([("t", .atLeastOnce)])
        let client = harness.connect("client")
        client.subscribeOnly([("t", .atLeastOnce)])
        let publisher = harness.connect("p")
        for index in 0..<150 { publisher.publish("t", "\(index)", qos: .atLeastOnce, id: 1) }
        XCTAssertEqual(bridge.take().count, 100, "a broker on the other end: each ack crosses it first")
        XCTAssertEqual(client.take().count, 20)
    }
}
