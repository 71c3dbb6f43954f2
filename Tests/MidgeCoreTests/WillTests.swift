// The Will message (§3.1.2.5, §3.14.4).
import MQTTCodec
import MidgeCore
import XCTest

final class WillTests: XCTestCase {
    private func watcher(_ harness: Harness, qos: QoS = .exactlyOnce) -> Client {
        let client = harness.connect("watcher")
        client.subscribeOnly([("wills/#", qos)])
        return client
    }

    func test_MQTT_3_1_2_8_willPublishedWhenTheConnectionIsLost() {
        let harness = Harness()
        let watcher = watcher(harness)
        let client = harness.connect("a", will: will("wills/a", "lost", qos: .atLeastOnce))
        client.drop(.connectionLost("connection reset"))
        XCTAssertEqual(watcher.take(), [pub("wills/a", "lost", qos: .atLeastOnce, id: 1)])
    }

    func test_willFiresOnEveryCloseReasonThatCallsForIt() {
        let reasons: [CloseReason] = [
            .endOfStream, .connectionLost("x"), .protocolError("malformed"), .keepaliveTimeout, .limitExceeded("x"),
        ]
        for reason in reasons {
            let harness = Harness()
            let watcher = watcher(harness, qos: .atMostOnce)
            harness.connect("a", will: will("wills/a", "bye")).drop(reason)
            XCTAssertEqual(watcher.take(), [pub("wills/a", "bye")], "\(reason)")
        }
        let harness = Harness()
        let watcher = watcher(harness, qos: .atMostOnce)
        harness.connect("a", will: will("wills/a", "bye")).drop(.serverShutdown)
        XCTAssertEqual(watcher.take(), [])
    }

    func test_MQTT_3_14_4_3_noWillAfterDisconnect() {
        let harness = Harness()
        let watcher = watcher(harness)
        let client = harness.connect("a", will: will("wills/a", "bye"))
        client.disconnect()
        XCTAssertEqual(client.closeReason, .clientDisconnected)
        client.drop()
        XCTAssertEqual(watcher.take(), [])
    }

    func test_MQTT_3_1_2_10_willPublishedExactlyOnce() {
        let harness = Harness()
        let watcher = watcher(harness, qos: .atMostOnce)
        let client = harness.connect("a", keepAlive: 10, will: will("wills/a", "bye"))
        harness.advance(16)
        XCTAssertEqual(client.closeReason, .keepaliveTimeout)
        client.drop()  // the driver reporting the close again changes nothing
        harness.advance(100)
        XCTAssertEqual(watcher.take(), [pub("wills/a", "bye")])
    }

    func test_MQTT_3_1_2_12_noWillNoMessage() {
        let harness = Harness()
        let everything = harness.connect("everything")
        everything.subscribeOnly([("#", .atMostOnce)])
        harness.connect("a").drop(.connectionLost("reset"))
        XCTAssertEqual(everything.take(), [])
    }

    func test_MQTT_3_1_2_16_willWithRetainZeroIsNotRetained() {
        let harness = Harness()
        let watcher = watcher(harness, qos: .atMostOnce)
        harness.connect("a", will: will("wills/a", "bye", retain: false)).drop()
        XCTAssertEqual(watcher.take(), [pub("wills/a", "bye")])
        let late = harness.connect("late")
        late.subscribe([("wills/#", .atMostOnce)])
        XCTAssertEqual(late.take(), [])
    }

    func test_MQTT_3_1_2_17_willWithRetainOneIsRetained() {
        let harness = Harness()
        let watcher = watcher(harness, qos: .exactlyOnce)
        harness.connect("a", will: will("wills/a", "bye", qos: .exactlyOnce, retain: true)).drop()
        XCTAssertEqual(watcher.take(), [pub("wills/a", "bye", qos: .exactlyOnce, id: 1, retain: false)])
        let late = harness.connect("late")
        late.subscribe([("wills/#", .atLeastOnce)])
        XCTAssertEqual(late.take(), [pub("wills/a", "bye", qos: .atLeastOnce, id: 1, retain: true)])
    }

    func test_willOfACleanSessionDoesNotReachItsOwnSubscription() {
        let harness = Harness()
        let watcher = watcher(harness, qos: .atMostOnce)
        let client = harness.connect("a", will: will("wills/a", "bye"))
        client.subscribeOnly([("wills/#", .atMostOnce)])
        client.drop()
        XCTAssertEqual(watcher.take(), [pub("wills/a", "bye")])
        XCTAssertEqual(client.take(), [])
    }

    func test_willToSysIsDropped() {
        let harness = Harness()
        let sys = harness.connect("sys")
        sys.subscribeOnly([("$SYS/#", .atMostOnce)])
        harness.connect("a", will: will("$SYS/fake", "bye")).drop()
        XCTAssertEqual(sys.take(), [])
    }
}
