// The encoders: exact bytes for packets built by hand, appending semantics, and buffer growth.

import MQTTCodec
import XCTest

final class EncoderTests: XCTestCase {
    func testEncodeAppendsAfterWhatIsAlreadyThere() {
        var buffer: [UInt8] = [0xAA, 0xBB]
        Packet.pingreq.encode(into: &buffer)
        Packet.puback(id(0x0102)).encode(into: &buffer)
        XCTAssertEqual(buffer, [0xAA, 0xBB, 0xC0, 0x00, 0x40, 0x02, 0x01, 0x02])
    }

    func testPublishFromPartsEqualsPublishFromAValue() {
        for fixture in PacketFixtures.publish {
            guard case .publish(let publish) = fixture.packet else { continue }
            var buffer: [UInt8] = [0x01]
            Publish.encode(
                topic: publish.topic, payload: publish.payload, qos: publish.qos, retain: publish.retain,
                dup: publish.dup, packetID: publish.packetID, into: &buffer)
            XCTAssertEqual(buffer, [0x01] + fixture.bytes, fixture.name)
        }
    }

    func testTheBrokersOwnPacketsUseTheReservedFlagsOfTable22() {
        // [MQTT-2.2.2-1]: the first byte of every packet the broker emits.
        let firstBytes: [(Packet, UInt8)] = [
            (.connack(ConnAck(sessionPresent: false, returnCode: .accepted)), 0x20),
            (.puback(id(1)), 0x40),
            (.pubrec(id(1)), 0x50),
            (.pubrel(id(1)), 0x62),
            (.pubcomp(id(1)), 0x70),
            (.suback(SubAck(packetID: id(1), returnCodes: [.failure])), 0x90),
            (.unsuback(id(1)), 0xB0),
            (.pingresp, 0xD0),
        ]
        for (packet, firstByte) in firstBytes {
            XCTAssertEqual(encoded(packet).first, firstByte, "\(packet)")
        }
    }

    func testRemainingLengthBoundaries() throws {
        // §2.2.3 Table 2.4: the last value of each width and the first of the next.
        let cases: [(payload: Int, header: [UInt8])] = [
            (0, [0x30, 0x03]),
            (124, [0x30, 0x7F]),  // 127
            (125, [0x30, 0x80, 0x01]),  // 128
            (16_380, [0x30, 0xFF, 0x7F]),  // 16 383
            (16_381, [0x30, 0x80, 0x80, 0x01]),  // 16 384
            (2_097_148, [0x30, 0xFF, 0xFF, 0x7F]),  // 2 097 151
            (2_097_149, [0x30, 0x80, 0x80, 0x80, 0x01]),  // 2 097 152
        ]
        for item in cases {
            let packet = Packet.publish(Publish(topic: topic("t"), payload: [UInt8](repeating: 0, count: item.payload)))
            let bytes = encoded(packet)
            XCTAssertEqual(Array(bytes.prefix(item.header.count)), item.header, "payload \(item.payload)")
            XCTAssertEqual(bytes.count, item.header.count + 3 + item.payload)
            let decoded = try XCTUnwrap(try decodeFront(bytes).get(), "payload \(item.payload)")
            XCTAssertEqual(decoded.packet, packet)
            XCTAssertEqual(decoded.consumed, bytes.count)
        }
    }

    func testTheLargestRemainingLengthIsReadFromTheHeader() {
        // 268 435 455 = FF FF FF 7F: accepted by the default limit, so only the body is missing.
        XCTAssertEqual(try decodeFront([0x30, 0xFF, 0xFF, 0xFF, 0x7F]).get()?.consumed, nil)
        XCTAssertEqual(
            decodeFront([0x30, 0xFF, 0xFF, 0xFF, 0x7F], with: FrameDecoder(maxRemainingLength: 268_435_454)).failure,
            .packetTooLarge(size: 268_435_455, limit: 268_435_454))
    }

    func testManyPacketsAppendedToOneBufferGrowItGeometrically() {
        // Appending must not reallocate to the exact size each time: that would copy the buffer per packet.
        var buffer: [UInt8] = []
        var reallocations = 0
        var capacity = buffer.capacity
        let name = topic("sensors/building-1/floor-7/room-42/temperature")
        let payload = [UInt8](repeating: 0x35, count: 64)
        for index in 1...10_000 {
            Publish.encode(
                topic: name, payload: payload, qos: .atLeastOnce, retain: false, dup: false,
                packetID: id(UInt16(index)), into: &buffer)
            if buffer.capacity != capacity {
                reallocations += 1
                capacity = buffer.capacity
            }
        }
        XCTAssertEqual(buffer.count, 10_000 * 116)
        XCTAssertLessThan(reallocations, 40)
    }

    func testConnectWithEveryFieldRoundTrips() throws {
        let connect = Connect(
            protocolVersion: .v3_1, cleanSession: false, keepAlive: 65_535, clientID: "client-é",
            will: Will(topic: topic("$SYS/will"), payload: [0, 1, 2], qos: .exactlyOnce, retain: true),
            username: "ü", password: [])
        let bytes = encoded(.connect(connect))
        XCTAssertEqual(try XCTUnwrap(try decodeFront(bytes).get()).packet, .connect(connect))
    }

    func testABridgeConnectCarriesTheTopBitOfTheLevelAndRoundTrips() throws {
        for version in [ProtocolVersion.v3_1_1, .v3_1] {
            let bridge = Connect(protocolVersion: version, cleanSession: false, clientID: "edge.bridge", isBridge: true)
            let bytes = encoded(.connect(bridge))
            // Fixed header (2), protocol name (2 + 4 or 6), then the level.
            let levelOffset = 2 + 2 + (version == .v3_1_1 ? 4 : 6)
            XCTAssertEqual(bytes[levelOffset], version.rawValue | 0x80, "\(version)")
            XCTAssertEqual(try XCTUnwrap(try decodeFront(bytes).get()).packet, .connect(bridge), "\(version)")

            let client = Connect(protocolVersion: version, clientID: "edge.client")
            XCTAssertEqual(encoded(.connect(client))[levelOffset], version.rawValue, "\(version)")
        }
    }
}
