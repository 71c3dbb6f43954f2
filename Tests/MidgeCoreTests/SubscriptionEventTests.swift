// Subscription events for `log_type subscribe` / `unsubscribe`: one per granted filter and one per unsubscribed
// filter, worded as mosquitto's log lines.
import MQTTCodec
import MidgeCore
import XCTest

final class SubscriptionEventTests: XCTestCase {
    /// A harness whose broker records its subscription events.
    private func recording(
        _ configuration: BrokerConfiguration = BrokerConfiguration(), accessControl: any AccessControl = AllowAll()
    ) -> (Harness, EventBox) {
        let harness = Harness(configuration, accessControl: accessControl)
        let box = EventBox()
        harness.broker.subscriptionEvents = { box.events.append($0) }
        return (harness, box)
    }

    final class EventBox {
        var events: [SubscriptionEvent] = []
        var lines: [String] { events.map(\.logLine) }
    }

    func testEachGrantedFilterIsToldWithItsGrantedQoS() {
        var configuration = BrokerConfiguration()
        configuration.maxQoS = .atLeastOnce
        let (harness, box) = recording(configuration, accessControl: DenyTopics(subscribe: ["secret"]))
        let client = harness.connect("c")
        XCTAssertEqual(
            client.subscribe([("a/+", .exactlyOnce), ("secret", .atMostOnce), ("b/#", .atMostOnce)]),
            [.granted(.atLeastOnce), .failure, .granted(.atMostOnce)])
        XCTAssertEqual(box.lines, ["c 1 a/+", "c 0 b/#"], "mosquitto: `<id> <qos> <filter>`, refusals not logged")
    }

    func testEachUnsubscribedFilterIsToldWhetherOrNotItWasHeld() {
        let (harness, box) = recording()
        let client = harness.connect("c")
        client.subscribeOnly([("a", .atLeastOnce)])
        box.events = []
        client.unsubscribe(["a", "never/held"])
        XCTAssertEqual(client.take(), [.unsuback(pid(2))])
        XCTAssertEqual(box.lines, ["c a", "c never/held"], "mosquitto logs every filter of the packet")
        XCTAssertEqual(
            box.events.first, .unsubscribed(clientID: "c", filter: filter("a")))
    }

    func testSharedSubscriptionsAreToldWithTheirWholeFilter() {
        let (harness, box) = recording()
        let client = harness.connect("c")
        client.subscribeOnly([("$share/g/t", .atMostOnce)])
        client.unsubscribe(["$share/g/t"])
        XCTAssertEqual(box.lines, ["c 0 $share/g/t", "c $share/g/t"])
    }

    func testNothingIsToldWithoutASink() {
        let harness = Harness()
        let client = harness.connect("c")
        client.subscribeOnly([("a", .atMostOnce)])
        client.unsubscribe(["a"])
        XCTAssertEqual(client.take(), [.unsuback(pid(2))])
    }
}
