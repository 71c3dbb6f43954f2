// Black-box tests of PUBLISH and the QoS 0/1/2 flows (§2.3.1, §3.3 - §3.7, §4.3).

import Foundation
import MQTTCodec
import MQTTTestSupport
import XCTest

final class PublishQoSTests: ConformanceCase {
    func test_MQTT_2_3_1_1_packetIdentifiersNonZero() throws {
        // Broker deliveries at QoS 1/2 never use id 0; a SUBSCRIBE or QoS 1 PUBLISH with id 0 is closed.
        let topic = uniqueTopic()
        let subscriber = try connect()
        try subscribe(subscriber, topic, qos: 2)
        let publisher = try connect()
        for qos: UInt8 in [1, 2] {
            try publish(publisher, topic, "q\(qos)", qos: qos)
            // The decoder refuses id 0, so reading it proves the id is non-zero.
            let delivery = try subscriber.readPublish()
            XCTAssertNotEqual(delivery.id, 0)
            try acknowledge(subscriber, delivery)
        }
        let badSubscribe = try connect()
        try badSubscribe.send(Wire.subscribe(id: 0, topic, qos: 0))
        try badSubscribe.expectClosed()
        let badPublish = try connect()
        try badPublish.send(Wire.publish(topic, "id zero", qos: 1, id: 0))
        try badPublish.expectClosed()
        try subscriber.expectNothing(for: 0.3)
    }

    func test_MQTT_2_3_1_4_serverPacketIdentifiersDistinct() throws {
        // Concurrent QoS 1 deliveries use distinct ids, none reused while in flight; redelivery keeps the id.
        let id = uniqueID()
        let topic = uniqueTopic()
        let subscriber = try connect(id, clean: false)
        try subscribe(subscriber, topic, qos: 1)
        let publisher = try connect()
        for number in 1...10 {
            try publish(publisher, topic, "m\(number)", qos: 1, id: UInt16(number))
        }
        let firstBatch = try (1...10).map { _ in try subscriber.readPublish() }
        XCTAssertEqual(Set(firstBatch.map(\.id)).count, 10, "in-flight ids must be distinct")
        // Acknowledge half; the other half stays in flight and their ids must not be reused.
        for publish in firstBatch.prefix(5) {
            try subscriber.send(Wire.puback(publish.id))
        }
        let stillInFlight = Set(firstBatch.suffix(5).map(\.id))
        for number in 11...15 {
            try publish(publisher, topic, "m\(number)", qos: 1, id: UInt16(number))
        }
        let secondBatch = try (1...5).map { _ in try subscriber.readPublish() }
        for publish in secondBatch {
            XCTAssertFalse(stillInFlight.contains(publish.id), "id \(publish.id) reused while still in flight")
        }
        XCTAssertEqual(Set(secondBatch.map(\.id)).count, 5)
        subscriber.close()
        let back = try connect(id, clean: false, expectSessionPresent: true)
        let expected = Dictionary(
            uniqueKeysWithValues: (firstBatch.suffix(5) + secondBatch).map { ($0.payloadString, $0.id) })
        var redelivered: [String: UInt16] = [:]
        for _ in 0..<expected.count {
            let publish = try back.readPublish()
            XCTAssertTrue(publish.dup)
            redelivered[publish.payloadString] = publish.id
            try back.send(Wire.puback(publish.id))
        }
        XCTAssertEqual(redelivered, expected, "redeliveries keep their packet ids")
        try disconnectAndWait(back)
        _ = try connect(id, clean: true)
    }

    func test_MQTT_2_3_1_5_qos0HasNoPacketIdentifier() throws {
        // A QoS 0 delivery's payload starts right after the topic: remaining length = 2 + topic + payload.
        let topic = uniqueTopic()
        let subscriber = try connect()
        try subscribe(subscriber, topic, qos: 2)
        let publisher = try connect()
        try publish(publisher, topic, "abc", qos: 0)
        let frame = try XCTUnwrap(subscriber.readFrame())
        XCTAssertEqual(frame.first, 0x30)
        XCTAssertEqual(Array(frame.body), Wire.string(topic) + Array("abc".utf8))
    }

    func test_MQTT_2_3_1_6_acknowledgementsEchoIdentifier() throws {
        // QoS 1 id 0x1234 -> PUBACK 0x1234; QoS 2 id 7 -> PUBREC 7; the broker's PUBREL reuses its delivery's id.
        let topic = uniqueTopic()
        let subscriber = try connect()
        try subscribe(subscriber, topic, qos: 2)
        let publisher = try connect()
        try publisher.send(Wire.publish(topic, "one", qos: 1, id: 0x1234))
        XCTAssertEqual(try XCTUnwrap(publisher.readFrame()).bytes, [0x40, 0x02, 0x12, 0x34])
        try receive(subscriber, topic: topic, payload: "one", qos: 1)
        try publisher.send(Wire.publish(topic, "two", qos: 2, id: 7))
        XCTAssertEqual(try XCTUnwrap(publisher.readFrame()).bytes, [0x50, 0x02, 0x00, 0x07])
        try publisher.send(Wire.pubrel(7))
        XCTAssertEqual(try XCTUnwrap(publisher.readFrame()).bytes, [0x70, 0x02, 0x00, 0x07])
        let delivery = try subscriber.readPublish()
        try subscriber.send(Wire.pubrec(delivery.id))
        XCTAssertEqual(try XCTUnwrap(subscriber.readFrame()).bytes, [0x62, 0x02] + Wire.u16(delivery.id))
        try subscriber.send(Wire.pubcomp(delivery.id))
        try subscriber.sync()
    }

    func test_MQTT_3_3_1_2_qos0DeliveryHasDup0() throws {
        // QoS 1 DUP 1 reaches a QoS 0 subscriber with DUP 0; a client's QoS 0 PUBLISH with DUP 1 is closed.
        let topic = uniqueTopic()
        let subscriber = try connect()
        try subscribe(subscriber, topic, qos: 0)
        let publisher = try connect()
        try publisher.send(Wire.publish(topic, "dup", qos: 1, dup: true, id: 3))
        XCTAssertEqual(try publisher.readPacket(), .puback(try packetID(3)))
        let frame = try XCTUnwrap(subscriber.readFrame())
        XCTAssertEqual(frame.first, 0x30, "QoS 0 delivery with DUP 0")
        let strict = try connect()
        try strict.send(Wire.publish(topic, "qos0 dup", qos: 0, dup: true))
        XCTAssertNoThrow(try strict.expectClosed(), "QoS 0 PUBLISH with DUP 1 must close [MQTT-3.3.1-2]")
        XCTAssertNoThrow(try subscriber.expectNothing(for: 0.3), "the QoS 0 PUBLISH with DUP 1 must not be forwarded")
    }

    func test_MQTT_3_3_1_3_incomingDupNotCopied() throws {
        // A publisher's QoS 1 PUBLISH with DUP 1 reaches a QoS 1 subscriber first with DUP 0.
        let topic = uniqueTopic()
        let subscriber = try connect()
        try subscribe(subscriber, topic, qos: 1)
        let publisher = try connect()
        try publisher.send(Wire.publish(topic, "dup", qos: 1, dup: true, id: 9))
        XCTAssertEqual(try publisher.readPacket(), .puback(try packetID(9)))
        let delivery = try subscriber.readPublish()
        XCTAssertFalse(delivery.dup)
        try acknowledge(subscriber, delivery)
    }

    func test_MQTT_3_3_1_4_qos3Closes() throws {
        // A PUBLISH with both QoS bits set (first byte 0x36) is closed and nothing is forwarded.
        let topic = uniqueTopic()
        let subscriber = try connect()
        try subscribe(subscriber, topic, qos: 2)
        let publisher = try connect()
        try publisher.send(Wire.frame(0x36, Wire.string(topic) + Wire.u16(1) + Array("qos3".utf8)))
        try publisher.expectClosed()
        try subscriber.expectNothing(for: 0.3)
    }

    func test_MQTT_3_3_4_1_receiverRepliesPerQoS() throws {
        // QoS 0 gets no reply (the PINGRESP is the first packet back), QoS 1 a PUBACK, QoS 2 a PUBREC.
        let topic = uniqueTopic()
        let client = try connect()
        try client.send(Wire.publish(topic, "zero", qos: 0), Wire.pingreq)
        XCTAssertEqual(try client.readPacket(), .pingresp)
        try client.send(Wire.publish(topic, "one", qos: 1, id: 1))
        XCTAssertEqual(try client.readPacket(), .puback(try packetID(1)))
        try client.send(Wire.publish(topic, "two", qos: 2, id: 2))
        XCTAssertEqual(try client.readPacket(), .pubrec(try packetID(2)))
        try client.send(Wire.pubrel(2))
        XCTAssertEqual(try client.readPacket(), .pubcomp(try packetID(2)))
    }

    func test_MQTT_3_3_5_1_overlappingSubscriptionsHighestQoS() throws {
        // Subscriptions `a/#`@0 and `a/b`@2: a QoS 2 publish to `a/b` arrives at least once at QoS 2.
        let root = uniqueTopic("a")
        let subscriber = try connect()
        try subscribe(subscriber, root + "/#", qos: 0, id: 1)
        try subscribe(subscriber, root + "/b", qos: 2, id: 2)
        let publisher = try connect()
        try publish(publisher, root + "/b", "overlap", qos: 2)
        var copies: [Publish] = []
        for _ in 0..<2 {
            guard let frame = subscriber.readFrame(timeout: copies.isEmpty ? 5 : 0.5) else { break }
            let publish = try XCTUnwrap(try frame.decode().publish)
            try acknowledge(subscriber, publish)
            copies.append(publish)
        }
        XCTAssertFalse(copies.isEmpty, "no delivery")
        XCTAssertTrue(copies.contains { $0.qos == .exactlyOnce }, "no copy at QoS 2: \(copies)")
        XCTAssertTrue(copies.allSatisfy { $0.payloadString == "overlap" })
    }

    func test_MQTT_3_6_1_1_pubrelReservedFlagsClose() throws {
        // A PUBREL sent with flags 0000 (first byte 0x60) is malformed and closes the connection.
        let client = try connect()
        try client.send(Wire.publish(uniqueTopic(), "two", qos: 2, id: 4))
        XCTAssertEqual(try client.readPacket(), .pubrec(try packetID(4)))
        try client.send([0x60, 0x02, 0x00, 0x04])
        try client.expectClosed()
    }

    func test_MQTT_4_3_1_1_qos0DeliveryShape() throws {
        // QoS 0 deliveries carry QoS 0, DUP 0 and no packet id, whatever the publisher's QoS.
        let topic = uniqueTopic()
        let subscriber = try connect()
        try subscribe(subscriber, topic, qos: 0)
        let publisher = try connect()
        for qos: UInt8 in [0, 1, 2] {
            try publish(publisher, topic, "x", qos: qos)
            let frame = try XCTUnwrap(subscriber.readFrame(), "publish at QoS \(qos)")
            XCTAssertEqual(frame.first, 0x30, "publish at QoS \(qos)")
            XCTAssertEqual(Array(frame.body), Wire.string(topic) + Array("x".utf8))
        }
    }

    func test_MQTT_4_3_2_1_qos1SenderFlow() throws {
        // A QoS 1 delivery has a fresh id and DUP 0; unacknowledged, it is resent after a clean-0 reconnect.
        let id = uniqueID()
        let topic = uniqueTopic()
        let subscriber = try connect(id, clean: false)
        try subscribe(subscriber, topic, qos: 1)
        let publisher = try connect()
        try publish(publisher, topic, "first", qos: 1, id: 1)
        try publish(publisher, topic, "second", qos: 1, id: 2)
        let first = try subscriber.readPublish()
        let second = try subscriber.readPublish()
        XCTAssertFalse(first.dup)
        XCTAssertFalse(second.dup)
        XCTAssertNotEqual(first.id, second.id)
        try subscriber.send(Wire.puback(first.id))
        try subscriber.sync()
        subscriber.close()
        let back = try connect(id, clean: false, expectSessionPresent: true)
        let resent = try back.readPublish()
        XCTAssertEqual(resent.payloadString, "second")
        XCTAssertEqual(resent.id, second.id)
        XCTAssertTrue(resent.dup)
        try acknowledge(back, resent)
        try back.expectNothing(for: 0.3)
    }

    func test_MQTT_4_3_2_2_qos1ReceiverFlow() throws {
        // QoS 1 id 5 gets PUBACK 5; id 5 again (DUP 1) after it is a new message, forwarded and acknowledged again.
        let topic = uniqueTopic()
        let subscriber = try connect()
        try subscribe(subscriber, topic, qos: 1)
        let publisher = try connect()
        try publisher.send(Wire.publish(topic, "first", qos: 1, id: 5))
        XCTAssertEqual(try publisher.readPacket(), .puback(try packetID(5)))
        try receive(subscriber, topic: topic, payload: "first", qos: 1)
        try publisher.send(Wire.publish(topic, "again", qos: 1, dup: true, id: 5))
        XCTAssertEqual(try publisher.readPacket(), .puback(try packetID(5)))
        try receive(subscriber, topic: topic, payload: "again", qos: 1)
    }

    func test_MQTT_4_3_3_1_qos2SenderFlow() throws {
        // QoS 2 delivery: PUBREC gets PUBREL (same id); a clean-0 reconnect before PUBCOMP resends PUBREL, not PUBLISH.
        let id = uniqueID()
        let topic = uniqueTopic()
        let subscriber = try connect(id, clean: false)
        try subscribe(subscriber, topic, qos: 2)
        let publisher = try connect()
        try publish(publisher, topic, "exactly once", qos: 2)
        let delivery = try subscriber.readPublish()
        XCTAssertEqual(delivery.qos, .exactlyOnce)
        XCTAssertFalse(delivery.dup)
        try subscriber.send(Wire.pubrec(delivery.id))
        XCTAssertEqual(try subscriber.readPacket(), .pubrel(try packetID(delivery.id)))
        subscriber.close()
        let back = try connect(id, clean: false, expectSessionPresent: true)
        XCTAssertEqual(try back.readPacket(), .pubrel(try packetID(delivery.id)), "PUBREL resent, not PUBLISH")
        try back.send(Wire.pubcomp(delivery.id))
        try back.expectNothing(for: 0.3)
    }

    func test_MQTT_4_3_3_2_qos2ReceiverFlow() throws {
        // QoS 2 id 3 twice before PUBREL: two PUBRECs, one delivery; PUBREL gets PUBCOMP; id 3 then is a new message.
        let topic = uniqueTopic()
        let subscriber = try connect()
        try subscribe(subscriber, topic, qos: 2)
        let publisher = try connect()
        try publisher.send(Wire.publish(topic, "once", qos: 2, id: 3))
        XCTAssertEqual(try publisher.readPacket(), .pubrec(try packetID(3)))
        try publisher.send(Wire.publish(topic, "once", qos: 2, dup: true, id: 3))
        XCTAssertEqual(try publisher.readPacket(), .pubrec(try packetID(3)))
        try publisher.send(Wire.pubrel(3))
        XCTAssertEqual(try publisher.readPacket(), .pubcomp(try packetID(3)))
        try receive(subscriber, topic: topic, payload: "once", qos: 2)
        try subscriber.expectNothing(for: 0.3)
        try publish(publisher, topic, "new", qos: 2, id: 3)
        try receive(subscriber, topic: topic, payload: "new", qos: 2)
    }
}
