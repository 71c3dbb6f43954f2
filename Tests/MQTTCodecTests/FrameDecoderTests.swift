// Every fixture through the decoder whole, byte by byte, concatenated and streamed; and back through the encoder.

import MQTTCodec
import XCTest

final class FrameDecoderTests: XCTestCase {
    func testEveryFixtureDecodesWhole() {
        for fixture in PacketFixtures.all {
            guard case .success(let decoded?) = decodeFront(fixture.bytes) else {
                XCTFail("\(fixture.name): \(decodeFront(fixture.bytes))")
                continue
            }
            XCTAssertEqual(decoded.packet, fixture.packet, fixture.name)
            XCTAssertEqual(decoded.consumed, fixture.bytes.count, fixture.name)
        }
    }

    func testEveryStrictPrefixOfAFixtureIsIncomplete() {
        for fixture in PacketFixtures.all {
            for length in 0..<fixture.bytes.count {
                guard case .success(nil) = decodeFront(fixture.bytes[..<length]) else {
                    XCTFail("\(fixture.name): prefix of \(length) bytes gave \(decodeFront(fixture.bytes[..<length]))")
                    break
                }
            }
        }
    }

    func testFixturesFedByteByByteComeOutOnceEach() {
        for fixture in PacketFixtures.all {
            let result = decodeStream(fixture.bytes, chunkSizes: [1])
            XCTAssertNil(result.error, fixture.name)
            XCTAssertEqual(result.packets, [fixture.packet], fixture.name)
            XCTAssertEqual(result.leftover, 0, fixture.name)
        }
    }

    func testConcatenatedFixturesComeOutInOrderWithNothingLeft() {
        let stream = PacketFixtures.all.flatMap(\.bytes)
        var offset = 0
        var packets: [Packet] = []
        for _ in PacketFixtures.all {
            guard case .success(let decoded?) = decodeFront(stream[offset...]) else {
                XCTFail("stopped at offset \(offset): \(decodeFront(stream[offset...]))")
                return
            }
            packets.append(decoded.packet)
            offset += decoded.consumed
        }
        XCTAssertEqual(packets, PacketFixtures.all.map(\.packet))
        XCTAssertEqual(offset, stream.count)
        XCTAssertEqual(try decodeFront(stream[offset...]).get()?.packet, nil)
    }

    func testConcatenatedFixturesStreamedInUnevenChunks() {
        let stream = PacketFixtures.all.flatMap(\.bytes)
        for chunkSizes in [[1], [2, 3], [5, 1, 8, 13], [4096], [stream.count]] {
            let result = decodeStream(stream, chunkSizes: chunkSizes)
            XCTAssertNil(result.error, "chunks \(chunkSizes)")
            XCTAssertEqual(result.packets, PacketFixtures.all.map(\.packet), "chunks \(chunkSizes)")
            XCTAssertEqual(result.leftover, 0, "chunks \(chunkSizes)")
        }
    }

    func testEncodingADecodedFixtureGivesItsBytesBack() {
        for fixture in PacketFixtures.all {
            XCTAssertEqual(encoded(fixture.packet), fixture.bytes, fixture.name)
            guard case .success(let decoded?) = decodeFront(fixture.bytes) else { continue }
            XCTAssertEqual(encoded(decoded.packet), fixture.bytes, fixture.name)
        }
    }

    func testEveryPacketTypeHasAFixture() {
        let types = Set(PacketFixtures.all.map(\.packet.type.rawValue))
        XCTAssertEqual(types, Set(1...14))
    }

    func testDecodeReadsOnlyTheFirstPacketAndReportsItsLength() throws {
        let bytes: [UInt8] = [0xC0, 0x00, 0xE0, 0x00, 0x30]  // PINGREQ, DISCONNECT, start of a PUBLISH
        let first = try XCTUnwrap(try decodeFront(bytes).get())
        XCTAssertEqual(first.packet, .pingreq)
        XCTAssertEqual(first.consumed, 2)
        let second = try XCTUnwrap(try decodeFront(bytes[2...]).get())
        XCTAssertEqual(second.packet, .disconnect)
        XCTAssertNil(try decodeFront(bytes[4...]).get())
    }

    func testALongerThanNecessaryRemainingLengthIsAccepted() throws {
        // §2.2.3 does not require the shortest form, and mosquitto accepts 0x80 0x00 for 0.
        let decoded = try XCTUnwrap(try decodeFront([0xC0, 0x80, 0x00]).get())
        XCTAssertEqual(decoded.packet, .pingreq)
        XCTAssertEqual(decoded.consumed, 3)
    }

    func testAPacketExactlyAtTheLimitIsAccepted() throws {
        let bytes = encoded(.publish(Publish(topic: topic("a"), payload: [1, 2, 3])))  // remaining length 6
        XCTAssertEqual(try decodeFront(bytes, with: FrameDecoder(maxRemainingLength: 6)).get()?.consumed, 8)
        XCTAssertEqual(
            decodeFront(bytes, with: FrameDecoder(maxRemainingLength: 5)).failure,
            .packetTooLarge(size: 6, limit: 5))
    }

    func testAFourByteRemainingLengthPublishRoundTrips() throws {
        let payload = [UInt8](repeating: 0x7A, count: 2_097_152)  // remaining length 2 097 159: four bytes
        let packet = Packet.publish(Publish(topic: topic("t/4"), payload: payload, qos: .atLeastOnce, packetID: id(7)))
        let bytes = encoded(packet)
        XCTAssertEqual(Array(bytes[0..<5]), [0x32, 0x87, 0x80, 0x80, 0x01])
        let decoded = try XCTUnwrap(try decodeFront(bytes).get())
        XCTAssertEqual(decoded.packet, packet)
        XCTAssertEqual(decoded.consumed, bytes.count)
        XCTAssertNil(try decodeFront(bytes.dropLast()).get())
    }

    func testAMaximumLengthTopicRoundTripsThroughPublish() throws {
        // [MQTT-4.7.3-3]: 65 535 bytes is the longest topic a two-byte length can carry.
        let longest = [UInt8](repeating: 0x61, count: 65_535)
        let name = try XCTUnwrap(TopicName(bytes: longest))
        let packet = Packet.publish(Publish(topic: name, payload: [1]))
        let decoded = try XCTUnwrap(try decodeFront(encoded(packet)).get())
        XCTAssertEqual(decoded.packet, packet)
    }
}

extension Result {
    var failure: Failure? {
        if case .failure(let error) = self { return error }
        return nil
    }
}
