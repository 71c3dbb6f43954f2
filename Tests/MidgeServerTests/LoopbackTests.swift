// The server end to end over loopback TCP with 3 event loops: cross-loop routing and ordering, takeover, closes.
import Dispatch
import Foundation
import Glibc
import MQTTCodec
import MQTTTestSupport
import MidgeCore
import XCTest

@testable import MidgeServer

final class LoopbackTests: XCTestCase {
    private func bytes(_ number: Int) -> [UInt8] {
        withUnsafeBytes(of: UInt32(number).bigEndian) { Array($0) }
    }

    private func number(_ bytes: [UInt8]) -> Int {
        bytes.reduce(0) { $0 << 8 | Int($1) }
    }

    func testPortZeroListenerLogsTheRealPort() throws {
        let running = try RunningServer()
        defer { running.stop() }
        XCTAssertNotEqual(running.port, 0)
        XCTAssertEqual(running.server.listeners, [BoundListener(address: .loopbackIPv4, port: running.port)])
        XCTAssertTrue(running.log.all.contains("Opening ipv4 listen socket on port \(running.port)."))
    }

    func testIPv6ListenerAndSharedPortAcrossFamilies() throws {
        let configuration = try Configuration.parse(text: "listener 0 ::1\nthreads 2\n", fileName: "v6.conf")
        let log = LogCapture()
        let server = try Server.start(
            settings: ServerSettings(configuration: configuration),
            logger: Logger(types: .all, sink: { log.append($0) }))
        defer {
            server.stop()
            server.wait()
        }
        XCTAssertEqual(server.listeners.count, 1)
        XCTAssertEqual(server.listeners[0].address, .loopbackIPv6)
        XCTAssertTrue(log.all.contains("Opening ipv6 listen socket on port \(server.listeners[0].port)."))
    }

    func testPublishReachesASubscriberOnAnotherLoop() throws {
        let running = try RunningServer()
        defer { running.stop() }
        let (subscriber, subscriberLoop) = try running.client(onLoopOtherThan: [])
        let (publisher, _) = try running.client(onLoopOtherThan: [subscriberLoop])
        try subscriber.connect("sub")
        try subscriber.subscribe("news/+", qos: .atLeastOnce)
        try publisher.connect("pub")
        try publisher.publish("news/today", Array("hello".utf8), qos: .atLeastOnce, id: 7)
        guard case .puback(let id) = try publisher.receive() else { return XCTFail("expected PUBACK") }
        XCTAssertEqual(id.rawValue, 7)
        let received = try subscriber.receivePublish()
        XCTAssertEqual(received.topic.description, "news/today")
        XCTAssertEqual(received.payload, Array("hello".utf8))
        XCTAssertEqual(received.qos, .atLeastOnce)
    }

    func testSingleLoopRunsTheCoreInline() throws {
        let running = try RunningServer(threads: 1)
        defer { running.stop() }
        let subscriber = try RawClient(port: running.port)
        let publisher = try RawClient(port: running.port)
        try subscriber.connect("sub")
        try subscriber.subscribe("t", qos: .atMostOnce)
        try publisher.connect("pub")
        try publisher.publish("t", [1, 2, 3])
        XCTAssertEqual(try subscriber.receivePublish().payload, [1, 2, 3])
    }

    /// Packets split across reads (a CONNECT fed byte by byte) and packets sharing one read both decode.
    func testPacketsSplitAcrossReadsAndCoalescedInOne() throws {
        let running = try RunningServer()
        defer { running.stop() }
        let client = try RawClient(port: running.port)
        var connect: [UInt8] = []
        Packet.connect(Connect(clientID: "bytewise")).encode(into: &connect)
        for byte in connect {
            try client.send([byte])
            usleep(1000)
        }
        guard case .connack(let connack) = try client.receive() else { return XCTFail("expected CONNACK") }
        XCTAssertEqual(connack.returnCode, .accepted)
        var burst: [UInt8] = []
        let subscribe = Subscribe(
            packetID: PacketID(1)!, requests: [SubscriptionRequest(filter: TopicFilter("echo")!, qos: .atMostOnce)])
        Packet.subscribe(subscribe).encode(into: &burst)
        for sequence in 0..<50 {
            Packet.publish(Publish(topic: TopicName("echo")!, payload: bytes(sequence))).encode(into: &burst)
        }
        Packet.pingreq.encode(into: &burst)
        try client.send(burst)
        guard case .suback = try client.receive() else { return XCTFail("expected SUBACK") }
        for sequence in 0..<50 { XCTAssertEqual(number(try client.receivePublish().payload), sequence) }
        guard case .pingresp = try client.receive() else { return XCTFail("expected PINGRESP") }
    }

    /// A subscriber that stops reading: once its output is congested, deliveries wait in its session queue, and
    /// beyond `max_queued_messages` new ones are dropped (`queue_full_policy drop`, mosquitto's behaviour). What it
    /// does get stays in order, the episode is logged when it starts and when the queue has room again, and later
    /// messages flow normally.
    func testDeliveriesAreDroppedForASubscriberThatStopsReading() throws {
        let running = try RunningServer(config: "max_queued_messages 10\n")
        defer { running.stop() }
        let slow = try RawClient(port: running.port, receiveBuffer: 4096)
        try slow.connect("slow")
        try slow.subscribe("big", qos: .atMostOnce, id: 1)
        try slow.subscribe("end", qos: .atLeastOnce, id: 2)
        let publisher = try RawClient(port: running.port)
        try publisher.connect("pub")

        let total = 200
        let filler = [UInt8](repeating: 0xAB, count: 256 * 1024)
        for sequence in 0..<total { try publisher.publish("big", bytes(sequence) + filler) }
        // The PUBACK follows every drop the flood caused, and the server publishes its count before writing it.
        try publisher.publish("sync", [], qos: .atLeastOnce, id: 1)
        guard case .puback = try publisher.receive() else { return XCTFail("expected PUBACK") }
        let dropped = running.server.droppedMessages
        XCTAssertGreaterThan(dropped, 0)

        var last = -1
        for _ in 0..<(total - dropped) {
            let publish = try slow.receivePublish()
            XCTAssertEqual(publish.topic.description, "big")
            let sequence = number(Array(publish.payload.prefix(4)))
            XCTAssertGreaterThan(sequence, last)
            last = sequence
        }
        try publisher.publish("end", [7], qos: .atLeastOnce, id: 2)
        let end = try slow.receivePublish()
        XCTAssertEqual(end.topic.description, "end")
        XCTAssertEqual(end.payload, [7])
        let log = running.log
        XCTAssertEqual(log.all.filter { $0.contains("Outgoing messages are being dropped for client slow.") }.count, 1)
        XCTAssertNotNil(log.waitForLine { $0.contains("Client slow has room again; \(dropped) messages") })
    }

    /// `queue_full_policy block`: a subscriber that is not reading holds its publisher (on another loop) back
    /// instead of losing messages; once it reads, everything arrives in order and the publisher gets on.
    func testBlockPolicyHoldsThePublisherAndLosesNothing() throws {
        let running = try RunningServer(config: "queue_full_policy block\nmax_queued_messages 10\n")
        defer { running.stop() }
        let (slow, slowLoop) = try running.client(onLoopOtherThan: [])
        try slow.connect("slow")
        try slow.subscribe("big", qos: .atMostOnce)
        let (publisher, _) = try running.client(onLoopOtherThan: [slowLoop])
        try publisher.connect("pub")

        let total = 200
        let filler = [UInt8](repeating: 0xCD, count: 256 * 1024)
        let finished = DispatchGroup()
        let outcome = LoopLocked<String?>("publisher did not finish")
        // Only the background thread touches the publisher from here on.
        let sender = publisher
        let messages = (0..<total).map { bytes($0) + filler }
        onOwnThread(finished) {
            do {
                // Blocks in write while the broker holds it: the send timeout is the bound.
                for message in messages { try sender.publish("big", message) }
                try sender.publish("sync", [], qos: .atLeastOnce, id: 1)
                guard case .puback = try sender.receive() else { throw TestError("expected PUBACK") }
                outcome.withLock { $0 = nil }
            } catch {
                outcome.withLock { $0 = "\(error)" }
            }
        }
        // Nothing is read until the broker has held the publisher, so the hold is certain to be exercised.
        XCTAssertNotNil(running.log.waitForLine { $0.contains("Queue of client slow is full; holding back") })
        for sequence in 0..<total {
            let publish = try slow.receivePublish()
            XCTAssertEqual(number(Array(publish.payload.prefix(4))), sequence)
            XCTAssertEqual(publish.payload.count, 4 + filler.count)
        }
        XCTAssertEqual(finished.wait(timeout: .now() + 30), .success)
        XCTAssertNil(outcome.withLock { $0 })
        XCTAssertEqual(running.server.droppedMessages, 0)
    }

    /// A held client's PUBACKs still get through: a client flooding a topic it subscribes to at QoS 1, with a
    /// queue of 10, holds itself, and is released by its own acknowledgements, which follow its PUBLISHes.
    func testHeldClientFeedingItselfIsReleasedByItsOwnAcks() throws {
        let running = try RunningServer(config: "queue_full_policy block\nmax_queued_messages 10\n")
        defer { running.stop() }
        let client = try RawClient(port: running.port)
        try client.connect("me")
        try client.subscribe("loop", qos: .atLeastOnce)
        let total = 300
        var wire: [UInt8] = []
        for sequence in 0..<total {
            let publish = Publish(
                topic: TopicName("loop")!, payload: bytes(sequence), qos: .atLeastOnce,
                packetID: PacketID(UInt16(sequence + 1)))
            Packet.publish(publish).encode(into: &wire)
        }
        try client.send(wire)
        var acknowledged = 0
        var delivered: [Int] = []
        while acknowledged < total || delivered.count < total {
            switch try client.receive() {
            case .puback:
                acknowledged += 1
            case .publish(let publish):
                delivered.append(number(publish.payload))
                if let id = publish.packetID { try client.send(.puback(id)) }
            case let other:
                return XCTFail("unexpected \(other)")
            }
        }
        XCTAssertEqual(delivered, Array(0..<total))
        XCTAssertNotNil(running.log.waitForLine { $0.contains("Queue of client me is full; holding back") })
        XCTAssertEqual(running.server.droppedMessages, 0)
    }

    /// [MQTT-4.6.0-6] with `queue_full_policy block` and a queue so short that the publisher is held and released
    /// over and over: subscribers on every loop get the whole stream in order. Every client runs on its own thread,
    /// as real ones do: under `block` a publisher waits for its slowest subscriber, so one thread serving all of
    /// them in turn would wait for itself.
    func testOrderedStreamAcrossLoopsWithThePublisherHeldAndReleased() throws {
        let running = try RunningServer(config: "queue_full_policy block\nmax_queued_messages 4\n")
        defer { running.stop() }
        var subscribers: [RawClient] = []
        var loops: Set<Int> = []
        for _ in 0..<3 {
            let (client, loop) = try running.client(onLoopOtherThan: loops)
            loops.insert(loop)
            try client.connect("sub\(loop)")
            try client.subscribe("seq", qos: .atLeastOnce)
            subscribers.append(client)
        }
        let publisher = try RawClient(port: running.port)
        try publisher.connect("pub")
        let total = 3000
        var wire: [UInt8] = []
        for sequence in 0..<total {
            let publish = Publish(
                topic: TopicName("seq")!, payload: bytes(sequence), qos: .atLeastOnce,
                packetID: PacketID(UInt16(sequence % 60_000 + 1)))
            Packet.publish(publish).encode(into: &wire)
        }
        let outcomes = LoopLocked<[String]>([])
        let group = DispatchGroup()
        let sender = publisher
        let stream = wire
        onOwnThread(group) {
            do {
                try sender.send(stream)
                for _ in 0..<total {
                    guard case .puback = try sender.receive() else { throw TestError("expected PUBACK") }
                }
            } catch {
                outcomes.withLock { $0.append("publisher: \(error)") }
            }
        }
        for (position, subscriber) in subscribers.enumerated() {
            let reader = subscriber
            onOwnThread(group) {
                do {
                    for sequence in 0..<total {
                        let received = try reader.receivePublish().payload.reduce(0) { $0 << 8 | Int($1) }
                        guard received == sequence else { throw TestError("got \(received), expected \(sequence)") }
                    }
                } catch {
                    outcomes.withLock { $0.append("subscriber \(position): \(error)") }
                }
            }
        }
        XCTAssertEqual(group.wait(timeout: .now() + 60), .success)
        XCTAssertEqual(outcomes.withLock { $0 }, [])
        XCTAssertNotNil(running.log.waitForLine { $0.contains("is full; holding back the clients publishing to it") })
    }

    /// [MQTT-4.6.0-6] one publisher's stream reaches subscribers on every loop complete and in order.
    func testOrderedQoS1StreamReachesSubscribersOnEveryLoop() throws {
        let running = try RunningServer()
        defer { running.stop() }
        try assertOrderedStream(running)
    }

    /// With flow-control marks so low that every read crosses them, loops pause reading after each batch for
    /// the core and resume when it has caught up: nothing is lost, reordered or stuck.
    func testReadsPauseWhileTheCoreIsBehindAndResume() throws {
        let running = try RunningServer {
            $0.coreBacklogHighWater = 1
            $0.coreBacklogLowWater = 0
        }
        defer { running.stop() }
        try assertOrderedStream(running)
    }

    /// Subscribers on all three loops and a 2000-message QoS 1 stream, sent 100 PUBLISHes per write.
    private func assertOrderedStream(_ running: RunningServer) throws {
        var subscribers: [RawClient] = []
        var loops: Set<Int> = []
        for _ in 0..<3 {
            let (client, loop) = try running.client(onLoopOtherThan: loops)
            loops.insert(loop)
            try client.connect("sub\(loop)")
            try client.subscribe("seq", qos: .atLeastOnce)
            subscribers.append(client)
        }
        XCTAssertEqual(loops, [0, 1, 2])
        let publisher = try RawClient(port: running.port)
        try publisher.connect("pub")

        let total = 2000
        let chunk = 100
        var expected = Array(repeating: 0, count: subscribers.count)
        for start in stride(from: 0, to: total, by: chunk) {
            // A whole chunk in one write, so the broker decodes many PUBLISHes per read.
            var wire: [UInt8] = []
            for sequence in start..<(start + chunk) {
                let publish = Publish(
                    topic: TopicName("seq")!, payload: bytes(sequence), qos: .atLeastOnce,
                    packetID: PacketID(UInt16(sequence + 1)))
                Packet.publish(publish).encode(into: &wire)
            }
            try publisher.send(wire)
            for sequence in start..<(start + chunk) {
                guard case .puback(let id) = try publisher.receive() else { return XCTFail("expected PUBACK") }
                XCTAssertEqual(Int(id.rawValue), sequence + 1)
            }
            for (position, subscriber) in subscribers.enumerated() {
                for _ in 0..<chunk {
                    let received = number(try subscriber.receivePublish().payload)
                    XCTAssertEqual(received, expected[position], "subscriber \(position) out of order")
                    expected[position] = received + 1
                }
            }
        }
        XCTAssertEqual(expected, [total, total, total])
    }

    /// [MQTT-3.1.4-2] a CONNECT with a connected client id closes the old connection, across loops, and a
    /// persistent session moves to the new connection.
    func testSessionTakeoverAcrossLoops() throws {
        let running = try RunningServer()
        defer { running.stop() }
        let (first, firstLoop) = try running.client(onLoopOtherThan: [])
        XCTAssertEqual(try first.connect("twin", clean: false).sessionPresent, false)
        try first.subscribe("to/twin", qos: .atLeastOnce)

        let (second, _) = try running.client(onLoopOtherThan: [firstLoop])
        XCTAssertEqual(try second.connect("twin", clean: false), ConnAck(sessionPresent: true, returnCode: .accepted))
        XCTAssertEqual(try first.readUntilClosed(), [])

        let publisher = try RawClient(port: running.port)
        try publisher.connect("pub")
        try publisher.publish("to/twin", [42], qos: .atLeastOnce, id: 1)
        XCTAssertEqual(try second.receivePublish().payload, [42])
        try second.ping()
    }

    /// A subscriber that vanishes while QoS 1 deliveries to it are queued on its loop leaves the broker intact.
    func testSubscriberVanishingMidStreamDisturbsNobodyElse() throws {
        let running = try RunningServer()
        defer { running.stop() }
        let (leaver, leaverLoop) = try running.client(onLoopOtherThan: [])
        try leaver.connect("leaver")
        try leaver.subscribe("flood", qos: .atLeastOnce)
        let (publisher, _) = try running.client(onLoopOtherThan: [leaverLoop])
        try publisher.connect("pub")
        let watcher = try RawClient(port: running.port)
        try watcher.connect("watcher")
        try watcher.subscribe("flood", qos: .atMostOnce)

        let total = 500
        var wire: [UInt8] = []
        for sequence in 0..<total {
            let publish = Publish(
                topic: TopicName("flood")!, payload: bytes(sequence), qos: .atLeastOnce,
                packetID: PacketID(UInt16(sequence + 1)))
            Packet.publish(publish).encode(into: &wire)
        }
        try publisher.send(wire)
        for _ in 0..<5 { _ = try leaver.receivePublish() }
        leaver.close()

        for sequence in 0..<total {
            guard case .puback(let id) = try publisher.receive() else { return XCTFail("expected PUBACK") }
            XCTAssertEqual(Int(id.rawValue), sequence + 1)
        }
        for sequence in 0..<total {
            XCTAssertEqual(number(try watcher.receivePublish().payload), sequence)
        }
        XCTAssertTrue(
            eventually(seconds: 10) { running.server.connectionCount == 2 }, "the leaver's connection was not released")
        let late = try RawClient(port: running.port)
        try late.connect("late")
        try late.ping()
    }

    /// [MQTT-3.1.0-1] a first packet other than CONNECT closes the connection without a reply.
    func testFirstPacketOtherThanConnectIsClosedWithoutReply() throws {
        let running = try RunningServer()
        defer { running.stop() }
        let client = try RawClient(port: running.port)
        try client.send([0xC0, 0x00])  // PINGREQ
        XCTAssertEqual(try client.readUntilClosed(), [])
        XCTAssertNotNil(running.log.waitForLine { $0.contains("sent PINGREQ before CONNECT") })
    }

    /// [MQTT-3.1.2-2] an unsupported protocol level gets CONNACK 0x01, then the connection closes.
    func testUnsupportedProtocolLevelGetsConnAckThenClose() throws {
        let running = try RunningServer()
        defer { running.stop() }
        let client = try RawClient(port: running.port)
        let body: [UInt8] = [0, 4] + Array("MQTT".utf8) + [5, 0x02, 0, 60, 0, 1, UInt8(ascii: "c")]
        try client.send([0x10, UInt8(body.count)] + body)
        XCTAssertEqual(try client.readUntilClosed(), [0x20, 0x02, 0x00, 0x01])
    }

    /// A 5-byte remaining length is malformed: that connection closes, before or after CONNECT, and another
    /// client on the same broker keeps working.
    func testFiveByteRemainingLengthClosesOnlyThatConnection() throws {
        let running = try RunningServer()
        defer { running.stop() }
        let survivor = try RawClient(port: running.port)
        try survivor.connect("survivor")
        try survivor.subscribe("still/here", qos: .atMostOnce)

        let malformed: [UInt8] = [0x30, 0xFF, 0xFF, 0xFF, 0xFF, 0x01]
        let early = try RawClient(port: running.port)
        try early.send(malformed)
        XCTAssertEqual(try early.readUntilClosed(), [])

        let late = try RawClient(port: running.port)
        try late.connect("late")
        try late.send(malformed)
        XCTAssertEqual(try late.readUntilClosed(), [])
        XCTAssertNotNil(running.log.waitForLine { $0.hasPrefix("Client late ") && $0.contains("protocol error") })

        try survivor.ping()
        try survivor.publish("still/here", [1])
        XCTAssertEqual(try survivor.receivePublish().payload, [1])
    }

    /// [MQTT-4.8.0-1] a malformed packet after CONNECT counts as a protocol error: the Will is published,
    /// also when the Will's subscriber is on another loop.
    func testMalformedPacketAfterConnectPublishesTheWill() throws {
        let running = try RunningServer()
        defer { running.stop() }
        let (watcher, watcherLoop) = try running.client(onLoopOtherThan: [])
        try watcher.connect("watcher")
        try watcher.subscribe("wills/#", qos: .atLeastOnce)
        let (doomed, _) = try running.client(onLoopOtherThan: [watcherLoop])
        let will = Will(
            topic: TopicName("wills/doomed")!, payload: Array("gone".utf8), qos: .atLeastOnce, retain: false)
        try doomed.connect("doomed", will: will)
        try doomed.send([0x30, 0xFF, 0xFF, 0xFF, 0xFF, 0x01])
        XCTAssertEqual(try doomed.readUntilClosed(), [])
        let received = try watcher.receivePublish()
        XCTAssertEqual(received.topic.description, "wills/doomed")
        XCTAssertEqual(received.payload, Array("gone".utf8))
    }

    func testConnectTimeoutClosesASilentSocket() throws {
        let running = try RunningServer(config: "connect_timeout 1\n")
        defer { running.stop() }
        let silent = try RawClient(port: running.port)
        XCTAssertEqual(try silent.readUntilClosed(), [])
        XCTAssertNotNil(running.log.waitForLine { $0.contains("sent no CONNECT within 1 seconds") })
    }

    func testMaxConnectionsClosesConnectionsOverTheLimit() throws {
        let running = try RunningServer(config: "max_connections 1\n")
        defer { running.stop() }
        let first = try RawClient(port: running.port)
        try first.connect("first")
        let second = try RawClient(port: running.port)
        XCTAssertEqual(try second.readUntilClosed(), [])
        try first.ping()
        XCTAssertNotNil(running.log.waitForLine { $0.contains("denied: max_connections (1) reached") })
    }

    func testOversizedPacketIsRefusedFromItsHeader() throws {
        let running = try RunningServer(config: "max_packet_size 64\n")
        defer { running.stop() }
        let client = try RawClient(port: running.port)
        try client.connect("big")
        // Only the fixed header of a 1000-byte PUBLISH: the limit is enforced before the body arrives.
        try client.send([0x30, 0xE8, 0x07])
        XCTAssertEqual(try client.readUntilClosed(), [])
    }

    /// Shutdown closes every connection on every loop and the threads end.
    func testStopClosesConnectionsOnEveryLoop() throws {
        let running = try RunningServer()
        var clients: [RawClient] = []
        var loops: Set<Int> = []
        for index in 0..<3 {
            let (client, loop) = try running.client(onLoopOtherThan: loops)
            loops.insert(loop)
            try client.connect("c\(index)")
            clients.append(client)
        }
        running.stop()
        for client in clients { XCTAssertEqual(try client.readUntilClosed(), []) }
        XCTAssertEqual(running.server.connectionCount, 0)
        XCTAssertEqual(running.log.all.filter { $0.hasSuffix("disconnected: server shutting down.") }.count, 3)
    }
}

/// Runs a blocking client on a thread of its own, as part of `group`. (GCD's pool, sized to the cores, hands a
/// blocked worker's successor a thread only after a delay, which stalled these tests for seconds.)
private func onOwnThread(_ group: DispatchGroup, _ body: @escaping @Sendable () -> Void) {
    group.enter()
    Thread {
        body()
        group.leave()
    }.start()
}
