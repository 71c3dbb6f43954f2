// Incremental framing and decoding of MQTT control packets (§2.2, §3): bytes in, whole packets or an exact error out.

public struct FrameDecoder: Sendable {
    /// The largest remaining length accepted; larger frames are refused from the fixed header alone.
    public let maxRemainingLength: Int

    public init(maxRemainingLength: Int = 268_435_455) {
        self.maxRemainingLength = maxRemainingLength
    }

    /// Decodes the first complete packet at the front of `bytes`.
    /// Returns nil when `bytes` holds only the start of a packet; throws as soon as the bytes present prove
    /// the frame bad (5-byte remaining length, a length over the limit, reserved flags, an invalid body).
    public func decode(_ bytes: UnsafeRawBufferPointer) throws(DecodeError) -> (packet: Packet, consumed: Int)? {
        guard let header = try FixedHeader.parse(bytes, limit: maxRemainingLength) else { return nil }
        let total = header.byteCount + header.remainingLength
        guard bytes.count >= total else { return nil }
        let body = UnsafeRawBufferPointer(rebasing: bytes[header.byteCount..<total])
        let packet: Packet
        switch header.type {
        case .connect: packet = .connect(try Connect(wire: body))
        case .connack: packet = .connack(try ConnAck(wire: body))
        case .publish: packet = .publish(try Publish(wire: body, flags: header.flags))
        case .puback: packet = .puback(try PacketID(wire: body, of: .puback))
        case .pubrec: packet = .pubrec(try PacketID(wire: body, of: .pubrec))
        case .pubrel: packet = .pubrel(try PacketID(wire: body, of: .pubrel))
        case .pubcomp: packet = .pubcomp(try PacketID(wire: body, of: .pubcomp))
        case .subscribe: packet = .subscribe(try Subscribe(wire: body))
        case .suback: packet = .suback(try SubAck(wire: body))
        case .unsubscribe: packet = .unsubscribe(try Unsubscribe(wire: body))
        case .unsuback: packet = .unsuback(try PacketID(wire: body, of: .unsuback))
        case .pingreq: packet = .pingreq
        case .pingresp: packet = .pingresp
        case .disconnect: packet = .disconnect
        }
        return (packet, total)
    }
}
