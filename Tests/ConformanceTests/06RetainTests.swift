// Black-box tests of retained messages and the RETAIN flag on delivery (§3.3.1.3, §3.1.2.4).

import Foundation
import MQTTCodec
import MQTTTestSupport
import XCTest

final class RetainTests: ConformanceCase {
    func test_MQTT_3_1_2_7_retainedOutlivesSession() throws {
        // A clean-session client publishes a retained message and disconnects; a fresh subscriber still gets it.
        let topic = uniqueTopic()
        let publisher = try connect(clean: true)
        try publish(publisher, topic, "outlives", qos: 1, retain: true)
        try disconnectAndWait(publisher)
        let subscriber = try connect()
        try subscribe(subscriber, topic, qos: 1)
        let replay = try receive(subscriber, topic: topic, payload: "outlives", qos: 1)
        XCTAssertTrue(replay.retain)
        try publish(subscriber, topic, "", retain: true)
    }

    func test_MQTT_3_3_1_5_retainedStoredWithQoS() throws {
        // A retained QoS 1 message on `a/b` is replayed at QoS 1 to a later QoS 1 subscriber.
        let topic = uniqueTopic("a/b")
        let publisher = try connect()
        try publish(publisher, topic, "stored", qos: 1, retain: true)
        let subscriber = try connect()
        try subscribe(subscriber, topic, qos: 1)
        try receive(subscriber, topic: topic, payload: "stored", qos: 1)
        try publish(publisher, topic, "", retain: true)
    }

    func test_MQTT_3_3_1_6_newSubscriptionGetsEveryMatchingRetained() throws {
        // Retained messages on `a/1`, `a/2`, `b/1`; a subscription to `a/+` receives exactly `a/1` and `a/2`.
        let root = uniqueTopic("r")
        let publisher = try connect()
        for leaf in ["a/1", "a/2", "b/1"] {
            try publish(publisher, root + "/" + leaf, leaf, qos: 1, retain: true)
        }
        let subscriber = try connect()
        try subscribe(subscriber, root + "/a/+", qos: 1)
        var topics: Set<String> = []
        for _ in 0..<2 {
            let publish = try subscriber.readPublish()
            XCTAssertTrue(publish.retain)
            topics.insert(publish.topicString)
            try acknowledge(subscriber, publish)
        }
        XCTAssertEqual(topics, [root + "/a/1", root + "/a/2"])
        try subscriber.expectNothing(for: 0.3)
        for leaf in ["a/1", "a/2", "b/1"] {
            try publish(publisher, root + "/" + leaf, "", retain: true)
        }
    }

    func test_MQTT_3_3_1_7_retainedQoS0ReplacesOld() throws {
        // Retained QoS 1 `old` then retained QoS 0 `new`: a new subscriber gets `new` or nothing, never `old`.
        let topic = uniqueTopic()
        let publisher = try connect()
        try publish(publisher, topic, "old", qos: 1, retain: true)
        try publish(publisher, topic, "new", qos: 0, retain: true)
        let subscriber = try connect()
        try subscribe(subscriber, topic, qos: 1)
        if let frame = subscriber.readFrame(timeout: 1) {
            let publish = try XCTUnwrap(try frame.decode().publish)
            XCTAssertEqual(publish.payloadString, "new")
            XCTAssertEqual(publish.qos, .atMostOnce)
        }
        try publish(publisher, topic, "", retain: true)
    }

    func test_MQTT_3_3_1_8_replayHasRetain1() throws {
        // A subscription made after a retained publish receives it with RETAIN 1 (flag bit 0 set).
        let topic = uniqueTopic()
        let publisher = try connect()
        try publish(publisher, topic, "replayed", qos: 0, retain: true)
        let subscriber = try connect()
        try subscribe(subscriber, topic, qos: 0)
        let frame = try XCTUnwrap(subscriber.readFrame())
        XCTAssertEqual(frame.first, 0x31)
        try publish(publisher, topic, "", retain: true)
    }

    func test_MQTT_3_3_1_9_liveForwardHasRetainZero() throws {
        // An established subscriber receives a publish sent with RETAIN 1 with RETAIN 0.
        let topic = uniqueTopic()
        let subscriber = try connect()
        try subscribe(subscriber, topic, qos: 1)
        let publisher = try connect()
        try publish(publisher, topic, "live", qos: 1, retain: true)
        let delivery = try receive(subscriber, topic: topic, payload: "live", qos: 1)
        XCTAssertFalse(delivery.retain)
        try publish(publisher, topic, "", retain: true)
    }

    func test_MQTT_3_3_1_10_emptyRetainedClearsAndIsForwarded() throws {
        // An empty retained publish reaches live subscribers (RETAIN 0) and clears the topic for new subscribers.
        let topic = uniqueTopic()
        let publisher = try connect()
        try publish(publisher, topic, "x", qos: 1, retain: true)
        let live = try connect()
        try subscribe(live, topic, qos: 1)
        try receive(live, topic: topic, payload: "x", qos: 1)
        try publish(publisher, topic, "", qos: 1, retain: true)
        let cleared = try receive(live, topic: topic, payload: "", qos: 1)
        XCTAssertFalse(cleared.retain)
        let late = try connect()
        try subscribe(late, topic, qos: 1)
        try late.expectNothing(for: 0.5)
    }

    func test_MQTT_3_3_1_11_emptyRetainedNeverStored() throws {
        // An empty retained publish on a fresh topic stores nothing: a later subscriber gets nothing.
        let topic = uniqueTopic()
        let publisher = try connect()
        try publish(publisher, topic, "", qos: 1, retain: true)
        let late = try connect()
        try subscribe(late, topic, qos: 1)
        try late.expectNothing(for: 0.5)
    }

    func test_MQTT_3_3_1_12_nonRetainedLeavesRetained() throws {
        // Retained `a` then non-retained `b` on one topic: a new subscriber gets `a`.
        let topic = uniqueTopic()
        let publisher = try connect()
        try publish(publisher, topic, "a", qos: 1, retain: true)
        try publish(publisher, topic, "b", qos: 1, retain: false)
        let subscriber = try connect()
        try subscribe(subscriber, topic, qos: 1)
        let replay = try receive(subscriber, topic: topic, payload: "a", qos: 1)
        XCTAssertTrue(replay.retain)
        try subscriber.expectNothing(for: 0.3)
        try publish(publisher, topic, "", retain: true)
    }
}
