// Connections from mosquitto bridges (`try_private true`, their default): the protocol level's top bit says "I am
// a broker" (0x83 for MQTT 3.1, 0x84 for 3.1.1). Such a connection is accepted, is not sent back what it published
// (two brokers bridged both ways would otherwise pass each message between them forever), and gets RETAIN as
// published, so the far broker stores retained messages too. They run against mosquitto too.

import Foundation
import MQTTCodec
import MQTTTestSupport
import XCTest

final class BridgeProtocolTests: ConformanceCase {
    /// Opens a connection and completes a bridge's CONNECT (`level` with the top bit) with return code 0.
    private func connectBridge(_ clientID: String, protocolName: String = "MQTT", level: UInt8 = 0x84) throws
        -> RawClient
    {
        let client = try open(name: clientID)
        try client.send(Wire.connect(clientID: Array(clientID.utf8), protocolName: protocolName, level: level))
        let connack = try client.readConnAck()
        guard connack.returnCode == .accepted else {
            throw TestError("\(clientID): CONNACK return code \(connack.returnCode) at level \(level)")
        }
        return client
    }

    func test_bridge_levels0x83And0x84AreAccepted() throws {
        for (name, level) in [("MQIsdp", UInt8(0x83)), ("MQTT", 0x84)] {
            let bridge = try connectBridge(uniqueID("bridge"), protocolName: name, level: level)
            try bridge.sync()
            disconnect(bridge)
        }
    }

    func test_bridge_theTopBitOnAnotherLevelGetsReturnCode1() throws {
        // 0x85 is MQTT 5 from a bridge, which mosquitto speaks; an unsupported level only for midge.
        var cases: [(String, UInt8)] = [("MQTT", 0x83), ("MQTT", 0x82), ("MQIsdp", 0x84), ("MQIsdp", 0x82)]
        if kind == .midge { cases.append(("MQTT", 0x85)) }
        for (name, level) in cases {
            let client = try open(name: "\(name) level \(level)")
            try client.send(Wire.connect(clientID: Array(uniqueID().utf8), protocolName: name, level: level))
            let frame = try XCTUnwrap(client.readFrame(), "\(name) level \(level): no CONNACK")
            XCTAssertEqual(frame.bytes, [0x20, 0x02, 0x00, 0x01], "\(name) level \(level)")
            try client.expectClosed()
        }
    }

    func test_bridge_isNotSentWhatItPublishedAndOthersAre() throws {
        let prefix = uniqueTopic("echo")
        let bridge = try connectBridge(uniqueID("bridge"))
        try subscribe(bridge, prefix + "/#", qos: 2)
        let watcher = try connect(uniqueID("watch"))
        try subscribe(watcher, prefix + "/#", qos: 2)
        for qos: UInt8 in [0, 1, 2] {
            try publish(bridge, "\(prefix)/\(qos)", "from the bridge at QoS \(qos)", qos: qos, id: UInt16(qos) + 1)
        }
        let received = try watcher.collectPublishes(count: 3)
        XCTAssertEqual(received.map(\.payloadString).sorted(), (0...2).map { "from the bridge at QoS \($0)" })
        XCTAssertEqual(try bridge.sync(), [], "the bridge got its own messages back")
        try bridge.expectNothing(for: 0.3)

        // What an ordinary client publishes still reaches the bridge, and the client itself (3.1.1 has no no-local).
        let client = try connect(uniqueID("client"))
        try subscribe(client, prefix + "/back", qos: 0)
        try client.send(Wire.publish(prefix + "/back", "to the bridge"))
        XCTAssertEqual(try client.sync().map(\.payloadString), ["to the bridge"])
        XCTAssertEqual(try bridge.collectPublishes(count: 1).map(\.payloadString), ["to the bridge"])
    }

    func test_bridge_getsRetainAsPublished() throws {
        let topic = uniqueTopic("retain")
        let bridge = try connectBridge(uniqueID("bridge"))
        try subscribe(bridge, topic, qos: 1)
        let watcher = try connect(uniqueID("watch"))
        try subscribe(watcher, topic, qos: 1)
        let publisher = try connect(uniqueID("pub"))
        try publish(publisher, topic, "kept", qos: 1, retain: true)
        try publish(publisher, topic, "live", qos: 1, id: 2)
        let toBridge = try bridge.collectPublishes(count: 2)
        XCTAssertEqual(toBridge.map(\.payloadString), ["kept", "live"])
        XCTAssertEqual(toBridge.map(\.retain), [true, false], "a bridge gets RETAIN as published")
        let toWatcher = try watcher.collectPublishes(count: 2)
        XCTAssertEqual(toWatcher.map(\.retain), [false, false], "[MQTT-3.3.1-9] for ordinary clients")
        try publish(publisher, topic, "", qos: 1, retain: true, id: 3)
    }
}
