// Keepalive enforcement (§3.1.2.10) and PINGREQ (§3.12), driven by a fake clock.
import MQTTCodec
import MidgeCore
import XCTest

final class KeepaliveTests: XCTestCase {
    func test_MQTT_3_1_2_24_silentClientClosedAfterOneAndAHalfKeepalives() {
        let harness = Harness()
        let watcher = harness.connect("w")
        watcher.subscribeOnly([("will", .atMostOnce)])
        let client = harness.connect("a", keepAlive: 10, will: will("will", "timeout"))
        harness.advance(14.9)
        XCTAssertFalse(client.isClosed, "not before 1.5 × keepalive")
        harness.advance(0.2)
        XCTAssertEqual(client.closeReason, .keepaliveTimeout)
        XCTAssertEqual(watcher.take(), [pub("will", "timeout")], "the Will fires on a timeout")
        XCTAssertTrue(harness.logs.contains("Client a has exceeded timeout, disconnecting."))
    }

    func test_anyPacketMovesTheDeadline() {
        let harness = Harness()
        let client = harness.connect("a", keepAlive: 2)
        for _ in 0..<20 {
            harness.advance(2.5)
            client.send(.pingreq)
            XCTAssertEqual(client.take(), [.pingresp])
        }
        harness.advance(2.9)
        XCTAssertFalse(client.isClosed)
        client.publish("t", "x")
        harness.advance(2.9)
        XCTAssertFalse(client.isClosed)
        harness.advance(0.2)
        XCTAssertEqual(client.closeReason, .keepaliveTimeout)
    }

    func test_keepaliveZeroNeverTimesOut() {
        let harness = Harness()
        let client = harness.connect("a", keepAlive: 0)
        harness.advance(1_000_000)
        XCTAssertFalse(client.isClosed)
        XCTAssertNil(harness.broker.nextDeadline)
    }

    func test_nextDeadlineTracksTheEarliestKeepalive() {
        let harness = Harness()
        let start = harness.now
        XCTAssertNil(harness.broker.nextDeadline)
        harness.connect("slow", keepAlive: 100)
        let fast = harness.connect("fast", keepAlive: 4)
        XCTAssertEqual(harness.broker.nextDeadline, start + 6)
        // Ticking at the deadline closes the fast client and leaves the slow one as the next deadline.
        harness.advance(6)
        XCTAssertEqual(fast.closeReason, .keepaliveTimeout)
        XCTAssertEqual(harness.broker.nextDeadline, start + 150)
    }

    func test_nextDeadlineMovesOnWhenTheClientWasActive() {
        let harness = Harness()
        let start = harness.now
        let client = harness.connect("a", keepAlive: 10)
        harness.advance(5)
        client.send(.pingreq)
        harness.advance(10)  // the old deadline: re-armed, not expired
        XCTAssertFalse(client.isClosed)
        XCTAssertEqual(harness.broker.nextDeadline, start + 20)
        // A disconnected client leaves no deadline behind once it comes up.
        client.disconnect()
        harness.advance(5)
        XCTAssertNil(harness.broker.nextDeadline)
    }

    func test_MQTT_3_12_4_1_everyPingreqGetsAPingresp() {
        let harness = Harness()
        let client = harness.connect("a")
        client.send(.pingreq)
        client.send(.pingreq)
        XCTAssertEqual(client.take(), [.pingresp, .pingresp])
    }
}
