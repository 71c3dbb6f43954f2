// Black-box tests of topic names, topic filters and their UTF-8 rules (§1.5.3, §3.3.2, §4.7).

import Foundation
import MQTTCodec
import MQTTTestSupport
import XCTest

final class TopicTests: ConformanceCase {
    /// Sends `bytes` on a fresh connected client and checks that the broker closes it with nothing sent back.
    private func expectRefused(_ label: String, _ bytes: [UInt8], file: StaticString = #filePath, line: UInt = #line)
        throws
    {
        let client = try connect()
        try client.send(bytes)
        XCTAssertNoThrow(try client.expectClosed(), label, file: file, line: line)
    }

    /// Sends a CONNECT on a fresh socket and checks that it is closed without any CONNACK.
    private func expectConnectRefused(
        _ label: String, _ bytes: [UInt8], file: StaticString = #filePath, line: UInt = #line
    ) throws {
        let client = try open(name: label)
        try client.send(bytes)
        XCTAssertNoThrow(try client.expectClosed(), label, file: file, line: line)
    }

    /// A filter a client may subscribe to: either refused with 0x80 or with a close, never granted.
    private func expectFilterRefused(_ filter: [UInt8], file: StaticString = #filePath, line: UInt = #line) throws {
        let client = try connect()
        try client.send(Wire.subscribe(id: 1, [(filter, 0)]))
        let label = String(decoding: filter, as: UTF8.self)
        if let frame = client.readFrame() {
            XCTAssertEqual(frame.bytes, [0x90, 0x03, 0x00, 0x01, 0x80], "filter \(label)", file: file, line: line)
        } else {
            XCTAssertTrue(client.isClosed, "filter \(label): neither SUBACK 0x80 nor a close", file: file, line: line)
        }
    }

    func test_MQTT_1_5_3_1_illFormedUTF8Closes() throws {
        // Surrogate or overlong UTF-8 in topic, filter, client id, will topic or user name closes; nothing forwarded.
        let root = uniqueTopic("u")
        let watcher = try connect()
        try subscribe(watcher, root + "/#")
        for (label, bad) in [("surrogate", [0xED, 0xA0, 0x80] as [UInt8]), ("overlong", [0xC0, 0xAF])] {
            let topic = Array((root + "/").utf8) + bad
            try expectRefused("PUBLISH \(label)", Wire.publish(topic: topic, payload: [1]))
            try expectRefused("SUBSCRIBE \(label)", Wire.subscribe(id: 1, [(topic, 0)]))
            try expectRefused("UNSUBSCRIBE \(label)", Wire.unsubscribe(id: 1, [topic]))
            try expectConnectRefused("client id \(label)", Wire.connect(clientID: Array("id".utf8) + bad))
            try expectConnectRefused(
                "will topic \(label)",
                Wire.connect(clientID: Array(uniqueID().utf8), will: WillSpec(topicBytes: topic, payload: [1])))
        }
        try expectConnectRefused(
            "user name FF FE", Wire.connect(clientID: Array(uniqueID().utf8), username: [0xFF, 0xFE]))
        try watcher.expectNothing(for: 0.3)
    }

    func test_MQTT_1_5_3_2_nullCharacterCloses() throws {
        // U+0000 in a client id (`a\0b`) closes without CONNACK; in a SUBSCRIBE filter (`a/\0`) closes without SUBACK.
        try expectConnectRefused("client id a\\0b", Wire.connect(clientID: [0x61, 0x00, 0x62]))
        try expectRefused("SUBSCRIBE a/\\0", Wire.subscribe(id: 1, [(Array((uniqueTopic() + "/").utf8) + [0], 0)]))
    }

    func test_MQTT_1_5_3_3_byteOrderMarkKept() throws {
        // A filter with U+FEFF (`EF BB BF`) only matches the topic with the BOM, whose bytes arrive intact.
        let root = uniqueTopic("bom")
        let withBOM = root + "/\u{FEFF}t"
        let subscriber = try connect()
        try subscribe(subscriber, withBOM)
        let publisher = try connect()
        try publish(publisher, root + "/t", "plain")
        try publish(publisher, withBOM, "bom")
        let frame = try XCTUnwrap(subscriber.readFrame())
        XCTAssertEqual(Array(frame.body), Wire.string(withBOM) + Array("bom".utf8))
        XCTAssertTrue(Array(withBOM.utf8).suffix(4).elementsEqual([0xEF, 0xBB, 0xBF, 0x74]))
        try subscriber.expectNothing(for: 0.3)
    }

    func test_MQTT_3_3_2_1_topicNameUTF8() throws {
        // A PUBLISH topic `C3 28` closes the connection; valid multi-byte topics are forwarded byte for byte.
        let root = uniqueTopic("n")
        let topic = root + "/\u{00FC}/\u{65E5}\u{672C}/\u{1F600}"
        let subscriber = try connect()
        try subscribe(subscriber, root + "/#")
        let publisher = try connect()
        try publish(publisher, topic, "multi")
        let frame = try XCTUnwrap(subscriber.readFrame())
        XCTAssertEqual(Array(frame.body), Wire.string(topic) + Array("multi".utf8))
        try expectRefused("topic C3 28", Wire.publish(topic: Array((root + "/").utf8) + [0xC3, 0x28], payload: [1]))
        try subscriber.expectNothing(for: 0.3)
    }

    func test_MQTT_3_3_2_2_publishTopicWithoutWildcards() throws {
        // A PUBLISH to `a/+` or `a/#` closes the connection and is not forwarded.
        let root = uniqueTopic("w")
        let subscriber = try connect()
        try subscribe(subscriber, root + "/#")
        try expectRefused("PUBLISH a/+", Wire.publish(root + "/a/+", "plus"))
        try expectRefused("PUBLISH a/#", Wire.publish(root + "/a/#", "hash"))
        try subscriber.expectNothing(for: 0.3)
    }

    func test_MQTT_4_7_1_1_wildcardsOnlyInFilters() throws {
        // A PUBLISH topic with `+` or `#` closes; a Will Topic with `+` or `#` closes without CONNACK.
        let root = uniqueTopic("x")
        try expectRefused("PUBLISH +", Wire.publish(root + "/+/x", "p", qos: 1, id: 1))
        try expectRefused("PUBLISH #", Wire.publish(root + "/#", "p", qos: 2, id: 1))
        for wildcard in ["+", "#"] {
            try expectConnectRefused(
                "will topic \(wildcard)",
                Wire.connect(uniqueID(), will: WillSpec(topic: root + "/" + wildcard, payload: [1])))
        }
    }

    func test_MQTT_4_7_1_2_multiLevelWildcardPlacement() throws {
        // `#` and `a/#` are granted; `a#`, `a/#/b` and `a/b#` are refused; `a/#` also matches `a`.
        let root = uniqueTopic("m")
        let client = try connect()
        try client.send(Wire.subscribe(id: 4, [(Array("#".utf8), 0), (Array((root + "/#").utf8), 1)]))
        XCTAssertEqual(
            try client.readSubAck(),
            SubAck(packetID: try packetID(4), returnCodes: [.granted(.atMostOnce), .granted(.atLeastOnce)]))
        try client.send(Wire.unsubscribe(id: 5, "#"))
        // Traffic of other tests may reach `#` until the UNSUBACK; skip it.
        var unsubscribed = false
        for _ in 0..<1000 where !unsubscribed {
            if case .unsuback = try client.readPacket() { unsubscribed = true }
        }
        XCTAssertTrue(unsubscribed)
        let publisher = try connect()
        try publish(publisher, root, "parent", qos: 1)
        try receive(client, topic: root, payload: "parent", qos: 1)
        for filter in [root + "a#", root + "/#/b", root + "/b#"] {
            try expectFilterRefused(Array(filter.utf8))
        }
    }

    func test_MQTT_4_7_1_3_singleLevelWildcardPlacement() throws {
        // `+`, `+/+`, `a/+/c`, `+/a/#` granted; `a+`, `a/+b` refused; `+` does not match `/x`, `+/+` does.
        let root = uniqueTopic("s")
        let client = try connect()
        let filters = ["+", "+/+", root + "/+/c", "+/" + root + "/#"]
        try client.send(Wire.subscribe(id: 6, filters.map { (Array($0.utf8), 0) }))
        XCTAssertEqual(
            try client.readSubAck(),
            SubAck(packetID: try packetID(6), returnCodes: Array(repeating: .granted(.atMostOnce), count: 4)))
        try client.send(Wire.unsubscribe(id: 7, filters.map { Array($0.utf8) }))
        var unsubscribed = false
        for _ in 0..<1000 where !unsubscribed {
            if case .unsuback = try client.readPacket() { unsubscribed = true }
        }
        XCTAssertTrue(unsubscribed)
        for filter in [root + "/a+", root + "/a/+b"] {
            try expectFilterRefused(Array(filter.utf8))
        }
        // Single-level topics of this test only: a leading-slash topic and a one-level topic.
        let level = "lvl\(getpid())x\(uniqueID())"
        let single = try connect()
        try subscribe(single, "+")
        let double = try connect()
        try subscribe(double, "+/+")
        let publisher = try connect()
        try publish(publisher, "/" + level, "slash")
        try publish(publisher, level, "one level")
        let singleGot = try single.drainPublishes(window: 0.5).filter { $0.topicString.contains(level) }
        let doubleGot = try double.drainPublishes(window: 0.5).filter { $0.topicString.contains(level) }
        XCTAssertEqual(singleGot.map(\.topicString), [level], "`+` matches one level, not `/x`")
        XCTAssertEqual(doubleGot.map(\.topicString), ["/" + level], "`+/+` matches `/x`")
    }

    func test_MQTT_4_7_2_1_wildcardsSkipDollarTopics() throws {
        // Subscriptions `#` and `+/x` do not receive `$foo/x`; a subscription `$foo/#` does.
        let dollar = "$conf\(getpid())\(uniqueID())"
        let wildcards = try connect()
        try wildcards.send(Wire.subscribe(id: 1, [(Array("#".utf8), 0), (Array("+/x".utf8), 0)]))
        _ = try wildcards.readSubAck()
        let explicit = try connect()
        try subscribe(explicit, dollar + "/#")
        let publisher = try connect()
        try publish(publisher, dollar + "/x", "dollar")
        try receive(explicit, topic: dollar + "/x", payload: "dollar")
        let leaked = try wildcards.drainPublishes(window: 0.5).filter { $0.topicString.hasPrefix("$") }
        XCTAssertEqual(leaked.map(\.topicString), [], "wildcard filters must not match `$` topics")
    }

    func test_MQTT_4_7_3_1_emptyNamesAndFiltersRefused() throws {
        // An empty PUBLISH topic closes; an empty SUBSCRIBE filter closes or gets 0x80; an empty UNSUBSCRIBE closes.
        try expectRefused("PUBLISH empty topic", Wire.publish(topic: [], payload: [1]))
        try expectFilterRefused([])
        try expectRefused("UNSUBSCRIBE empty filter", Wire.unsubscribe(id: 1, [[]]))
    }

    func test_MQTT_4_7_3_2_nullCharacterInNamesAndFilters() throws {
        // PUBLISH to `a\0b` and SUBSCRIBE to `a/\0` close the connection.
        let root = Array((uniqueTopic("z") + "/").utf8)
        try expectRefused("PUBLISH a\\0b", Wire.publish(topic: root + [0x61, 0x00, 0x62], payload: [1]))
        try expectRefused("SUBSCRIBE a/\\0", Wire.subscribe(id: 1, [(root + [0x61, 0x2F, 0x00], 0)]))
    }

    func test_MQTT_4_7_3_3_longestTopicRoundTrips() throws {
        // A topic of 65535 bytes can be subscribed to and published on, and arrives intact.
        let prefix = uniqueTopic("long") + "/"
        let topic = prefix + String(repeating: "x", count: 65535 - prefix.utf8.count)
        XCTAssertEqual(topic.utf8.count, 65535)
        let subscriber = try connect()
        try subscribe(subscriber, topic, qos: 1)
        let publisher = try connect()
        try publish(publisher, topic, "far", qos: 1)
        try receive(subscriber, topic: topic, payload: "far", qos: 1)
    }

    func test_MQTT_4_7_3_4_matchingIsExact() throws {
        // `Accounts` vs `ACCOUNTS`, `a/b` vs `a//b` vs `/a/b`, NFC `é` vs NFD `e` + U+0301: none cross-match.
        let root = uniqueTopic("e")
        let variants = [
            "/Accounts", "/ACCOUNTS", "/a/b", "/a//b", "//a/b", "/caf\u{00E9}", "/cafe\u{0301}",
        ].map { root + $0 }
        // Swift compares strings by canonical equivalence; the bytes must differ for the test to mean anything.
        XCTAssertNotEqual(Array(variants[5].utf8), Array(variants[6].utf8))
        var subscribers: [RawClient] = []
        for variant in variants {
            let client = try connect()
            try subscribe(client, variant)
            subscribers.append(client)
        }
        let publisher = try connect()
        for variant in variants {
            try publish(publisher, variant, variant)
        }
        for (variant, subscriber) in zip(variants, subscribers) {
            let got = try subscriber.drainPublishes(window: 0.3)
            XCTAssertEqual(got.map { Array($0.topic.bytes) }, [Array(variant.utf8)], "subscriber of \(variant)")
        }
    }
}
