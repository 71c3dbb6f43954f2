// CRC-32C (Castagnoli, RFC 3720 §B.4): the checksum of every log record, batch, snapshot and segment header.
import CLinux

/// Reflected polynomial 0x82F63B78, initial value and final XOR 0xFFFFFFFF, so that
/// `checksum("123456789") == 0xE3069283` (the standard check value).
///
/// The CPU's own instruction where it has one (SSE4.2 `crc32`, ARMv8 CRC32C, through the C shim), else a table
/// driven loop. Measured on 100 bytes (release build, x86_64): 17.5 ns with the instruction, 77–79 ns with the table.
public enum CRC32C {
    /// Whether `checksum` uses the CPU's instruction: asked once.
    static let hardwareAvailable = clinux_crc32c_available() != 0

    /// The CRC of `bytes`, continuing from `crc` (the result of a previous call, or 0 to start).
    @inline(__always)
    public static func checksum(_ bytes: UnsafeRawBufferPointer, continuing crc: UInt32 = 0) -> UInt32 {
        hardwareAvailable ? hardwareChecksum(bytes, continuing: crc) : softwareChecksum(bytes, continuing: crc)
    }

    public static func checksum(_ bytes: [UInt8], continuing crc: UInt32 = 0) -> UInt32 {
        bytes.withUnsafeBytes { checksum($0, continuing: crc) }
    }

    public static func checksum(_ bytes: ArraySlice<UInt8>, continuing crc: UInt32 = 0) -> UInt32 {
        bytes.withUnsafeBytes { checksum($0, continuing: crc) }
    }

    /// Only where `hardwareAvailable`.
    static func hardwareChecksum(_ bytes: UnsafeRawBufferPointer, continuing crc: UInt32) -> UInt32 {
        guard let base = bytes.baseAddress else { return crc }
        return ~clinux_crc32c_update(~crc, base, bytes.count)
    }

    // MARK: Slicing by 8: eight table lookups per 8 input bytes instead of one per byte.

    /// `tables[k * 256 + b]`: the CRC of byte `b` followed by `k` zero bytes.
    static let tables: [UInt32] = {
        var tables = [UInt32](repeating: 0, count: 8 * 256)
        for byte in 0..<256 {
            var crc = UInt32(byte)
            for _ in 0..<8 { crc = crc & 1 == 1 ? (crc >> 1) ^ 0x82F6_3B78 : crc >> 1 }
            tables[byte] = crc
        }
        for slice in 1..<8 {
            for byte in 0..<256 {
                let previous = tables[(slice - 1) * 256 + byte]
                tables[slice * 256 + byte] = (previous >> 8) ^ tables[Int(previous & 0xFF)]
            }
        }
        return tables
    }()

    static func softwareChecksum(_ bytes: UnsafeRawBufferPointer, continuing crc: UInt32) -> UInt32 {
        tables.withUnsafeBufferPointer { table in
            var c = ~crc
            var index = 0
            let count = bytes.count
            while count - index >= 8 {
                let low = UInt32(littleEndian: bytes.loadUnaligned(fromByteOffset: index, as: UInt32.self)) ^ c
                let high = UInt32(littleEndian: bytes.loadUnaligned(fromByteOffset: index + 4, as: UInt32.self))
                c =
                    table[7 * 256 + Int(low & 0xFF)] ^ table[6 * 256 + Int((low >> 8) & 0xFF)]
                    ^ table[5 * 256 + Int((low >> 16) & 0xFF)] ^ table[4 * 256 + Int(low >> 24)]
                    ^ table[3 * 256 + Int(high & 0xFF)] ^ table[2 * 256 + Int((high >> 8) & 0xFF)]
                    ^ table[1 * 256 + Int((high >> 16) & 0xFF)] ^ table[Int(high >> 24)]
                index += 8
            }
            while index < count {
                c = table[Int((c ^ UInt32(bytes[index])) & 0xFF)] ^ (c >> 8)
                index += 1
            }
            return ~c
        }
    }
}
