// Black-box tests of CONNECT / CONNACK handling (§3.1, §3.2, §3.12, §3.14) and the connect timeout.

import Foundation
import MQTTCodec
import MQTTTestSupport
import XCTest

final class ConnectTests: ConformanceCase {
    func test_MQTT_3_1_0_2_secondConnectIsViolation() throws {
        // A second CONNECT on a connection closes it and publishes that client's Will.
        let watcher = try connect()
        let willTopic = uniqueTopic("will")
        try subscribe(watcher, willTopic)
        let client = try connect(will: WillSpec(topic: willTopic, payload: Array("gone".utf8)))
        try client.send(Wire.connect(uniqueID()))
        try client.expectClosed()
        try receive(watcher, topic: willTopic, payload: "gone")
    }

    func test_MQTT_3_1_2_1_wrongProtocolNameCloses() throws {
        // A CONNECT naming protocol `MQTX` at level 4 is closed without any CONNACK.
        let client = try open()
        try client.send(Wire.connect(clientID: Array(uniqueID().utf8), protocolName: "MQTX", level: 4))
        try client.expectClosed()
    }

    func test_MQTT_3_1_2_2_unsupportedLevelGetsReturnCode1() throws {
        // An unsupported protocol level gets exactly `20 02 00 01`, then EOF (level 5 only on midge).
        // Level 5 is MQTT 5, which mosquitto speaks; it is an unsupported level only for midge.
        var levels: [UInt8] = [2, 6, 255]
        if kind == .midge { levels.append(5) }
        for level in levels {
            let client = try open(name: "level \(level)")
            try client.send(Wire.connect(clientID: Array(uniqueID().utf8), level: level))
            let frame = try XCTUnwrap(client.readFrame(), "level \(level): no CONNACK")
            XCTAssertEqual(frame.bytes, [0x20, 0x02, 0x00, 0x01], "level \(level)")
            try client.expectClosed()
        }
    }

    func test_MQTT_3_1_2_3_reservedConnectFlagCloses() throws {
        // Connect flags with the reserved bit 0 set (0x03) close the connection without a CONNACK.
        let client = try open()
        try client.send(Wire.connect(clientID: Array(uniqueID().utf8), flags: 0x03))
        try client.expectClosed()
    }

    func test_MQTT_3_1_3_5_acceptsShortAlphanumericIDs() throws {
        // Client ids `a`, 23 x `Z` and `0aZ9` are all accepted with return code 0.
        for id in ["a", String(repeating: "Z", count: 23), "0aZ9"] {
            let client = try RawClient(port: try broker.port, name: id)
            try client.send(Wire.connect(id))
            let frame = try XCTUnwrap(client.readFrame(), "id \(id): no CONNACK")
            XCTAssertEqual(frame.bytes, [0x20, 0x02, 0x00, 0x00], "id \(id)")
            disconnect(client)
        }
    }

    func test_MQTT_3_1_3_6_emptyIDsGetUniqueAssignedIDs() throws {
        // Two clients with empty ids and clean session 1 are both accepted, neither is kicked off, both can pub/sub.
        let topic = uniqueTopic()
        let first = try connect("", clean: true)
        let second = try connect("", clean: true)
        try subscribe(first, topic)
        try subscribe(second, topic)
        let publisher = try connect()
        try publish(publisher, topic, "both", qos: 0)
        try receive(first, topic: topic, payload: "both")
        try receive(second, topic: topic, payload: "both")
        try first.sync()
        try second.sync()
    }

    func test_MQTT_3_1_3_8_emptyIDWithPersistentSessionRefused() throws {
        // An empty client id with clean session 0 gets `20 02 00 02` and then the connection ends.
        let client = try open()
        try client.send(Wire.connect("", clean: false))
        let frame = try XCTUnwrap(client.readFrame(), "no CONNACK")
        XCTAssertEqual(frame.bytes, [0x20, 0x02, 0x00, 0x02])
        try client.expectClosed()
    }

    func test_MQTT_3_1_3_9_refusedIDGetsReturnCode2ThenClose() throws {
        // An id the server refuses (here an empty id, switched off by config) gets 0x02 and then EOF.
        let refusing = try startBroker(config: ["allow_zero_length_clientid false"])
        let empty = try open(name: "empty id", to: refusing)
        try empty.send(Wire.connect("", clean: true))
        let frame = try XCTUnwrap(empty.readFrame(), "empty id: no CONNACK")
        XCTAssertEqual(frame.bytes, [0x20, 0x02, 0x00, 0x02], "empty id")
        try empty.expectClosed()
    }

    func test_MQTT_3_1_4_1_truncatedConnectClosesSilently() throws {
        // CONNECTs that break §3.1 (flagged fields missing, extra bytes) close with zero bytes received.
        let id = Array(uniqueID().utf8)
        let cases: [(String, [UInt8])] = [
            // Will flag set but the payload ends after the client id [MQTT-3.1.2-9].
            ("will fields missing", Wire.frame(0x10, Wire.string("MQTT") + [4, 0x06, 0, 60] + Wire.string(id))),
            // User name flag set but no user name [MQTT-3.1.2-19].
            ("user name missing", Wire.frame(0x10, Wire.string("MQTT") + [4, 0x82, 0, 60] + Wire.string(id))),
            // Password flag set but the payload ends after the user name [MQTT-3.1.2-21].
            (
                "password missing",
                Wire.frame(0x10, Wire.string("MQTT") + [4, 0xC2, 0, 60] + Wire.string(id) + Wire.string("u")),
            ),
            // User name flag 0 but a user name string after the client id [MQTT-3.1.2-18].
            (
                "extra field",
                Wire.frame(0x10, Wire.string("MQTT") + [4, 0x02, 0, 60] + Wire.string(id) + Wire.string("u"))
            ),
            // Password flag 0 but password bytes after the user name [MQTT-3.1.2-20].
            (
                "extra password",
                Wire.frame(
                    0x10,
                    Wire.string("MQTT") + [4, 0x82, 0, 60] + Wire.string(id) + Wire.string("u") + Wire.string("p")),
            ),
            // No client id length bytes at all [MQTT-3.1.3-3].
            ("empty payload", Wire.frame(0x10, Wire.string("MQTT") + [4, 0x02, 0, 60])),
            // Client id length says 10 but only 3 bytes follow.
            ("short client id", Wire.frame(0x10, Wire.string("MQTT") + [4, 0x02, 0, 60, 0, 10] + Array("abc".utf8))),
            // Password flag without the user name flag [MQTT-3.1.2-22].
            (
                "password without user name",
                Wire.frame(0x10, Wire.string("MQTT") + [4, 0x42, 0, 60] + Wire.string(id) + Wire.string("p")),
            ),
            // Will flag 0 with will QoS 1 [MQTT-3.1.2-13] and with will retain [MQTT-3.1.2-15].
            ("will QoS without will", Wire.frame(0x10, Wire.string("MQTT") + [4, 0x0A, 0, 60] + Wire.string(id))),
            ("will retain without will", Wire.frame(0x10, Wire.string("MQTT") + [4, 0x22, 0, 60] + Wire.string(id))),
            // Will QoS 3 [MQTT-3.1.2-14].
            (
                "will QoS 3",
                Wire.frame(
                    0x10,
                    Wire.string("MQTT") + [4, 0x1E, 0, 60] + Wire.string(id) + Wire.string("w") + Wire.string("x")),
            ),
        ]
        for (label, bytes) in cases {
            let client = try open(name: label)
            try client.send(bytes)
            XCTAssertNoThrow(try client.expectClosed(), label)
        }
    }

    func test_MQTT_3_1_4_2_sameClientIDTakesOver() throws {
        // A second connection with an id already connected closes the first; the second gets CONNACK 0.
        let watcher = try connect()
        let willTopic = uniqueTopic("will")
        try subscribe(watcher, willTopic)
        let id = uniqueID()
        let first = try connect(id, will: WillSpec(topic: willTopic, payload: Array("first".utf8)))
        let second = try RawClient(port: try broker.port, name: "second")
        try second.send(Wire.connect(id))
        let connack = try second.readConnAck()
        XCTAssertEqual(connack.returnCode, .accepted)
        try first.expectClosed()
        // The first connection ended without DISCONNECT, so its Will is due [MQTT-3.1.2-8].
        try receive(watcher, topic: willTopic, payload: "first")
        try second.sync()
    }

    func test_MQTT_3_1_4_4_validConnectGetsConnAck0() throws {
        // A minimal valid CONNECT is answered with exactly `20 02 00 00`.
        let client = try open()
        try client.send(Wire.connect(uniqueID()))
        let frame = try XCTUnwrap(client.readFrame())
        XCTAssertEqual(frame.bytes, [0x20, 0x02, 0x00, 0x00])
    }

    func test_MQTT_3_2_0_1_connAckIsFirstPacket() throws {
        // CONNECT and SUBSCRIBE to a topic holding a retained message, in one write: CONNACK comes first.
        let topic = uniqueTopic()
        let publisher = try connect()
        try publish(publisher, topic, "kept", qos: 1, retain: true)
        let client = try open()
        try client.send(Wire.connect(uniqueID()), Wire.subscribe(id: 5, topic, qos: 1))
        let first = try XCTUnwrap(client.readFrame(), "nothing received")
        XCTAssertEqual(first.bytes, [0x20, 0x02, 0x00, 0x00], "first packet must be CONNACK")
        XCTAssertEqual(
            try client.readPacket(), .suback(SubAck(packetID: try packetID(5), returnCodes: [.granted(.atLeastOnce)])))
        try receive(client, topic: topic, payload: "kept", qos: 1)
        try publish(publisher, topic, "", qos: 0, retain: true)
    }

    func test_MQTT_3_2_2_6_noFittingCodeClosesWithoutConnAck() throws {
        // Errors outside return codes 1-5 (here a malformed CONNECT) close without any CONNACK.
        let client = try open()
        // The protocol name length runs past the end of the packet.
        try client.send([0x10, 0x04, 0x00, 0x09, 0x4D, 0x51])
        try client.expectClosed()
        // A CONNECT whose client id is not valid UTF-8 is malformed, not an identifier refusal (no 0x02).
        let second = try open(name: "bad UTF-8 id")
        try second.send(Wire.connect(clientID: [0x61, 0xC0, 0xAF]))
        try second.expectClosed()
    }

    func test_MQTT_3_12_4_1_pingReqGetsPingResp() throws {
        // Every PINGREQ is answered with `D0 00`, also two PINGREQs in one write.
        let client = try connect()
        try client.send(Wire.pingreq)
        XCTAssertEqual(try XCTUnwrap(client.readFrame()).bytes, [0xD0, 0x00])
        try client.send(Wire.pingreq, Wire.pingreq)
        XCTAssertEqual(try XCTUnwrap(client.readFrame()).bytes, [0xD0, 0x00])
        XCTAssertEqual(try XCTUnwrap(client.readFrame()).bytes, [0xD0, 0x00])
    }

    func test_untagged_3_14_4_brokerClosesAfterDisconnect() throws {
        // After DISCONNECT the broker closes the socket (§3.14.4 SHOULD); a PUBLISH written after it is not forwarded.
        let topic = uniqueTopic()
        let subscriber = try connect()
        try subscribe(subscriber, topic)
        let client = try connect()
        try client.send(Wire.disconnect, Wire.publish(topic, "after"))
        try client.expectClosed()
        try subscriber.expectNothing(for: 0.5)
    }

    func test_untagged_3_1_4_connectTimeoutClosesSilentSocket() throws {
        // A socket that never sends CONNECT is closed after `connect_timeout` (§3.1.4 step 1, slowloris defence).
        try skipOnMosquitto("mosquitto 2.0 has no connect_timeout setting")
        let timed = try startBroker(config: ["connect_timeout 2"])
        let client = try open(to: timed)
        try client.expectClosed(timeout: 10)
    }
}
