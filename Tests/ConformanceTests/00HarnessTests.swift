// Checks of the suite's own hand-made packet bytes against the codec, so a broker failure is never a harness bug.

import MQTTCodec
import MQTTTestSupport
import XCTest

final class HarnessTests: XCTestCase {
    private func encoded(_ packet: Packet) -> [UInt8] {
        var buffer: [UInt8] = []
        packet.encode(into: &buffer)
        return buffer
    }

    private func id(_ raw: UInt16) throws -> PacketID {
        try XCTUnwrap(PacketID(raw))
    }

    func test_handMadeBytesMatchCodecEncoder() throws {
        // Every valid packet the tests build by hand is byte-identical to the codec's encoding of it.
        let topic = try XCTUnwrap(TopicName("a/b"))
        let will = Will(topic: topic, payload: Array("w".utf8), qos: .atLeastOnce, retain: true)
        XCTAssertEqual(
            Wire.connect(
                "id", clean: false, keepAlive: 30,
                will: WillSpec(
                    topic: "a/b", payload: Array("w".utf8),
                    qos: 1, retain: true), username: "u", password: "p"),
            encoded(
                .connect(
                    Connect(
                        cleanSession: false, keepAlive: 30, clientID: "id", will: will, username: "u",
                        password: Array("p".utf8)))))
        XCTAssertEqual(Wire.connect("x"), encoded(.connect(Connect(clientID: "x"))))
        XCTAssertEqual(
            Wire.publish("a/b", "hi", qos: 2, retain: true, dup: true, id: 7),
            encoded(
                .publish(
                    Publish(
                        topic: topic, payload: Array("hi".utf8), qos: .exactlyOnce, retain: true,
                        dup: true, packetID: try id(7)))))
        XCTAssertEqual(Wire.publish("a/b", "hi"), encoded(.publish(Publish(topic: topic, payload: Array("hi".utf8)))))
        XCTAssertEqual(Wire.puback(0x1234), encoded(.puback(try id(0x1234))))
        XCTAssertEqual(Wire.pubrec(2), encoded(.pubrec(try id(2))))
        XCTAssertEqual(Wire.pubrel(3), encoded(.pubrel(try id(3))))
        XCTAssertEqual(Wire.pubcomp(4), encoded(.pubcomp(try id(4))))
        let filter = try XCTUnwrap(TopicFilter("a/+"))
        XCTAssertEqual(
            Wire.subscribe(id: 9, "a/+", qos: 1),
            encoded(
                .subscribe(
                    Subscribe(
                        packetID: try id(9),
                        requests: [
                            SubscriptionRequest(
                                filter: filter,
                                qos: .atLeastOnce)
                        ]))))
        XCTAssertEqual(
            Wire.unsubscribe(id: 10, "a/+"), encoded(.unsubscribe(Unsubscribe(packetID: try id(10), filters: [filter])))
        )
        XCTAssertEqual(Wire.pingreq, encoded(.pingreq))
        XCTAssertEqual(Wire.disconnect, encoded(.disconnect))
    }

    func test_frameSlicingAndDecoding() throws {
        // Frames are sliced at their remaining length (also 2-byte lengths) and only server packets decode.
        let long = encoded(
            .publish(
                Publish(
                    topic: try XCTUnwrap(TopicName("t")),
                    payload: Array(
                        repeating: 1,
                        count: 300))))
        let stream = long + [0xD0, 0x00] + [0x90]
        let first = try XCTUnwrap(try Frame.slice(from: stream))
        XCTAssertEqual(first.bytes, long)
        XCTAssertEqual(first.body.count, 303)
        let second = try XCTUnwrap(try Frame.slice(from: Array(stream.dropFirst(long.count))))
        XCTAssertEqual(try second.decode(), .pingresp)
        XCTAssertNil(try Frame.slice(from: [0x90]))
        XCTAssertThrowsError(try Frame.slice(from: [0x30, 0xFF, 0xFF, 0xFF, 0xFF, 0x01]))
        XCTAssertThrowsError(try XCTUnwrap(try Frame.slice(from: Wire.pingreq)).decode(), "PINGREQ is a client packet")
        XCTAssertThrowsError(try XCTUnwrap(try Frame.slice(from: [0x62, 0x02, 0x00, 0x00])).decode(), "id 0")
    }
}
