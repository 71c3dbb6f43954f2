// Black-box durability with `persistence true` (§3.1.2.4, §3.3.1.3, §4.3, §4.4): SIGKILL at random moments loses no
// acknowledged message, QoS 2 stays exactly-once across restarts, sessions and flows resume, damaged stores start.

import Foundation
import Glibc
import MQTTCodec
import MQTTTestSupport
import XCTest

final class DurabilityCrashTests: ConformanceCase {
    /// Unlimited queues: the property under test is the store, not `max_queued_messages`.
    static let brokerConfig = ["max_queued_messages 0", "max_inflight_messages 100"]
    static let rounds = 4
    static let messagesPerRound = 30_000

    override func setUpWithError() throws {
        try skipOnMosquitto("midge's persistence keys and crash behaviour")
    }

    private func durableBroker(_ extra: [String] = []) throws -> DurableBroker {
        let directory = try BrokerProcess.makeScratchDirectory()
        scratchDirectories.append(directory)
        return DurableBroker(directory: directory, config: Self.brokerConfig + extra)
    }

    func test_durability_acknowledgedQoS1SurvivesKill() throws {
        // A numbered QoS 1 stream to an offline persistent subscriber; SIGKILL at random moments; after every restart
        // each message whose PUBACK arrived is delivered.
        let store = try durableBroker()
        let topic = uniqueTopic("q1")
        let subscriber = DurableSubscriber(clientID: uniqueID("sub"))
        try store.start()
        let first = try connect(subscriber.clientID, clean: false, to: store.process)
        try subscribe(first, topic, qos: 1)
        try disconnectAndWait(first)

        var acknowledged: [Int] = []
        var next = 0
        for round in 1...Self.rounds {
            let broker = try XCTUnwrap(store.process)
            let publisher = try connect(uniqueID("pub"), to: broker)
            let killer = RandomKiller(pid: broker.pid, delayRange: 0.02...0.3)
            let result = NumberedStream.run(
                on: publisher, topic: { _ in topic }, qos: 1, first: next, limit: Self.messagesPerRound)
            next += result.sent
            acknowledged += result.acknowledged
            killer.wait()
            store.crash()
            try store.start()
            // The subscriber comes back, takes everything, and goes away again for the next round.
            let back = try connect(subscriber.clientID, clean: false, to: store.process)
            subscriber.drain(back)
            try disconnectAndWait(back)
            let missing = acknowledged.filter { subscriber.deliveries[$0] == nil }
            print(
                "durability QoS 1 round \(round): killed after \(String(format: "%.0f", killer.delay * 1000)) ms; "
                    + "sent \(result.sent), acknowledged \(result.acknowledged.count), delivered so far "
                    + "\(subscriber.deliveries.count) (\(subscriber.duplicates) duplicates), missing \(missing.count)")
            XCTAssertEqual(missing, [], "acknowledged but never delivered, round \(round):\n\(store.allLogs())")
        }
        XCTAssertFalse(acknowledged.isEmpty, "no message was acknowledged before any kill")
        store.stop()
    }

    func test_durability_acknowledgedRetainedSurvivesKill() throws {
        // Retained QoS 1 messages, one topic per number; SIGKILL at random moments; after the restarts every topic
        // whose PUBACK arrived has its retained message.
        let store = try durableBroker()
        let prefix = uniqueTopic("ret")
        try store.start()
        var acknowledged: [Int] = []
        var next = 0
        for round in 1...Self.rounds {
            let broker = try XCTUnwrap(store.process)
            let publisher = try connect(uniqueID("pub"), to: broker)
            let killer = RandomKiller(pid: broker.pid, delayRange: 0.02...0.3)
            let result = NumberedStream.run(
                on: publisher, topic: { "\(prefix)/\($0)" }, qos: 1, retain: true, first: next,
                limit: Self.messagesPerRound / 2)
            next += result.sent
            acknowledged += result.acknowledged
            killer.wait()
            store.crash()
            try store.start()
            print(
                "durability retained round \(round): sent \(result.sent), acknowledged \(result.acknowledged.count)")
        }
        let reader = DurableSubscriber(clientID: uniqueID("ret"))
        let client = try connect(reader.clientID, to: store.process)
        try subscribe(client, "\(prefix)/#", qos: 1)
        reader.drain(client)
        let missing = acknowledged.filter { reader.deliveries[$0] == nil }
        print(
            "durability retained: acknowledged \(acknowledged.count), retained after restarts "
                + "\(reader.deliveries.count), missing \(missing.count)")
        XCTAssertEqual(missing, [], "acknowledged retained messages lost:\n\(store.allLogs())")
        store.stop()
    }

    func test_durability_qos2ExactlyOnceAcrossKills() throws {
        // A persistent QoS 2 publisher and subscriber; SIGKILL during publishing and during delivery. The publisher
        // finishes its flows after each restart (PUBREL, or the PUBLISH again with DUP=1); every PUBREC'd message
        // reaches the subscriber exactly once, and nothing is sent again after its PUBREL [MQTT-4.3.3-2].
        let store = try durableBroker()
        let topic = uniqueTopic("q2")
        let subscriber = DurableSubscriber(clientID: uniqueID("sub"))
        let publisherID = uniqueID("pub")
        try store.start()
        let first = try connect(subscriber.clientID, clean: false, to: store.process)
        try subscribe(first, topic, qos: 2)
        try disconnectAndWait(first)

        var acknowledged: Set<Int> = []
        var unfinished: [Int] = []  // sent, PUBCOMP not received
        var next = 0
        for round in 1...Self.rounds {
            let broker = try XCTUnwrap(store.process)
            let publisher = try connect(publisherID, clean: false, to: broker)
            // Finish the previous round's flows as a client does on reconnect [MQTT-4.4.0-1].
            try NumberedStream.finishQoS2(unfinished, acknowledged: &acknowledged, on: publisher, topic: topic)
            unfinished = []
            let killer = RandomKiller(pid: broker.pid, delayRange: 0.02...0.3)
            let result = NumberedStream.run(
                on: publisher, topic: { _ in topic }, qos: 2, first: next, limit: Self.messagesPerRound)
            acknowledged.formUnion(result.acknowledged)
            let completed = Set(result.completed)
            unfinished = (next..<(next + result.sent)).filter { !completed.contains($0) }
            next += result.sent
            killer.wait()
            store.crash()
            try store.start()
            print(
                "durability QoS 2 round \(round): sent \(result.sent), PUBREC \(result.acknowledged.count), "
                    + "PUBCOMP \(result.completed.count)")
        }
        // Finish the last round's flows, so every message sent has been handed over.
        let publisher = try connect(publisherID, clean: false, to: store.process)
        try NumberedStream.finishQoS2(unfinished, acknowledged: &acknowledged, on: publisher, topic: topic)
        try disconnectAndWait(publisher)

        // Delivery, killed at a random moment twice, then to the end.
        for _ in 0..<2 {
            let broker = try XCTUnwrap(store.process)
            let client = try connect(subscriber.clientID, clean: false, to: broker)
            let killer = RandomKiller(pid: broker.pid, delayRange: 0.05...0.4)
            subscriber.drain(client, quiet: 2)
            killer.wait()
            store.crash()
            try store.start()
        }
        for _ in 0..<3 {
            let client = try connect(subscriber.clientID, clean: false, to: store.process)
            subscriber.drain(client)
            try disconnectAndWait(client)
        }
        let missing = acknowledged.filter { subscriber.deliveries[$0] == nil }.sorted()
        print(
            "durability QoS 2: handed over \(acknowledged.count), delivered \(subscriber.deliveries.count), "
                + "duplicates \(subscriber.duplicates), sent again after PUBREL \(subscriber.sentAfterRelease.count), "
                + "missing \(missing.count)")
        XCTAssertEqual(missing, [], "PUBREC'd but never delivered:\n\(store.allLogs())")
        // A kill in the middle of a write drops the torn batch whole: an inbound message's routing never survives
        // without its id, so no resend is routed twice, whatever recovery dropped.
        if store.someRecoveryDroppedRecords {
            print("durability QoS 2: recoveries that dropped records:\n" + store.recoveryLines.joined(separator: "\n"))
        }
        XCTAssertEqual(subscriber.duplicates, 0, "QoS 2 delivered twice:\n\(store.recoveryLines)\n\(store.allLogs())")
        XCTAssertEqual(subscriber.sentAfterRelease, [], "sent again after PUBREL:\n\(store.allLogs())")
        store.stop()
    }
}

final class DurabilityRecoveryTests: ConformanceCase {
    override func setUpWithError() throws {
        try skipOnMosquitto("midge's store files")
    }

    /// A store holding retained messages `r/0` … `r/(count-1)`, written by a broker that was then stopped.
    private func storeWithRetained(_ count: Int, prefix: String) throws -> DurableBroker {
        let directory = try BrokerProcess.makeScratchDirectory()
        scratchDirectories.append(directory)
        let store = DurableBroker(directory: directory)
        try store.start()
        let publisher = try connect(uniqueID("pub"), to: store.process)
        for number in 0..<count {
            try publish(publisher, "\(prefix)/\(number)", "n\(number)", qos: 1, retain: true, id: UInt16(number + 1))
        }
        try disconnectAndWait(publisher)
        store.stop()
        return store
    }

    private func retainedNumbers(_ store: DurableBroker, prefix: String) throws -> Set<Int> {
        let reader = DurableSubscriber(clientID: uniqueID("read"))
        let client = try connect(reader.clientID, to: store.process)
        try subscribe(client, "\(prefix)/#", qos: 1)
        reader.drain(client, quiet: 0.5)
        try disconnectAndWait(client)
        return Set(reader.deliveries.keys)
    }

    private func segments(in directory: URL) throws -> [URL] {
        try FileManager.default.contentsOfDirectory(at: directory, includingPropertiesForKeys: nil)
            .filter { $0.lastPathComponent.hasPrefix("wal-") && $0.pathExtension == "log" }
            .sorted { $0.lastPathComponent < $1.lastPathComponent }
    }

    func test_durability_truncatedLogStarts() throws {
        // The log's last record cut short (a torn write): midge starts, logs what it dropped, keeps the rest.
        let prefix = uniqueTopic("trunc")
        let store = try storeWithRetained(50, prefix: prefix)
        let segment = try XCTUnwrap(try segments(in: store.directory).last)
        let size = try XCTUnwrap(FileManager.default.attributesOfItem(atPath: segment.path)[.size] as? Int)
        XCTAssertEqual(truncate(segment.path, off_t(size - 3)), 0)
        try store.start()
        let log = store.currentLog()
        XCTAssertTrue(log.contains("dropped"), "no line says what was dropped:\n\(log)")
        let present = try retainedNumbers(store, prefix: prefix)
        print("durability truncated log: \(present.count) of 50 retained messages kept")
        XCTAssertEqual(present, Set(0..<present.count), "not a prefix of what was written")
        XCTAssertGreaterThanOrEqual(present.count, 49)
        store.stop()
    }

    func test_durability_flippedByteStarts() throws {
        // One byte flipped in the middle of the log: midge starts, logs what it dropped, keeps what came before.
        let prefix = uniqueTopic("flip")
        let store = try storeWithRetained(50, prefix: prefix)
        let segment = try XCTUnwrap(try segments(in: store.directory).last)
        var bytes = try Data(contentsOf: segment)
        let middle = bytes.count / 2
        bytes[middle] ^= 0x5A
        try bytes.write(to: segment)
        try store.start()
        let log = store.currentLog()
        XCTAssertTrue(log.contains("dropped"), "no line says what was dropped:\n\(log)")
        let present = try retainedNumbers(store, prefix: prefix)
        print("durability flipped byte: \(present.count) of 50 retained messages kept")
        XCTAssertEqual(present, Set(0..<present.count), "not a prefix of what was written")
        XCTAssertLessThan(present.count, 50)
        // The broker keeps working on the repaired store: a new retained message survives another restart.
        let publisher = try connect(uniqueID("pub"), to: store.process)
        try publish(publisher, "\(prefix)/new", "n1000", qos: 1, retain: true)
        try disconnectAndWait(publisher)
        store.stop()
        try store.start()
        XCTAssertTrue(try retainedNumbers(store, prefix: prefix).contains(1000))
        store.stop()
    }
}

final class DurableSessionTests: ConformanceCase {
    override func setUpWithError() throws {
        try skipOnMosquitto("restarts a broker on one persistence directory")
    }

    private func durableBroker(_ extra: [String] = []) throws -> DurableBroker {
        let directory = try BrokerProcess.makeScratchDirectory()
        scratchDirectories.append(directory)
        let store = DurableBroker(directory: directory, config: extra)
        try store.start()
        return store
    }

    func test_MQTT_3_1_2_4_persistentSessionSurvivesRestart() throws {
        // Clean 0 + subscribe, restart: session present 1, the subscription delivers, a queued message arrives.
        let store = try durableBroker()
        let id = uniqueID()
        let topic = uniqueTopic()
        let first = try connect(id, clean: false, to: store.process)
        try subscribe(first, topic, qos: 1)
        try disconnectAndWait(first)
        let publisher = try connect(to: store.process)
        try publish(publisher, topic, "queued", qos: 1)
        store.stop()
        try store.start()
        let again = try connect(id, clean: false, to: store.process, expectSessionPresent: true)
        try receive(again, topic: topic, payload: "queued", qos: 1)
        let later = try connect(to: store.process)
        try publish(later, topic, "live", qos: 1)
        try receive(again, topic: topic, payload: "live", qos: 1)
        store.stop()
    }

    func test_MQTT_3_1_2_6_cleanSessionDiscardSurvivesRestart() throws {
        // A clean-1 connect discards the stored session, and a restart does not bring it back.
        let store = try durableBroker()
        let id = uniqueID()
        let first = try connect(id, clean: false, to: store.process)
        try subscribe(first, uniqueTopic(), qos: 1)
        try disconnectAndWait(first)
        try disconnectAndWait(try connect(id, clean: true, to: store.process, expectSessionPresent: false))
        store.crash()
        try store.start()
        _ = try connect(id, clean: false, to: store.process, expectSessionPresent: false)
        store.stop()
    }

    func test_MQTT_4_4_0_1_inflightPublishResentAfterRestart() throws {
        // A QoS 1 PUBLISH sent but not acknowledged before a restart is sent again with DUP=1 and the same id.
        let store = try durableBroker()
        let id = uniqueID()
        let topic = uniqueTopic()
        let subscriber = try connect(id, clean: false, to: store.process)
        try subscribe(subscriber, topic, qos: 1)
        let publisher = try connect(to: store.process)
        try publish(publisher, topic, "unacked", qos: 1)
        let original = try subscriber.readPublish()
        XCTAssertFalse(original.dup)
        store.crash()
        try store.start()
        let back = try connect(id, clean: false, to: store.process, expectSessionPresent: true)
        let resent = try back.readPublish()
        XCTAssertEqual(resent.payloadString, "unacked")
        XCTAssertEqual(resent.id, original.id)
        XCTAssertTrue(resent.dup, "[MQTT-3.3.1-1] a resent PUBLISH has DUP=1")
        try back.send(Wire.puback(resent.id))
        try back.expectNothing(for: 0.3)
        store.stop()
    }

    func test_MQTT_4_3_3_1_pubrelResumedAfterRestart() throws {
        // Outbound QoS 2 past PUBREC when the broker is killed: after the restart only the PUBREL is resent, never
        // the PUBLISH [MQTT-4.3.3-1], and PUBCOMP ends the flow.
        let store = try durableBroker()
        let id = uniqueID()
        let topic = uniqueTopic()
        let subscriber = try connect(id, clean: false, to: store.process)
        try subscribe(subscriber, topic, qos: 2)
        let publisher = try connect(to: store.process)
        try publish(publisher, topic, "twice?", qos: 2)
        let delivery = try subscriber.readPublish()
        try subscriber.send(Wire.pubrec(delivery.id))
        try expect(try subscriber.readPacket(), .pubrel(try packetID(delivery.id)), subscriber)
        store.crash()
        try store.start()
        let back = try connect(id, clean: false, to: store.process, expectSessionPresent: true)
        try expect(try back.readPacket(), .pubrel(try packetID(delivery.id)), back)
        try back.send(Wire.pubcomp(delivery.id))
        try back.expectNothing(for: 0.5)
        store.stop()
    }

    func test_MQTT_4_3_3_2_inboundQoS2IdSurvivesRestart() throws {
        // A QoS 2 PUBLISH is PUBREC'd, the broker is killed; the client's DUP resend is not routed again, and its
        // PUBREL after the restart gets PUBCOMP: the subscriber gets the message once.
        let store = try durableBroker()
        let topic = uniqueTopic()
        let publisherID = uniqueID("pub")
        let watcher = try connect(uniqueID("sub"), clean: false, to: store.process)
        try subscribe(watcher, topic, qos: 2)
        try disconnectAndWait(watcher)
        let publisher = try connect(publisherID, clean: false, to: store.process)
        try publisher.send(Wire.publish(topic, "once", qos: 2, id: 7))
        try expect(try publisher.readPacket(), .pubrec(try packetID(7)), publisher)
        store.crash()
        try store.start()
        let again = try connect(publisherID, clean: false, to: store.process, expectSessionPresent: true)
        try again.send(Wire.publish(topic, "once", qos: 2, dup: true, id: 7))
        try expect(try again.readPacket(), .pubrec(try packetID(7)), again)
        try again.send(Wire.pubrel(7))
        try expect(try again.readPacket(), .pubcomp(try packetID(7)), again)
        let back = try connect(watcher.name, clean: false, to: store.process, expectSessionPresent: true)
        let publishes = try back.drainPublishes(window: 0.5)
        XCTAssertEqual(publishes.map(\.payloadString), ["once"])
        store.stop()
    }

    func test_durability_expiredSessionRemovedAtStartUp() throws {
        // persistent_client_expiration: a session whose client has been away longer is gone after a restart.
        let store = try durableBroker(["persistent_client_expiration 1s"])
        let id = uniqueID()
        let first = try connect(id, clean: false, to: store.process)
        try subscribe(first, uniqueTopic(), qos: 1)
        try disconnectAndWait(first)
        store.stop()
        usleep(2_200_000)
        try store.start()
        XCTAssertTrue(store.currentLog().contains("Expiring client \(id)"), store.currentLog())
        _ = try connect(id, clean: false, to: store.process, expectSessionPresent: false)
        store.stop()
    }
}
