// Black-box tests of the Will message (§3.1.2.5 - §3.1.2.7, §3.14).

import Foundation
import MQTTCodec
import MQTTTestSupport
import XCTest

final class WillTests: ConformanceCase {
    /// A subscriber on a fresh will topic, and that topic.
    private func willWatcher(qos: UInt8 = 0) throws -> (RawClient, String) {
        let watcher = try connect()
        let topic = uniqueTopic("will")
        try subscribe(watcher, topic, qos: qos)
        return (watcher, topic)
    }

    func test_MQTT_3_1_2_8_willPublishedOnAbruptClose() throws {
        // A will client that drops TCP without DISCONNECT has its will topic, payload and QoS published.
        let (watcher, topic) = try willWatcher(qos: 2)
        let client = try connect(will: WillSpec(topic: topic, payload: Array("last words".utf8), qos: 1))
        client.close()
        try receive(watcher, topic: topic, payload: "last words", qos: 1)
    }

    func test_MQTT_3_1_2_10_willPublishedOnceThenForgotten() throws {
        // After an abrupt close the will fires exactly once; after a DISCONNECT no will ever fires.
        let (watcher, topic) = try willWatcher()
        let abrupt = try connect(will: WillSpec(topic: topic, payload: Array("once".utf8)))
        abrupt.reset()
        try receive(watcher, topic: topic, payload: "once")
        let clean = try connect(will: WillSpec(topic: topic, payload: Array("never".utf8)))
        try clean.send(Wire.disconnect)
        try clean.expectClosed()
        clean.close()
        try watcher.expectNothing(for: 0.5)
    }

    func test_MQTT_3_1_2_12_noWillNothingPublished() throws {
        // A client without a will that drops TCP makes a `#`-style subscriber under its topics receive nothing.
        let prefix = uniqueTopic("root")
        let watcher = try connect()
        try subscribe(watcher, prefix + "/#")
        let client = try connect()
        try subscribe(client, prefix + "/x")
        client.reset()
        try watcher.expectNothing(for: 0.5)
    }

    func test_MQTT_3_1_2_16_willRetain0PublishedNonRetained() throws {
        // Will retain 0: a live subscriber gets the will; a subscriber joining afterwards gets nothing retained.
        let (watcher, topic) = try willWatcher()
        let client = try connect(will: WillSpec(topic: topic, payload: Array("plain".utf8), retain: false))
        client.close()
        let delivered = try receive(watcher, topic: topic, payload: "plain")
        XCTAssertFalse(delivered.retain)
        let late = try connect()
        try subscribe(late, topic)
        try late.expectNothing(for: 0.5)
    }

    func test_MQTT_3_1_2_17_willRetain1PublishedRetained() throws {
        // Will retain 1: a subscriber joining after the close receives the will with RETAIN 1.
        let topic = uniqueTopic("will")
        let client = try connect(will: WillSpec(topic: topic, payload: Array("kept".utf8), qos: 1, retain: true))
        let watcher = try connect()
        try subscribe(watcher, topic, qos: 1)
        client.close()
        // Seeing the live copy proves the will was published before the late subscriber asks.
        let live = try receive(watcher, topic: topic, payload: "kept", qos: 1)
        XCTAssertFalse(live.retain, "a live forward has RETAIN 0 [MQTT-3.3.1-9]")
        let late = try connect()
        try subscribe(late, topic, qos: 1)
        let replay = try receive(late, topic: topic, payload: "kept", qos: 1)
        XCTAssertTrue(replay.retain)
        try publish(late, topic, "", retain: true)
    }

    func test_MQTT_3_14_1_1_disconnectReservedFlagsClose() throws {
        // DISCONNECT sent as 0xE1 by a will client closes the connection and publishes the will.
        let (watcher, topic) = try willWatcher()
        let client = try connect(will: WillSpec(topic: topic, payload: Array("bad disconnect".utf8)))
        try client.send([0xE1, 0x00])
        try client.expectClosed()
        try receive(watcher, topic: topic, payload: "bad disconnect")
    }

    func test_MQTT_3_14_4_3_disconnectDiscardsWill() throws {
        // A will client sends DISCONNECT and closes: the will topic's subscriber gets nothing.
        let (watcher, topic) = try willWatcher()
        let client = try connect(will: WillSpec(topic: topic, payload: Array("discarded".utf8)))
        try client.send(Wire.disconnect)
        client.close()
        try watcher.expectNothing(for: 0.5)
    }
}
