// Black-box tests of fixed-header rules and protocol-violation handling (§2.2, §4.8).

import Foundation
import MQTTCodec
import MQTTTestSupport
import XCTest

final class MalformedTests: ConformanceCase {
    /// Sends `bytes` after a good CONNECT and checks the broker closes with nothing sent back, while a
    /// bystander connection keeps working.
    private func expectClosedAfter(
        _ label: String, _ bytes: [UInt8], bystander: RawClient, file: StaticString = #filePath, line: UInt = #line
    ) throws {
        let client = try connect()
        try client.send(bytes)
        XCTAssertNoThrow(try client.expectClosed(), label, file: file, line: line)
        XCTAssertNoThrow(try bystander.sync(), "bystander after \(label)", file: file, line: line)
    }

    func test_MQTT_2_2_2_1_emittedFlagsMatchTable() throws {
        // Every packet the broker sends has its Table 2.2 first byte (0x20, 0x40, 0x50, 0x62, 0x70, 0x90, 0xB0, 0xD0).
        let topic = uniqueTopic()
        let client = try open()
        try client.send(Wire.connect(uniqueID()))
        var firstBytes: [UInt8] = []
        func next() throws -> Frame {
            let frame = try XCTUnwrap(client.readFrame(), "after \(firstBytes)")
            firstBytes.append(frame.first)
            return frame
        }
        XCTAssertEqual(try next().first, 0x20)
        try client.send(Wire.subscribe(id: 1, topic, qos: 2))
        XCTAssertEqual(try next().first, 0x90)
        // Our own subscription delivers the messages back, so answer every packet as the flows need until PUBACK,
        // PUBREC, PUBREL and PUBCOMP have all been seen; the order between the flows is the broker's choice.
        try client.send(Wire.publish(topic, "one", qos: 1, id: 2), Wire.publish(topic, "two", qos: 2, id: 3))
        let expectedFirst: [UInt8: UInt8] = [3: 0x30, 4: 0x40, 5: 0x50, 6: 0x62, 7: 0x70]
        var seenTypes: Set<UInt8> = []
        var deliveries = 0
        for _ in 0..<12 where !(seenTypes.isSuperset(of: [4, 5, 6, 7]) && deliveries == 2) {
            let frame = try next()
            seenTypes.insert(frame.typeCode)
            if let wanted = expectedFirst[frame.typeCode], frame.typeCode != 3 {
                XCTAssertEqual(frame.first, wanted, "packet type \(frame.typeCode)")
            }
            switch try frame.decode() {
            case .publish(let publish):
                deliveries += 1
                try client.send(publish.qos == .atLeastOnce ? Wire.puback(publish.id) : Wire.pubrec(publish.id))
            case .pubrec(let id):
                try client.send(Wire.pubrel(id.rawValue))
            case .pubrel(let id):
                try client.send(Wire.pubcomp(id.rawValue))
            case .puback, .pubcomp:
                break
            case let other:
                XCTFail("unexpected \(other)")
            }
        }
        XCTAssertEqual(seenTypes, [3, 4, 5, 6, 7])
        try client.send(Wire.unsubscribe(id: 4, topic))
        XCTAssertEqual(try next().first, 0xB0)
        try client.send(Wire.pingreq)
        XCTAssertEqual(try next().first, 0xD0)
    }

    func test_MQTT_2_2_2_2_wrongReservedFlagsClose() throws {
        // PUBACK as 0x41, PUBCOMP as 0x72, PINGREQ as 0xC1 and CONNECT as 0x11 each close the connection.
        let bystander = try connect()
        let topic = uniqueTopic()
        try subscribe(bystander, topic, qos: 1)
        let publisher = try connect()
        // A delivery to acknowledge with a bad PUBACK, so the packet is otherwise meaningful.
        let receiver = try connect()
        try subscribe(receiver, topic, qos: 2)
        try publish(publisher, topic, "x", qos: 1)
        try receive(bystander, topic: topic, payload: "x", qos: 1)
        let delivery = try receiver.readPublish()
        try receiver.send([0x41, 0x02] + Wire.u16(delivery.id))
        XCTAssertNoThrow(try receiver.expectClosed(), "PUBACK 0x41")
        try expectClosedAfter("PUBCOMP 0x72", [0x72, 0x02, 0x00, 0x01], bystander: bystander)
        try expectClosedAfter("PINGREQ 0xC1", [0xC1, 0x00], bystander: bystander)
        let connect = try open(name: "CONNECT 0x11")
        var bytes = Wire.connect(uniqueID())
        bytes[0] = 0x11
        try connect.send(bytes)
        XCTAssertNoThrow(try connect.expectClosed(), "CONNECT 0x11")
    }

    func test_MQTT_4_8_0_1_protocolViolationsCloseOnlyThatConnection() throws {
        // Packet types 0 and 15, a 3-byte PUBACK and a client CONNACK close that connection only.
        let bystander = try connect()
        try expectClosedAfter("packet type 0", [0x00, 0x00], bystander: bystander)
        try expectClosedAfter("packet type 15", [0xF0, 0x00], bystander: bystander)
        try expectClosedAfter("PUBACK length 3", [0x40, 0x03, 0x00, 0x01, 0x00], bystander: bystander)
        try expectClosedAfter("CONNACK from a client", [0x20, 0x02, 0x00, 0x00], bystander: bystander)
    }

    func test_MQTT_4_8_0_2_transientErrorDropsOnlyThatClient() throws {
        // A client breaking a per-client limit (`max_packet_size`) is dropped while others keep exchanging messages.
        let limited = try startBroker(config: ["max_packet_size 1000"])
        let topic = uniqueTopic()
        let subscriber = try connect(to: limited)
        try subscribe(subscriber, topic, qos: 1)
        let publisher = try connect(to: limited)
        try publish(publisher, topic, "before", qos: 1)
        try receive(subscriber, topic: topic, payload: "before", qos: 1)
        let offender = try connect(to: limited)
        try offender.send(Wire.publish(topic: Array(topic.utf8), payload: Array(repeating: 0x41, count: 2000), qos: 1))
        try offender.expectClosed()
        try publish(publisher, topic, "after", qos: 1)
        try receive(subscriber, topic: topic, payload: "after", qos: 1)
        try subscriber.expectNothing(for: 0.3)
    }

    func test_untagged_2_2_3_fiveByteRemainingLengthCloses() throws {
        // A Remaining Length with a fifth continuation byte is malformed and closes the connection.
        let bystander = try connect()
        try expectClosedAfter("5-byte remaining length", [0x30, 0xFF, 0xFF, 0xFF, 0xFF, 0x01], bystander: bystander)
        let fresh = try open(name: "before CONNECT")
        try fresh.send([0x10, 0x80, 0x80, 0x80, 0x80, 0x01])
        try fresh.expectClosed()
    }
}
