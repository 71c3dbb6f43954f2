// A bounds-checked cursor over one packet's body: big-endian integers and length-prefixed fields (§1.5).

/// Reads a packet body front to back. Every read checks the bytes left first, so a field that claims more bytes
/// than the packet holds is a `DecodeError`, never an out-of-bounds read.
struct ByteReader {
    let bytes: UnsafeRawBufferPointer
    private(set) var offset = 0

    init(_ bytes: UnsafeRawBufferPointer) {
        self.bytes = bytes
    }

    var remainingCount: Int { bytes.count &- offset }
    var isAtEnd: Bool { offset == bytes.count }

    mutating func readUInt8(_ field: StaticString) throws(DecodeError) -> UInt8 {
        guard offset < bytes.count else { throw .truncated(field) }
        let value = bytes.load(fromByteOffset: offset, as: UInt8.self)
        offset &+= 1
        return value
    }

    /// Two bytes, most significant first (§1.5.2).
    mutating func readUInt16(_ field: StaticString) throws(DecodeError) -> UInt16 {
        guard remainingCount >= 2 else { throw .truncated(field) }
        let value = UInt16(bigEndian: bytes.loadUnaligned(fromByteOffset: offset, as: UInt16.self))
        offset &+= 2
        return value
    }

    /// A packet identifier, which is never 0 on the wire [MQTT-2.3.1-1].
    mutating func readPacketID(_ packet: StaticString) throws(DecodeError) -> PacketID {
        guard remainingCount >= 2 else { throw .malformed("truncated \(packet) packet identifier") }
        let raw = UInt16(bigEndian: bytes.loadUnaligned(fromByteOffset: offset, as: UInt16.self))
        offset &+= 2
        guard let id = PacketID(raw) else { throw .malformed("\(packet) packet identifier 0 [MQTT-2.3.1-1]") }
        return id
    }

    /// The next `count` bytes, as a view into the packet (no copy).
    mutating func readBytes(_ count: Int, _ field: StaticString) throws(DecodeError) -> UnsafeRawBufferPointer {
        guard remainingCount >= count else { throw .truncated(field) }
        let view = UnsafeRawBufferPointer(rebasing: bytes[offset..<(offset &+ count)])
        offset &+= count
        return view
    }

    /// A two-byte length, then that many bytes: UTF-8 strings (§1.5.3) and binary fields such as the password.
    mutating func readLengthPrefixed(_ field: StaticString) throws(DecodeError) -> UnsafeRawBufferPointer {
        let count = Int(try readUInt16(field))
        return try readBytes(count, field)
    }

    /// Everything left: the PUBLISH payload, whose length is implied by the remaining length (§3.3.3).
    mutating func readRest() -> UnsafeRawBufferPointer {
        let view = UnsafeRawBufferPointer(rebasing: bytes[offset...])
        offset = bytes.count
        return view
    }
}

extension DecodeError {
    /// A field that is missing or claims more bytes than the remaining length leaves.
    static func truncated(_ field: StaticString) -> DecodeError {
        .malformed("truncated \(field)")
    }
}
