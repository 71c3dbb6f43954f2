// Black-box tests of what one client can make the broker hold: topic depth (`max_topic_levels`, mosquitto's
// hierarchy limit), subscriptions per client, retained messages broker-wide and the memory ceiling (`memory_limit`).
// The depth tests run against mosquitto too; the others use Midge's own keys.

import Foundation
import Glibc
import MQTTCodec
import MQTTTestSupport
import XCTest

final class ResourceLimitTests: ConformanceCase {
    private func deep(_ levels: Int, leaf: String = "x") -> String {
        (Array(repeating: "l", count: levels - 1) + [leaf]).joined(separator: "/")
    }

    override func tearDown() {
        if let shared = try? broker { XCTAssertTrue(shared.isRunning, "the broker exited") }
        super.tearDown()
    }

    func test_limits_publishDeeperThanTheHierarchyLimitClosesTheConnection() throws {
        // Refused like mosquitto refuses a topic past its 200 `/`: the connection closes, nothing is routed.
        let prefix = uniqueTopic("deep")
        let watcher = try connect(uniqueID("watch"))
        try subscribe(watcher, prefix + "/#")
        let publisher = try connect(uniqueID("deep-pub"))
        try publisher.send(Wire.publish(prefix + "/" + deep(249), "too deep", retain: true))
        XCTAssertNoThrow(try publisher.expectClosed(timeout: 5))
        let atLimit = try connect(uniqueID("ok-pub"))
        try publish(atLimit, prefix + "/" + deep(150), "fits")
        let received = try watcher.readPublish()
        XCTAssertEqual(received.payload, Array("fits".utf8), "only the topic within the limit was routed")
    }

    func test_limits_subscribeDeeperThanTheHierarchyLimitClosesAndCostsNothing() throws {
        // The measured attack: a 64 KB filter of 32,000 levels took 14 MB. Now the connection closes and the
        // broker's memory does not grow with it.
        let bystander = try connect(uniqueID("bystander"))
        try bystander.sync()
        let before = try broker.memory()
        let filter = Array(repeating: "x", count: 32_000).joined(separator: "/")
        for round in 0..<20 {
            let client = try connect(uniqueID("deep-sub\(round)"))
            try client.send(Wire.subscribe(id: 1, filter, qos: 0))
            XCTAssertNoThrow(try client.expectClosed(timeout: 5), "round \(round): no SUBACK, connection closed")
        }
        try bystander.sync()
        let after = try broker.memory()
        print("20 SUBSCRIBEs of 32,000 levels: before \(before); after \(after)")
        XCTAssertLessThan(after.residentKB - before.residentKB, 8 * 1024, "the refused filters were kept")
        let unsubscriber = try connect(uniqueID("deep-unsub"))
        try unsubscriber.send(Wire.unsubscribe(id: 2, deep(300)))
        XCTAssertNoThrow(try unsubscriber.expectClosed(timeout: 5), "UNSUBSCRIBE too deep: closed")
    }

    func test_limits_willDeeperThanTheHierarchyLimitIsRefused() throws {
        let client = try open(name: "deep will")
        try client.send(
            Wire.connect(uniqueID("deep-will"), will: WillSpec(topic: deep(260), payload: Array("w".utf8))))
        // mosquitto and Midge both close without accepting; neither sends CONNACK 0.
        let frames = try client.expectClosed(timeout: 5) { frame in
            (try? frame.decode()).map { packet in
                if case .connack(let connack) = packet { return connack.returnCode != .accepted }
                return false
            } ?? false
        }
        XCTAssertLessThanOrEqual(frames.count, 1)
    }

    func test_limits_maxSubscriptionsRefusesFurtherFiltersWithFailure() throws {
        try skipOnMosquitto("max_subscriptions is Midge's")
        let limited = try startBroker(config: ["max_subscriptions 3"])
        let client = try connect(uniqueID("subs"), to: limited)
        let filters = (0..<5).map { (filter: Array("f/\($0)".utf8), qos: UInt8(0)) }
        try client.send(Wire.subscribe(id: 9, filters))
        let suback = try client.readSubAck()
        XCTAssertEqual(suback.returnCodes.map(\.rawValue), [0, 0, 0, 0x80, 0x80])
        try subscribe(client, "f/0", qos: 1, id: 10)  // a replacement is not a new subscription
        XCTAssertNotNil(limited.waitForLogLine(containing: "max_subscriptions (3) reached", after: 0))
        let publisher = try connect(uniqueID("pub"), to: limited)
        try publish(publisher, "f/2", "in")
        try publish(publisher, "f/4", "out")
        let received = try client.drainPublishes(window: 0.5)
        XCTAssertEqual(received.map(\.topicString), ["f/2"])
    }

    func test_limits_retainedMessagesMaxStoresNoNewTopicBeyondIt() throws {
        try skipOnMosquitto("retained_messages_max is Midge's")
        let limited = try startBroker(config: ["retained_messages_max 2", "retained_bytes_max 1000"])
        let publisher = try connect(uniqueID("pub"), to: limited)
        for index in 0..<4 { try publish(publisher, "r/\(index)", "v\(index)", retain: true) }
        try publish(publisher, "big/one", String(repeating: "x", count: 2000), retain: true)
        let reader = try connect(uniqueID("reader"), to: limited)
        try subscribe(reader, "#")
        let retained = try reader.drainPublishes(window: 0.5)
        XCTAssertEqual(Set(retained.map(\.topicString)), ["r/0", "r/1"])
        XCTAssertNotNil(limited.waitForLogLine(containing: "retained_messages_max (2) reached", after: 0))
    }

    func test_limits_memoryLimitRefusesNewWorkAndKeepsServingConnectedClients() throws {
        // A flood of retained messages drives the broker to its ceiling; above it a new CONNECT gets CONNACK 3,
        // a client already connected is still served, resident memory stays within the ceiling plus a stated
        // margin, and deleting the retained messages lets new clients in again. Bounded: at most 4,000 messages.
        try skipOnMosquitto("memory_limit measures resident memory in Midge")
        let limit = 96 * 1024 * 1024
        let margin = 16 * 1024 * 1024
        let limited = try startBroker(config: ["memory_limit \(limit)", "threads 2"])
        let subscriber = try connect(uniqueID("live-sub"), to: limited)
        try subscribe(subscriber, "live/#")
        let flooder = try connect(uniqueID("flooder"), to: limited)
        let payload = [UInt8](repeating: 0x61, count: 64 * 1024)
        var sent = 0
        var reached = false
        let deadline = Date().addingTimeInterval(60)
        while sent < 4000 && Date() < deadline {
            for _ in 0..<50 {
                try flooder.send(Wire.publish(topic: Array("flood/\(sent)".utf8), payload: payload, retain: true))
                sent += 1
            }
            try flooder.sync()
            if limited.waitForLogLine(containing: "Memory limit reached", after: 0, timeout: 0) != nil {
                reached = true
                break
            }
        }
        XCTAssertTrue(reached, "the ceiling was never reached after \(sent) messages of 64 KB")
        // Keep flooding past the ceiling: the retained copies are refused, so memory must stay put.
        for _ in 0..<1000 {
            try flooder.send(Wire.publish(topic: Array("flood/\(sent)".utf8), payload: payload, retain: true))
            sent += 1
        }
        try flooder.sync()
        let peak = try limited.memory()
        print("memory_limit \(limit / 1024) KB: after \(sent) retained messages of 64 KB, \(peak)")
        XCTAssertLessThan(peak.peakResidentKB * 1024, limit + margin, "resident memory passed the ceiling + margin")

        let newcomer = try open(name: "newcomer", to: limited)
        try newcomer.send(Wire.connect(uniqueID("newcomer")))
        XCTAssertEqual(try newcomer.readConnAck().returnCode, .serverUnavailable)
        try publish(flooder, "live/1", "still served", qos: 1)
        XCTAssertEqual(try subscriber.readPublish().payload, Array("still served".utf8))

        // Deleting the retained messages frees the memory; new connections are taken again.
        for index in 0..<sent {
            try flooder.send(Wire.publish(topic: Array("flood/\(index)".utf8), payload: [], retain: true))
        }
        try flooder.sync()
        XCTAssertNotNil(
            limited.waitForLogLine(containing: "below the limit again", after: 0, timeout: 10),
            "memory use did not fall below the limit after the retained messages were deleted")
        XCTAssertNoThrow(try connect(uniqueID("welcome"), to: limited))
    }
}
