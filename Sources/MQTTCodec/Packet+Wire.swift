// Encoding of every control packet (§3), and the packets that are only a fixed header or a packet identifier
// (PUBACK, PUBREC, PUBREL, PUBCOMP, UNSUBACK §3.4-3.7, §3.11; PINGREQ, PINGRESP, DISCONNECT §3.12-3.14).

extension Packet {
    /// Appends the wire form of the packet to `buffer`.
    public func encode(into buffer: inout [UInt8]) {
        switch self {
        case .connect(let connect): connect.encode(into: &buffer)
        case .connack(let connack): connack.encode(into: &buffer)
        case .publish(let publish):
            Publish.encode(
                topic: publish.topic, payload: publish.payload, qos: publish.qos, retain: publish.retain,
                dup: publish.dup, packetID: publish.packetID, into: &buffer)
        case .puback(let id): Packet.encodeAcknowledgement(0x40, id, into: &buffer)
        case .pubrec(let id): Packet.encodeAcknowledgement(0x50, id, into: &buffer)
        case .pubrel(let id): Packet.encodeAcknowledgement(0x62, id, into: &buffer)  // flags 0b0010 [MQTT-3.6.1-1]
        case .pubcomp(let id): Packet.encodeAcknowledgement(0x70, id, into: &buffer)
        case .subscribe(let subscribe): subscribe.encode(into: &buffer)
        case .suback(let suback): suback.encode(into: &buffer)
        case .unsubscribe(let unsubscribe): unsubscribe.encode(into: &buffer)
        case .unsuback(let id): Packet.encodeAcknowledgement(0xB0, id, into: &buffer)
        case .pingreq: Packet.encodeHeaderOnly(0xC0, into: &buffer)
        case .pingresp: Packet.encodeHeaderOnly(0xD0, into: &buffer)
        case .disconnect: Packet.encodeHeaderOnly(0xE0, into: &buffer)
        }
    }

    /// Type byte, remaining length 2, packet identifier.
    private static func encodeAcknowledgement(_ typeByte: UInt8, _ id: PacketID, into buffer: inout [UInt8]) {
        buffer.reserveForAppending(4)
        buffer.append(typeByte)
        buffer.append(2)
        buffer.appendUInt16(id.rawValue)
    }

    /// Type byte, remaining length 0.
    private static func encodeHeaderOnly(_ typeByte: UInt8, into buffer: inout [UInt8]) {
        buffer.reserveForAppending(2)
        buffer.append(typeByte)
        buffer.append(0)
    }

    /// Appends the fixed header of a packet with a body: the type-and-flags byte, then the remaining length.
    static func appendFixedHeader(_ typeByte: UInt8, remainingLength: Int, into buffer: inout [UInt8]) {
        buffer.append(typeByte)
        RemainingLength.append(remainingLength, to: &buffer)
    }
}

extension PacketID {
    /// The whole body of PUBACK, PUBREC, PUBREL, PUBCOMP and UNSUBACK; its length (2) was checked with the header.
    init(wire body: UnsafeRawBufferPointer, of type: PacketType) throws(DecodeError) {
        var reader = ByteReader(body)
        self = try reader.readPacketID(type.wireName)
    }
}
