// Black-box tests of behaviours mosquitto's users and tooling rely on where the 3.1.1 text leaves a choice:
// message_size_limit, an acknowledgement of the wrong kind, retain_available false, and where a PUBACK goes
// relative to the message's own deliveries. They run against mosquitto too (`CONFORMANCE_BROKER=mosquitto`), but for
// the PUBACK order, where Midge chose otherwise.

import Foundation
import MQTTCodec
import MQTTTestSupport
import XCTest

final class MosquittoEdgeTests: ConformanceCase {
    override class var sharedConfig: [String] { ["message_size_limit 1000"] }

    func test_edge_messageSizeLimitAcknowledgesDropsAndKeepsTheConnection() throws {
        let topic = uniqueTopic("size")
        let watcher = try connect(uniqueID("watch"))
        try subscribe(watcher, topic)
        let publisher = try connect(uniqueID("big"))
        try publisher.send(
            Wire.publish(topic: Array(topic.utf8), payload: [UInt8](repeating: 0x62, count: 2000), qos: 1, id: 5))
        XCTAssertEqual(try publisher.readPacket(), .puback(try packetID(5)), "acknowledged although dropped")
        try publish(publisher, topic, "fits", qos: 1, id: 6)
        let received = try watcher.readPublish()
        XCTAssertEqual(received.payloadString, "fits", "the oversized message was not routed; the connection stayed")
    }

    func test_edge_wrongAcknowledgementKindClosesTheConnection() throws {
        // PUBREC for a QoS 1 delivery: mosquitto answers with a protocol error and closes.
        let topic = uniqueTopic("ack")
        let subscriber = try connect(uniqueID("sub"))
        try subscribe(subscriber, topic, qos: 1)
        let publisher = try connect(uniqueID("pub"))
        try publish(publisher, topic, "one", qos: 1)
        let delivery = try subscriber.readPublish()
        try subscriber.send(Wire.pubrec(delivery.id))
        XCTAssertNoThrow(try subscriber.expectClosed(timeout: 5))
    }

    func test_edge_pubackComesBeforeTheMessagesOwnDelivery() throws {
        // A client subscribed to its own topic sees its PUBACK, then its message: the publisher's acknowledgement is
        // not held behind fan-out. Debian's mosquitto 2.0.11 writes the delivery first; the 3.1.1 text allows both.
        try skipOnMosquitto("mosquitto 2.0.11 writes the echoed delivery before the PUBACK")
        let topic = uniqueTopic("echo")
        let client = try connect(uniqueID("echo"))
        try subscribe(client, topic, qos: 1)
        try client.send(Wire.publish(topic, "me", qos: 1, id: 9))
        XCTAssertEqual(try client.readPacket(), .puback(try packetID(9)))
        let echoed = try client.readPublish()
        XCTAssertEqual(echoed.payloadString, "me")
        try client.send(Wire.puback(echoed.id))
    }

    func test_edge_retainUnavailableClosesARetainedPublish() throws {
        let isolated = try startBroker(config: ["retain_available false"])
        let publisher = try connect(uniqueID("pub"), to: isolated)
        try publish(publisher, uniqueTopic("plain"), "not retained")
        try publisher.send(Wire.publish(uniqueTopic("kept"), "retained", retain: true))
        XCTAssertNoThrow(try publisher.expectClosed(timeout: 5))
    }
}
