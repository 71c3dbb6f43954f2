// The Remaining Length field of the fixed header (§2.2.3): 7 bits per byte, low group first, at most 4 bytes.

public enum RemainingLength {
    /// 0xFF 0xFF 0xFF 0x7F, the largest value four bytes can carry (§2.2.3).
    public static let maximum = 268_435_455

    /// How many bytes `value` takes on the wire: 1 up to 127, 2 up to 16 383, 3 up to 2 097 151, else 4.
    @inline(__always)
    static func byteCount(_ value: Int) -> Int {
        value < 128 ? 1 : value < 16_384 ? 2 : value < 2_097_152 ? 3 : 4
    }

    /// Appends the shortest encoding of `value`; the decoder also accepts longer ones, as §2.2.3 does not forbid them.
    @inline(__always)
    static func append(_ value: Int, to buffer: inout [UInt8]) {
        precondition(value >= 0 && value <= maximum, "remaining length \(value) does not fit in four bytes")
        var rest = value
        repeat {
            var byte = UInt8(truncatingIfNeeded: rest & 0x7F)
            rest >>= 7
            if rest > 0 { byte |= 0x80 }
            buffer.append(byte)
        } while rest > 0
    }
}
