// Black-box tests of MQTT over WebSocket (§6) against a `protocol websockets` listener.

import Foundation
import MQTTCodec
import MQTTTestSupport
import XCTest

final class WebSocketTests: ConformanceCase {
    /// The port of a `protocol websockets` listener added next to the broker's TCP listener (mosquitto 2.0
    /// refuses to start with a WebSocket listener alone).
    private func webSocketPort() throws -> UInt16 {
        let port = try BrokerProcess.freePort()
        _ = try startBroker(config: ["listener \(port) 127.0.0.1", "protocol websockets"])
        return port
    }

    func test_MQTT_6_0_0_1_nonBinaryFrameCloses() throws {
        // A CONNECT carried in a WebSocket text frame closes the connection.
        let client = try WebSocketClient(port: try webSocketPort())
        XCTAssertEqual(client.statusCode, 101)
        try client.sendFrame(opcode: 0x1, Wire.connect(uniqueID()))
        try client.expectClosed()
    }

    func test_MQTT_6_0_0_2_framesNeedNotMatchPackets() throws {
        // A CONNECT split over three WebSocket frames and several packets in one frame are all processed.
        let client = try WebSocketClient(port: try webSocketPort())
        XCTAssertEqual(client.statusCode, 101)
        let connect = Wire.connect(uniqueID())
        let third = connect.count / 3
        try client.sendFrame(opcode: 0x2, Array(connect[0..<third]), fin: false)
        try client.sendFrame(opcode: 0x0, Array(connect[third..<(2 * third)]), fin: false)
        try client.sendFrame(opcode: 0x0, Array(connect[(2 * third)...]), fin: true)
        XCTAssertEqual(try client.readPacket(), .connack(ConnAck(sessionPresent: false, returnCode: .accepted)))
        let topic = uniqueTopic()
        try client.sendBinary(Wire.subscribe(id: 1, topic, qos: 0) + Wire.publish(topic, "echo") + Wire.pingreq)
        XCTAssertEqual(
            try client.readPacket(), .suback(SubAck(packetID: try packetID(1), returnCodes: [.granted(.atMostOnce)])))
        let echo = try XCTUnwrap(try client.readPacket().publish)
        XCTAssertEqual(echo.payloadString, "echo")
        XCTAssertEqual(try client.readPacket(), .pingresp)
        // And one MQTT packet split across two frames in the other direction of the split.
        let ping = Wire.pingreq
        try client.sendBinary([ping[0]])
        try client.sendBinary([ping[1]])
        XCTAssertEqual(try client.readPacket(), .pingresp)
    }

    func test_MQTT_6_0_0_4_serverSelectsMQTTSubprotocol() throws {
        // A handshake offering `mqtt` gets 101 with `Sec-WebSocket-Protocol: mqtt` and the RFC 6455 accept key.
        let client = try WebSocketClient(port: try webSocketPort(), subprotocol: "mqtt")
        XCTAssertEqual(client.statusCode, 101, client.responseHead)
        XCTAssertEqual(client.header("Sec-WebSocket-Protocol"), "mqtt", client.responseHead)
        XCTAssertEqual(client.header("Sec-WebSocket-Accept"), WebSocketClient.sampleAccept, client.responseHead)
    }
}
