// Black-box tests of SUBSCRIBE and SUBACK (§2.3.1, §3.3.2, §3.8, §3.9).

import Foundation
import MQTTCodec
import MQTTTestSupport
import XCTest

final class SubscribeTests: ConformanceCase {
    func test_MQTT_2_3_1_7_subAckAndUnsubAckEchoIdentifier() throws {
        // SUBSCRIBE id 42 gets SUBACK id 42; UNSUBSCRIBE id 0xFFFF gets UNSUBACK id 0xFFFF.
        let client = try connect()
        let topic = uniqueTopic()
        try client.send(Wire.subscribe(id: 42, topic, qos: 1))
        XCTAssertEqual(try XCTUnwrap(client.readFrame()).bytes, [0x90, 0x03, 0x00, 42, 0x01])
        try client.send(Wire.unsubscribe(id: 0xFFFF, topic))
        XCTAssertEqual(try XCTUnwrap(client.readFrame()).bytes, [0xB0, 0x02, 0xFF, 0xFF])
    }

    func test_MQTT_3_3_2_3_deliveredTopicsMatchFilter() throws {
        // A subscriber on `a/+` only receives topics of two levels below the prefix that start with `a`.
        let root = uniqueTopic("m")
        let filter = root + "/a/+"
        let subscriber = try connect()
        try subscribe(subscriber, filter)
        let publisher = try connect()
        let topics = ["/a/x", "/a/x/y", "/b/x", "/a", "/a/", "/ab/x", "/a/z"].map { root + $0 }
        for topic in topics {
            try publish(publisher, topic, topic)
        }
        try publish(publisher, root + "/end", "end")
        let matcher = try XCTUnwrap(TopicFilter(filter))
        var received: [String] = []
        for _ in 0..<topics.count {
            guard let frame = subscriber.readFrame(timeout: 1) else { break }
            let publish = try XCTUnwrap(try frame.decode().publish)
            XCTAssertTrue(matcher.matches(publish.topic), "\(publish.topicString) does not match \(filter)")
            received.append(publish.topicString)
        }
        XCTAssertEqual(received, [root + "/a/x", root + "/a/", root + "/a/z"])
    }

    func test_MQTT_3_8_1_1_subscribeReservedFlagsClose() throws {
        // A SUBSCRIBE sent with flags 0000 (first byte 0x80) closes the connection without a SUBACK.
        let client = try connect()
        try client.send(Wire.subscribe(id: 1, [(Array(uniqueTopic().utf8), 0)], first: 0x80))
        try client.expectClosed()
    }

    func test_MQTT_3_8_3_2_wildcardsGranted() throws {
        // The broker supports wildcards, so filters with `+` and `#` are granted, not refused.
        let root = uniqueTopic("w")
        let client = try connect()
        try client.send(Wire.subscribe(id: 3, [(Array((root + "/#").utf8), 1), (Array((root + "/+/x").utf8), 2)]))
        XCTAssertEqual(
            try client.readSubAck(),
            SubAck(packetID: try packetID(3), returnCodes: [.granted(.atLeastOnce), .granted(.exactlyOnce)]))
    }

    func test_MQTT_3_8_3_4_badRequestedQoSCloses() throws {
        // Requested-QoS bytes 0x03, 0x04 and 0x81 make the SUBSCRIBE malformed: closed without a SUBACK.
        for qosByte: UInt8 in [0x03, 0x04, 0x81] {
            let client = try connect()
            try client.send(Wire.subscribe(id: 1, [(Array(uniqueTopic().utf8), qosByte)]))
            XCTAssertNoThrow(try client.expectClosed(), "requested QoS byte \(qosByte)")
        }
    }

    func test_MQTT_3_8_4_1_everySubscribeGetsSubAck() throws {
        // A SUBSCRIBE gets a SUBACK, also one whose filters the ACL allows none of.
        let client = try connect()
        try subscribe(client, uniqueTopic(), qos: 0)
        let acl = try writeFile("acl", ["topic readwrite allowed/#"])
        let limited = try startBroker(config: ["acl_file \(acl)"])
        let refused = try connect(to: limited)
        try refused.send(Wire.subscribe(id: 6, [(Array("denied/a".utf8), 0), (Array("denied/b".utf8), 1)]))
        // mosquitto's acl_file does not refuse subscriptions, it filters deliveries, so codes may be grants or 0x80.
        let suback = try refused.readSubAck()
        XCTAssertEqual(suback.packetID.rawValue, 6)
        XCTAssertEqual(suback.returnCodes.count, 2)
        try subscribe(refused, "allowed/x", qos: 1, id: 7)
    }

    func test_MQTT_3_8_4_2_subAckCarriesSubscribeIdentifier() throws {
        // SUBSCRIBE ids 1, 0x7FFF and 0xFFFF are echoed in their SUBACKs.
        let client = try connect()
        for id: UInt16 in [1, 0x7FFF, 0xFFFF] {
            try client.send(Wire.subscribe(id: id, uniqueTopic(), qos: 0))
            XCTAssertEqual(try XCTUnwrap(client.readFrame()).bytes, [0x90, 0x03] + Wire.u16(id) + [0x00])
        }
    }

    func test_MQTT_3_8_4_3_resubscribeReplaces() throws {
        // Re-subscribing `t` at QoS 1 over QoS 0: one copy per publish at QoS 1, retained message sent again.
        let topic = uniqueTopic()
        let publisher = try connect()
        try publish(publisher, topic, "retained", qos: 1, retain: true)
        let subscriber = try connect()
        try subscribe(subscriber, topic, qos: 0, id: 1)
        let firstReplay = try receive(subscriber, topic: topic, payload: "retained", qos: 0)
        XCTAssertTrue(firstReplay.retain)
        try subscribe(subscriber, topic, qos: 1, id: 2)
        let secondReplay = try receive(subscriber, topic: topic, payload: "retained", qos: 1)
        XCTAssertTrue(secondReplay.retain)
        try publish(publisher, topic, "live", qos: 1)
        try receive(subscriber, topic: topic, payload: "live", qos: 1)
        try subscriber.expectNothing(for: 0.3)
        try publish(publisher, topic, "", retain: true)
    }

    func test_MQTT_3_8_4_4_multipleFiltersOneSubAck() throws {
        // SUBSCRIBE [a@0, b@1, a@2] gets one SUBACK with 3 codes, and `a` ends up at QoS 2.
        let a = uniqueTopic("a")
        let b = uniqueTopic("b")
        let client = try connect()
        try client.send(Wire.subscribe(id: 8, [(Array(a.utf8), 0), (Array(b.utf8), 1), (Array(a.utf8), 2)]))
        XCTAssertEqual(
            try client.readSubAck(),
            SubAck(
                packetID: try packetID(8),
                returnCodes: [.granted(.atMostOnce), .granted(.atLeastOnce), .granted(.exactlyOnce)]))
        try client.expectNothing(for: 0.2)
        let publisher = try connect()
        try publish(publisher, a, "to a", qos: 2)
        try receive(client, topic: a, payload: "to a", qos: 2)
        try publish(publisher, b, "to b", qos: 2)
        try receive(client, topic: b, payload: "to b", qos: 1)
        try client.expectNothing(for: 0.3)
    }

    func test_MQTT_3_8_4_6_deliveredQoSIsMinimum() throws {
        // With QoS 1 granted, a QoS 2 publish is delivered at QoS 1 and a QoS 0 publish at QoS 0.
        let topic = uniqueTopic()
        let subscriber = try connect()
        try subscribe(subscriber, topic, qos: 1)
        let publisher = try connect()
        try publish(publisher, topic, "two", qos: 2)
        try receive(subscriber, topic: topic, payload: "two", qos: 1)
        try publish(publisher, topic, "zero", qos: 0)
        try receive(subscriber, topic: topic, payload: "zero", qos: 0)
    }

    func test_MQTT_3_9_3_1_returnCodesInFilterOrder() throws {
        // SUBSCRIBE [x@2, y@0, z@1] gets [2, 0, 1]; under `max_qos 1` it gets [1, 0, 1].
        let requests: [(filter: [UInt8], qos: UInt8)] = [
            (Array(uniqueTopic("x").utf8), 2), (Array(uniqueTopic("y").utf8), 0), (Array(uniqueTopic("z").utf8), 1),
        ]
        let client = try connect()
        try client.send(Wire.subscribe(id: 2, requests))
        XCTAssertEqual(try XCTUnwrap(client.readFrame()).bytes, [0x90, 0x05, 0x00, 0x02, 2, 0, 1])
        let capped = try startBroker(config: ["max_qos 1"])
        let cappedClient = try connect(to: capped)
        try cappedClient.send(Wire.subscribe(id: 2, requests))
        XCTAssertEqual(try XCTUnwrap(cappedClient.readFrame()).bytes, [0x90, 0x05, 0x00, 0x02, 1, 0, 1])
    }

    func test_MQTT_3_9_3_2_subAckCodesOnlyDefinedValues() throws {
        // A spread of valid SUBSCRIBEs (1 to 8 filters, every QoS, wildcards) only ever gets codes 0, 1, 2, 0x80.
        let client = try connect()
        var generator = SystemRandomNumberGenerator()
        let shapes = ["", "/+", "/#", "/a/+/b", "/+/+", "/$x", "/a b", "/\u{00e9}"]
        for round in 1...40 {
            let count = Int.random(in: 1...8, using: &generator)
            let requests = (0..<count).map { _ -> (filter: [UInt8], qos: UInt8) in
                let shape = shapes[Int.random(in: 0..<shapes.count, using: &generator)]
                return (Array((uniqueTopic("f") + shape).utf8), UInt8.random(in: 0...2, using: &generator))
            }
            try client.send(Wire.subscribe(id: UInt16(round), requests))
            let frame = try XCTUnwrap(client.readFrame(), "round \(round)")
            XCTAssertEqual(frame.first, 0x90)
            let codes = Array(frame.body.dropFirst(2))
            XCTAssertEqual(codes.count, count)
            for (code, request) in zip(codes, requests) {
                XCTAssertTrue([0, 1, 2, 0x80].contains(code), "code \(code)")
                if code != 0x80 { XCTAssertLessThanOrEqual(code, request.qos) }
            }
        }
    }
}

extension ConformanceCase {
    /// Writes `lines` to a new file in a scratch directory and returns its path (ACL and password files).
    func writeFile(_ name: String, _ lines: [String]) throws -> String {
        let directory = try BrokerProcess.makeScratchDirectory()
        scratchDirectories.append(directory)
        let url = directory.appendingPathComponent(name)
        try (lines.joined(separator: "\n") + "\n").write(to: url, atomically: true, encoding: .utf8)
        return url.path
    }
}
