// Black-box tests of UNSUBSCRIBE and UNSUBACK (§3.10, §3.11).

import Foundation
import MQTTCodec
import MQTTTestSupport
import XCTest

final class UnsubscribeTests: ConformanceCase {
    func test_MQTT_3_10_1_1_unsubscribeReservedFlagsClose() throws {
        // An UNSUBSCRIBE sent with flags 0000 (first byte 0xA0) closes the connection without an UNSUBACK.
        let client = try connect()
        let topic = uniqueTopic()
        try subscribe(client, topic)
        try client.send(Wire.unsubscribe(id: 2, [Array(topic.utf8)], first: 0xA0))
        try client.expectClosed()
    }

    func test_MQTT_3_10_4_1_unsubscribeMatchesFilterExactly() throws {
        // With a subscription to `a/+`, unsubscribing `a/b` leaves `a/b` delivered; unsubscribing `a/+` stops it.
        let root = uniqueTopic("u")
        let client = try connect()
        try subscribe(client, root + "/a/+")
        try client.send(Wire.unsubscribe(id: 2, root + "/a/b"))
        XCTAssertEqual(try client.readPacket(), .unsuback(try packetID(2)))
        let publisher = try connect()
        try publish(publisher, root + "/a/b", "still")
        try receive(client, topic: root + "/a/b", payload: "still")
        try client.send(Wire.unsubscribe(id: 3, root + "/a/+"))
        XCTAssertEqual(try client.readPacket(), .unsuback(try packetID(3)))
        try publish(publisher, root + "/a/b", "stopped")
        try client.expectNothing(for: 0.3)
    }

    func test_MQTT_3_10_4_2_noDeliveryAfterUnsubscribe() throws {
        // After the UNSUBACK nothing is delivered through the subscription, nor queued for an absent clean-0 client.
        let id = uniqueID()
        let topic = uniqueTopic()
        let client = try connect(id, clean: false)
        try subscribe(client, topic, qos: 1)
        try client.send(Wire.unsubscribe(id: 2, topic))
        XCTAssertEqual(try client.readPacket(), .unsuback(try packetID(2)))
        let publisher = try connect()
        try publish(publisher, topic, "live", qos: 1)
        try client.expectNothing(for: 0.3)
        try disconnectAndWait(client)
        try publish(publisher, topic, "queued?", qos: 1)
        let back = try connect(id, clean: false, expectSessionPresent: true)
        try back.expectNothing(for: 0.5)
        try disconnectAndWait(back)
        _ = try connect(id, clean: true)
    }

    func test_MQTT_3_10_4_3_inFlightCompletesAfterUnsubscribe() throws {
        // QoS 1/2 deliveries under way when unsubscribed still complete (PUBREL sent, QoS 1 redelivered on reconnect).
        let id = uniqueID()
        let topic1 = uniqueTopic("one")
        let topic2 = uniqueTopic("two")
        let client = try connect(id, clean: false)
        try subscribe(client, topic1, qos: 1, id: 1)
        try subscribe(client, topic2, qos: 2, id: 2)
        let publisher = try connect()
        try publish(publisher, topic1, "one", qos: 1)
        let one = try client.readPublish()
        try publish(publisher, topic2, "two", qos: 2)
        let two = try client.readPublish()
        try client.send(Wire.unsubscribe(id: 3, topic1, topic2))
        XCTAssertEqual(try client.readPacket(), .unsuback(try packetID(3)))
        try client.send(Wire.pubrec(two.id))
        XCTAssertEqual(try client.readPacket(), .pubrel(try packetID(two.id)))
        try client.send(Wire.pubcomp(two.id))
        try client.sync()
        client.close()
        let back = try connect(id, clean: false, expectSessionPresent: true)
        let redelivered = try back.readPublish()
        XCTAssertEqual(redelivered.payloadString, "one")
        XCTAssertEqual(redelivered.id, one.id)
        XCTAssertTrue(redelivered.dup)
        try acknowledge(back, redelivered)
        try disconnectAndWait(back)
        _ = try connect(id, clean: true)
    }

    func test_MQTT_3_10_4_4_unsubAckEchoesIdentifier() throws {
        // UNSUBSCRIBE id 9 gets exactly `B0 02 00 09`.
        let client = try connect()
        let topic = uniqueTopic()
        try subscribe(client, topic)
        try client.send(Wire.unsubscribe(id: 9, topic))
        XCTAssertEqual(try XCTUnwrap(client.readFrame()).bytes, [0xB0, 0x02, 0x00, 0x09])
    }

    func test_MQTT_3_10_4_5_unsubAckEvenWhenNothingDeleted() throws {
        // Unsubscribing a filter that was never subscribed still gets an UNSUBACK.
        let client = try connect()
        try client.send(Wire.unsubscribe(id: 11, uniqueTopic("never")))
        XCTAssertEqual(try client.readPacket(), .unsuback(try packetID(11)))
    }

    func test_MQTT_3_10_4_6_multipleFiltersOneUnsubAck() throws {
        // UNSUBSCRIBE [a, b] gets exactly one UNSUBACK, and neither `a` nor `b` is delivered afterwards.
        let a = uniqueTopic("a")
        let b = uniqueTopic("b")
        let client = try connect()
        try subscribe(client, a, id: 1)
        try subscribe(client, b, id: 2)
        try client.send(Wire.unsubscribe(id: 12, a, b))
        XCTAssertEqual(try client.readPacket(), .unsuback(try packetID(12)))
        try client.expectNothing(for: 0.2)
        let publisher = try connect()
        try publish(publisher, a, "a")
        try publish(publisher, b, "b")
        try client.expectNothing(for: 0.3)
    }
}
