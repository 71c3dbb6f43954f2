// Two brokers in this process joined by a bridge over loopback: topics cross each way with their QoS and RETAIN,
// nothing comes back to where it was published, acknowledgements wait for the other broker, messages published
// while the remote is down cross once it is back, and the notification topic says 1 and 0 on both sides.
import Foundation
import MQTTCodec
import MQTTTestSupport
import MidgeCore
import XCTest

@testable import MidgeServer

final class BridgeLoopbackTests: XCTestCase {
    private func bridged(to remote: RunningServer, _ lines: String, threads: Int = 2) throws -> RunningServer {
        try RunningServer(
            threads: threads,
            config: "connection test\naddress 127.0.0.1:\(remote.port)\nremote_clientid edge\nrestart_timeout 1\n"
                + lines)
    }

    private func client(_ server: RunningServer, _ id: String) throws -> RawClient {
        let client = try RawClient(port: server.port)
        XCTAssertEqual(try client.connect(id).returnCode, .accepted)
        return client
    }

    /// A remote broker that is down, but where `far` already has a persistent session subscribed to `filter`: what
    /// arrives once it is back waits for `far` whatever the order of their reconnections. Returns the port and the
    /// configuration that brings it back.
    private func remoteThatIsDown(subscribing filter: String, store: String) throws -> (port: UInt16, config: String) {
        let config = "persistence true\npersistence_location \(store)/\n"
        let first = try RunningServer(config: config)
        let far = try RawClient(port: first.port)
        XCTAssertEqual(try far.connect("far", clean: false).returnCode, .accepted)
        try far.subscribe(filter, qos: .atLeastOnce)
        far.close()
        first.stop()
        return (first.port, config + "listener \(first.port) 127.0.0.1\n")
    }

    private func temporaryDirectory(_ name: String) -> String {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("\(name)-\(getpid())").path
        try? FileManager.default.removeItem(atPath: path)
        return path
    }

    /// A remote broker and a bridging one whose bridge has connected to it; stop both when done.
    private func connectedPair(_ lines: String) throws -> (remote: RunningServer, edge: RunningServer) {
        let remote = try RunningServer()
        let edge: RunningServer
        do {
            edge = try bridged(to: remote, lines)
            try waitConnected(edge)
        } catch {
            remote.stop()
            throw error
        }
        return (remote, edge)
    }

    /// Publishes `count` QoS 1 messages `prefix/0`, `prefix/1`, … and waits for each PUBACK.
    private func publishAcknowledged(_ publisher: RawClient, _ prefix: String, count: Int) throws {
        for index in 0..<count {
            try publisher.publish("\(prefix)/\(index)", [UInt8(index)], qos: .atLeastOnce, id: UInt16(index + 1))
            guard case .puback = try publisher.receive() else { throw TestError("expected PUBACK") }
        }
    }

    /// Waits for the bridge's "connected" log line on the bridging broker.
    private func waitConnected(_ server: RunningServer) throws {
        guard server.log.waitForLine(where: { $0.contains("Bridge test connected") }) != nil else {
            throw TestError("the bridge did not connect")
        }
    }

    func testTopicsCrossEachWayWithTheirQoSAndAcknowledgementsWaitForTheRemote() throws {
        let remote = try RunningServer()
        defer { remote.stop() }
        let remoteSubscriber = try client(remote, "far")
        try remoteSubscriber.subscribe("sensors/#", qos: .exactlyOnce)
        let edge = try bridged(to: remote, "topic sensors/# out 1\ntopic cmd/# in 2\n")
        defer { edge.stop() }
        try waitConnected(edge)
        let localSubscriber = try client(edge, "near")
        try localSubscriber.subscribe("cmd/#", qos: .exactlyOnce)

        let publisher = try client(edge, "pub")
        try publisher.publish("sensors/t", Array("21.5".utf8), qos: .exactlyOnce, id: 7)
        var received = try remoteSubscriber.receivePublish()
        XCTAssertEqual(received.topic.description, "sensors/t")
        XCTAssertEqual(received.payload, Array("21.5".utf8))
        XCTAssertEqual(received.qos, .atLeastOnce, "min(QoS 2 published, QoS 1 of the topic line)")
        guard case .pubrec(let id) = try publisher.receive(), id.rawValue == 7 else {
            throw TestError("expected PUBREC 7")
        }

        let commander = try client(remote, "commander")
        try commander.publish("cmd/open", Array("now".utf8), qos: .exactlyOnce, id: 3)
        guard case .publish(let command) = try localSubscriber.receive() else { throw TestError("expected PUBLISH") }
        XCTAssertEqual(command.topic.description, "cmd/open")
        XCTAssertEqual(command.qos, .exactlyOnce)
        XCTAssertFalse(command.retain)

        // Not carried: no line matches it.
        try publisher.publish("other/x", [1], qos: .atLeastOnce, id: 8)
        try publisher.publish("sensors/sentinel", [2], qos: .atLeastOnce, id: 9)
        received = try remoteSubscriber.receivePublish()
        XCTAssertEqual(received.topic.description, "sensors/sentinel")

        // /metrics counts per bridge: two messages out (sensors/t, the sentinel), one in (cmd/open).
        let metrics = String(decoding: MetricsExposition.render(edge.metrics), as: UTF8.self)
        for line in [
            "midge_bridge_connected{bridge=\"test\"} 1", "midge_bridge_messages_out_total{bridge=\"test\"} 2",
            "midge_bridge_messages_in_total{bridge=\"test\"} 1",
            "midge_bridge_connection_attempts_total{bridge=\"test\"} 1",
            "midge_bridge_reconnects_total{bridge=\"test\"} 0",
        ] {
            XCTAssertTrue(metrics.contains(line), "no \(line) in /metrics")
        }
    }

    func testBothWaysWithPrefixesNothingComesBack() throws {
        let (remote, edge) = try connectedPair("topic # both 1 local/ remote/\n")
        defer {
            edge.stop()
            remote.stop()
        }
        let near = try client(edge, "near")
        try near.subscribe("local/#", qos: .atLeastOnce)
        let far = try client(remote, "far")
        try far.subscribe("remote/#", qos: .atLeastOnce)

        let nearPublisher = try client(edge, "near-pub")
        try nearPublisher.publish("local/a", Array("from edge".utf8), qos: .atLeastOnce, id: 1)
        XCTAssertEqual(try far.receivePublish().topic.description, "remote/a")
        let farPublisher = try client(remote, "far-pub")
        try farPublisher.publish("remote/b", Array("from hub".utf8), qos: .atLeastOnce, id: 1)
        XCTAssertEqual(try near.receivePublish().topic.description, "local/a")
        XCTAssertEqual(try near.receivePublish().topic.description, "local/b")
        XCTAssertEqual(try far.receivePublish().topic.description, "remote/b")
        // A sentinel each way: had anything come back, it would arrive before it.
        try nearPublisher.publish("local/sentinel", [], qos: .atLeastOnce, id: 2)
        try farPublisher.publish("remote/sentinel", [], qos: .atLeastOnce, id: 2)
        XCTAssertEqual(try near.receivePublish().topic.description, "local/sentinel")
        XCTAssertEqual(try near.receivePublish().topic.description, "local/sentinel")
        XCTAssertEqual(try far.receivePublish().topic.description, "remote/sentinel")
        XCTAssertEqual(try far.receivePublish().topic.description, "remote/sentinel")
    }

    func testRetainedMessagesAreRetainedOnTheRemote() throws {
        let (remote, edge) = try connectedPair("topic state/# out 1\n")
        defer {
            edge.stop()
            remote.stop()
        }
        let far = try client(remote, "far")
        try far.subscribe("state/#", qos: .atLeastOnce)
        let publisher = try client(edge, "pub")
        try publisher.send(
            .publish(
                Publish(
                    topic: TopicName("state/door")!, payload: Array("open".utf8), qos: .atLeastOnce,
                    retain: true, packetID: PacketID(1))))
        let live = try far.receivePublish()
        XCTAssertEqual(live.payload, Array("open".utf8))
        XCTAssertFalse(live.retain, "a live delivery to an ordinary client [MQTT-3.3.1-9]")
        let late = try client(remote, "late")
        try late.subscribe("state/#", qos: .atLeastOnce)
        let stored = try late.receivePublish()
        XCTAssertTrue(stored.retain, "the remote stored it: RETAIN crossed as published")
        XCTAssertEqual(stored.payload, Array("open".utf8))
    }

    func testMessagesPublishedWhileTheRemoteIsDownCrossWhenItIsBack() throws {
        let store = temporaryDirectory("bridge-remote-store")
        defer { try? FileManager.default.removeItem(atPath: store) }
        let (port, remoteConfig) = try remoteThatIsDown(subscribing: "queue/#", store: store)
        let edge = try RunningServer(
            threads: 2,
            config: "connection test\naddress 127.0.0.1:\(port)\nremote_clientid edge\nrestart_timeout 1\n"
                + "topic queue/# out 1\n")
        defer { edge.stop() }
        let publisher = try client(edge, "pub")
        try publishAcknowledged(publisher, "queue", count: 5)
        let remote = try RunningServer(config: remoteConfig)
        defer { remote.stop() }
        try waitConnected(edge)
        let far = try RawClient(port: port)
        XCTAssertEqual(try far.connect("far", clean: false).sessionPresent, true)
        let topics = try (0..<5).map { _ in try far.receivePublish().topic.description }
        XCTAssertEqual(topics, (0..<5).map { "queue/\($0)" }, "in order, none lost")
    }

    func testNotificationsSayOneAndZeroOnBothSides() throws {
        let remote = try RunningServer()
        defer { remote.stop() }
        let far = try client(remote, "far")
        try far.subscribe("$SYS/broker/connection/edge/state", qos: .atLeastOnce)
        let edge = try bridged(to: remote, "topic x out 0\n")
        try waitConnected(edge)
        let near = try client(edge, "near")
        try near.subscribe("$SYS/broker/connection/edge/state", qos: .atLeastOnce)
        // "0" first (published at start, as mosquitto does), then "1" once the remote accepted the bridge.
        var state = try near.receivePublish()
        if state.payload == Array("0".utf8) { state = try near.receivePublish() }
        XCTAssertEqual(state.payload, Array("1".utf8))
        let late = try client(edge, "late")
        try late.subscribe("$SYS/broker/connection/edge/state", qos: .atLeastOnce)
        state = try late.receivePublish()
        XCTAssertEqual(state.payload, Array("1".utf8))
        XCTAssertTrue(state.retain)
        state = try far.receivePublish()
        XCTAssertEqual(state.payload, Array("1".utf8))
        // The remote side's "0" is the bridge's Will: it appears when the bridging broker goes away.
        edge.stop()
        state = try far.receivePublish()
        XCTAssertEqual(state.payload, Array("0".utf8))
    }

    func testALazyBridgeConnectsAtItsThresholdAndLeavesWhenIdle() throws {
        let remote = try RunningServer()
        defer { remote.stop() }
        let far = try client(remote, "far")
        try far.subscribe("lazy/#", qos: .atLeastOnce)
        let edge = try bridged(to: remote, "topic lazy/# out 1\nstart_type lazy\nthreshold 3\nidle_timeout 1\n")
        defer { edge.stop() }
        let publisher = try client(edge, "pub")
        try publishAcknowledged(publisher, "lazy", count: 2)
        XCTAssertNil(edge.log.waitForLine(seconds: 1) { $0.contains("Connecting bridge test") }, "below the threshold")
        try publisher.publish("lazy/2", [], qos: .atLeastOnce, id: 3)
        try waitConnected(edge)
        XCTAssertEqual(
            try (0..<3).map { _ in try far.receivePublish().topic.description }, ["lazy/0", "lazy/1", "lazy/2"])
        XCTAssertNotNil(edge.log.waitForLine { $0.contains("Bridge test idle for 1 s: disconnecting.") })
    }

    func testWithoutRoundRobinTheBridgeReturnsToItsMainAddress() throws {
        let main = try RunningServer()
        let mainPort = main.port
        main.stop()
        let backup = try RunningServer()
        defer { backup.stop() }
        let edge = try RunningServer(
            threads: 2,
            config: "connection test\naddresses 127.0.0.1:\(mainPort) 127.0.0.1:\(backup.port)\nrestart_timeout 1\n"
                + "remote_clientid edge\ntopic rr/# out 1\n")
        defer { edge.stop() }
        XCTAssertNotNil(edge.log.waitForLine { $0.contains("Bridge test connected to 127.0.0.1:\(backup.port)") })
        let restarted = try RunningServer(config: "listener \(mainPort) 127.0.0.1\n")
        defer { restarted.stop() }
        XCTAssertNotNil(
            edge.log.waitForLine(seconds: 20) { $0.contains("Bridge test connected to 127.0.0.1:\(mainPort)") },
            "the main address is tried every 5 s while the bridge is elsewhere")
    }

    func testOutOnlyTopicsAreUnsubscribedOnThePersistentRemoteSession() throws {
        let remote = try RunningServer()
        defer { remote.stop() }
        var edge = try bridged(to: remote, "topic flip/# in 1\n")
        try waitConnected(edge)
        edge.stop()
        // The same client id and a persistent remote session: `in` left a subscription there that `out` removes.
        edge = try bridged(to: remote, "topic flip/# out 1\ntopic probe out 1\n")
        defer { edge.stop() }
        try waitConnected(edge)
        let near = try client(edge, "near")
        try near.subscribe("flip/#", qos: .atLeastOnce)
        let far = try client(remote, "far")
        try far.subscribe("probe", qos: .atLeastOnce)
        let farPublisher = try client(remote, "far-pub")
        try farPublisher.publish("flip/x", [1], qos: .atLeastOnce, id: 1)
        let nearPublisher = try client(edge, "near-pub")
        try nearPublisher.publish("probe", [2], qos: .atLeastOnce, id: 1)
        XCTAssertEqual(try far.receivePublish().topic.description, "probe")
        // flip/x would have reached the edge before the probe crossed the other way.
        try nearPublisher.publish("flip/sentinel", [3], qos: .atLeastOnce, id: 2)
        XCTAssertEqual(try near.receivePublish().topic.description, "flip/sentinel")
    }

    func testAnMQTT31BridgeConnectsAsProtocolLevelThreeFromItsBindAddress() throws {
        let (remote, edge) = try connectedPair(
            "topic v31/# out 1\nbridge_protocol_version mqttv31\nbridge_bind_address 127.0.0.2\n")
        defer {
            edge.stop()
            remote.stop()
        }
        XCTAssertNotNil(remote.log.waitForLine { $0.contains("New bridge connected") && $0.contains("as edge (p1") })
        XCTAssertNotNil(remote.log.waitForLine { $0.contains("New connection from 127.0.0.2:") }, "bridge_bind_address")
    }

    func testQueuedMessagesSurviveARestartOfTheBridgingBrokerWhileTheRemoteIsDown() throws {
        let store = temporaryDirectory("bridge-edge-store")
        let remoteStore = temporaryDirectory("bridge-remote-store")
        defer {
            try? FileManager.default.removeItem(atPath: store)
            try? FileManager.default.removeItem(atPath: remoteStore)
        }
        let (port, remoteConfig) = try remoteThatIsDown(subscribing: "durable/#", store: remoteStore)
        let config =
            "persistence true\npersistence_location \(store)/\nconnection test\naddress 127.0.0.1:\(port)\n"
            + "remote_clientid edge\nrestart_timeout 1\ntopic durable/# out 1\n"
        var edge = try RunningServer(threads: 2, config: config)
        let publisher = try client(edge, "pub")
        try publishAcknowledged(publisher, "durable", count: 5)
        edge.stop()
        edge = try RunningServer(threads: 2, config: config)
        defer { edge.stop() }
        let remote = try RunningServer(config: remoteConfig)
        defer { remote.stop() }
        try waitConnected(edge)
        let far = try RawClient(port: port)
        XCTAssertEqual(try far.connect("far", clean: false).sessionPresent, true)
        var topics: [String] = []
        do {
            for _ in 0..<5 { topics.append(try far.receivePublish().topic.description) }
        } catch {
            // What each broker said, for a failure seen once in a loaded CI run and not reproduced since.
            let logs = (edge.log.all.suffix(30) + ["-- remote --"] + remote.log.all.suffix(30)).joined(separator: "\n")
            XCTFail("far got \(topics) then \(error); the edge's and the remote's logs:\n\(logs)")
        }
        XCTAssertEqual(topics, (0..<5).map { "durable/\($0)" }, "acknowledged before the restart, kept on disk")
    }
}
