// Incremental framing and decoding of MQTT control packets (§2.2, §3): bytes in, whole packets or a precise error out.

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
        fatalError("BUG: not built yet")
    }
}

extension Packet {
    /// Appends the wire form of the packet to `buffer`.
    public func encode(into buffer: inout [UInt8]) {
        fatalError("BUG: not built yet")
    }
}

extension Publish {
    /// Encodes a PUBLISH from its parts, so a shared payload is appended without building a `Publish` value.
    public static func encode(
        topic: TopicName, payload: [UInt8], qos: QoS, retain: Bool, dup: Bool, packetID: PacketID?,
        into buffer: inout [UInt8]
    ) {
        fatalError("BUG: not built yet")
    }
}
