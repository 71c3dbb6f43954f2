// Black-box tests of message ordering (§4.6): redelivery, acknowledgement and per-topic forwarding order.

import Foundation
import MQTTCodec
import MQTTTestSupport
import Synchronization
import XCTest

final class OrderingTests: ConformanceCase {
    func test_MQTT_4_6_0_1_redeliveryInOriginalOrder() throws {
        // Five unacknowledged QoS 1 deliveries come again after a clean-0 reconnect in their original order.
        let id = uniqueID()
        let topic = uniqueTopic()
        let subscriber = try connect(id, clean: false)
        try subscribe(subscriber, topic, qos: 1)
        let publisher = try connect()
        for number in 1...5 {
            try publish(publisher, topic, "m\(number)", qos: 1, id: UInt16(number))
        }
        let first = try (1...5).map { _ in try subscriber.readPublish() }
        XCTAssertEqual(first.map(\.payloadString), ["m1", "m2", "m3", "m4", "m5"])
        subscriber.close()
        let back = try connect(id, clean: false, expectSessionPresent: true)
        let again = try (1...5).map { _ in try back.readPublish() }
        XCTAssertEqual(again.map(\.payloadString), ["m1", "m2", "m3", "m4", "m5"])
        XCTAssertEqual(again.map(\.id), first.map(\.id))
        for publish in again { try back.send(Wire.puback(publish.id)) }
        try disconnectAndWait(back)
        _ = try connect(id, clean: true)
    }

    func test_MQTT_4_6_0_2_pubacksInArrivalOrder() throws {
        // 100 pipelined QoS 1 PUBLISHes are acknowledged with PUBACKs in the same order.
        let client = try connect()
        let topic = uniqueTopic()
        let ids = (1...100).map { UInt16($0 * 7 % 101 + 1) }
        try client.send(ids.flatMap { Wire.publish(topic, "m", qos: 1, id: $0) })
        for id in ids {
            XCTAssertEqual(try client.readPacket(), .puback(try packetID(id)))
        }
    }

    func test_MQTT_4_6_0_3_pubrecsInArrivalOrder() throws {
        // 100 pipelined QoS 2 PUBLISHes are answered with PUBRECs in the same order.
        let client = try connect()
        let topic = uniqueTopic()
        let ids = (1...100).map { UInt16($0 * 13 % 101 + 1) }
        try client.send(ids.flatMap { Wire.publish(topic, "m", qos: 2, id: $0) })
        for id in ids {
            XCTAssertEqual(try client.readPacket(), .pubrec(try packetID(id)))
        }
        try client.send(ids.flatMap { Wire.pubrel($0) })
        for id in ids {
            XCTAssertEqual(try client.readPacket(), .pubcomp(try packetID(id)))
        }
    }

    func test_MQTT_4_6_0_4_pubrelsInPubrecOrder() throws {
        // A subscriber that sends PUBRECs for three QoS 2 deliveries in order 3, 1, 2 gets PUBRELs 3, 1, 2.
        let topic = uniqueTopic()
        let subscriber = try connect()
        try subscribe(subscriber, topic, qos: 2)
        let publisher = try connect()
        for number in 1...3 {
            try publish(publisher, topic, "m\(number)", qos: 2, id: UInt16(number))
        }
        let deliveries = try (1...3).map { _ in try subscriber.readPublish() }
        XCTAssertEqual(deliveries.map(\.payloadString), ["m1", "m2", "m3"])
        let order = [deliveries[2].id, deliveries[0].id, deliveries[1].id]
        try subscriber.send(order.flatMap { Wire.pubrec($0) })
        for id in order {
            XCTAssertEqual(try subscriber.readPacket(), .pubrel(try packetID(id)))
        }
        try subscriber.send(order.flatMap { Wire.pubcomp($0) })
        try subscriber.sync()
    }

    func test_MQTT_4_6_0_5_defaultTopicsAreOrdered() throws {
        // With the default configuration, 1000 QoS 1 messages on one topic arrive in publish order.
        let topic = uniqueTopic()
        let subscriber = try connect()
        try subscribe(subscriber, topic, qos: 1)
        let publisher = try connect()
        let count = 1000
        try publisher.send((1...count).flatMap { Wire.publish(topic, "\($0)", qos: 1, id: UInt16($0)) })
        var received: [Int] = []
        for _ in 0..<count {
            let publish = try subscriber.readPublish()
            received.append(Int(publish.payloadString) ?? -1)
            try subscriber.send(Wire.puback(publish.id))
        }
        XCTAssertEqual(received, Array(1...count))
        for _ in 0..<count { _ = try publisher.readPacket() }
    }

    func test_MQTT_4_6_0_6_perPublisherOrderForEverySubscriber() throws {
        // One publisher's 1..N on one topic at QoS 0/1/2 reaches each of three subscribers in order per QoS.
        let topic = uniqueTopic()
        let subscribers = try (0..<3).map { _ in try connect() }
        for subscriber in subscribers { try subscribe(subscriber, topic, qos: 2) }
        let publisher = try connect()
        let perQoS = 100
        var stream: [UInt8] = []
        var packetID: UInt16 = 0
        for number in 1...perQoS {
            for qos: UInt8 in [0, 1, 2] {
                packetID += 1
                stream += Wire.publish(topic, "\(qos):\(number)", qos: qos, id: packetID)
            }
        }
        // The subscribers read and acknowledge on their own threads while the publisher sends, as real
        // clients do, so every in-flight window keeps moving.
        let results = Mutex<[Int: Result<[Publish], Error>]>([:])
        let group = DispatchGroup()
        for (index, subscriber) in subscribers.enumerated() {
            DispatchQueue.global().async(group: group) {
                // QoS 0 messages may be dropped (mosquitto drops them while the in-flight window is full), so
                // collection ends once every QoS 1 and 2 message is in, plus a short wait for late QoS 0 ones.
                let result = Result {
                    var publishes = try subscriber.collectPublishes(limit: perQoS * 3) { got in
                        got.filter { $0.qos != .atMostOnce }.count >= perQoS * 2
                    }
                    publishes += try subscriber.drainPublishes(window: 0.2)
                    return publishes
                }
                results.withLock { $0[index] = result }
            }
        }
        try publisher.send(stream)
        // Complete the publisher's QoS 2 flows as their PUBRECs come; QoS 2 messages are released on PUBREL.
        var acks = 0
        for _ in 0..<(perQoS * 3) where acks < perQoS * 2 {
            switch try publisher.readPacket() {
            case .puback:
                acks += 1
            case .pubrec(let id):
                try publisher.send(Wire.pubrel(id.rawValue))
            case .pubcomp:
                acks += 1
            case let other:
                XCTFail("publisher got \(other)")
            }
        }
        XCTAssertEqual(group.wait(timeout: .now() + 30), .success, "subscribers did not finish")
        for index in subscribers.indices {
            let publishes = try XCTUnwrap(results.withLock { $0[index] }, "subscriber \(index)").get()
            var byQoS: [UInt8: [Int]] = [0: [], 1: [], 2: []]
            for publish in publishes {
                let parts = publish.payloadString.split(separator: ":")
                guard parts.count == 2, let qos = UInt8(parts[0]), let number = Int(parts[1]) else {
                    XCTFail("payload \(publish.payloadString)")
                    continue
                }
                byQoS[qos, default: []].append(number)
            }
            for qos: UInt8 in [1, 2] {
                XCTAssertEqual(byQoS[qos], Array(1...perQoS), "subscriber \(index), QoS \(qos)")
            }
            let qos0 = byQoS[0] ?? []
            XCTAssertEqual(qos0, qos0.sorted(), "subscriber \(index), QoS 0 out of order")
            XCTAssertEqual(Set(qos0).count, qos0.count, "subscriber \(index), QoS 0 duplicated")
        }
    }
}
