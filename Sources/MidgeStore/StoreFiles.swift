// The store directory's files: names of log segments (`wal-N.log`) and snapshots (`snapshot-N.snap`), and the
// log segment header. The snapshot format is in Snapshot.swift.
import MidgeRecords

/// File names and fixed headers. N is a 16-digit hex number: segments count up from 1, and snapshot N holds
/// everything written to segments below N, so recovery replays segments N, N+1, … on top of it.
enum StoreFiles {
    static let lockName = "lock"
    static let temporarySuffix = ".tmp"
    /// Files recovery set aside: an unreadable snapshot, or log bytes after a corrupt record.
    static let damagedSuffix = ".damaged"

    static func segmentName(_ number: UInt64) -> String { "wal-\(hex(number)).log" }
    static func snapshotName(_ number: UInt64) -> String { "snapshot-\(hex(number)).snap" }

    static func segmentNumber(_ name: String) -> UInt64? { number(in: name, prefix: "wal-", suffix: ".log") }
    static func snapshotNumber(_ name: String) -> UInt64? { number(in: name, prefix: "snapshot-", suffix: ".snap") }

    static func path(_ directory: String, _ name: String) -> String {
        directory.hasSuffix("/") ? directory + name : directory + "/" + name
    }

    private static func hex(_ number: UInt64) -> String {
        let digits = String(number, radix: 16)
        return String(repeating: "0", count: max(0, 16 - digits.count)) + digits
    }

    private static func number(in name: String, prefix: String, suffix: String) -> UInt64? {
        guard name.hasPrefix(prefix), name.hasSuffix(suffix) else { return nil }
        let digits = name.dropFirst(prefix.count).dropLast(suffix.count)
        guard digits.count == 16 else { return nil }
        return UInt64(digits, radix: 16)
    }

    // MARK: Log segment header: "MIDGEWAL" version u32, crc32c of the first 12 bytes u32.
    //   Version 1: record frames one after another (StoreRecord+Framing.swift), each applied on its own.
    //   Version 2: batches (LogBatch.swift), each applied whole or not at all.

    static let segmentMagic = Array("MIDGEWAL".utf8)
    static let segmentHeaderSize = 16
    /// The version new segments are written in.
    static let segmentFormatVersion: UInt32 = 2
    /// Segments written before batches; still read, never appended to.
    static let unbatchedSegmentFormatVersion: UInt32 = 1

    static var segmentHeader: [UInt8] { segmentHeader(version: segmentFormatVersion) }

    static func segmentHeader(version: UInt32) -> [UInt8] {
        var header = segmentMagic
        header.appendInteger(version)
        header.appendInteger(CRC32C.checksum(header))
        return header
    }

    enum SegmentHeaderCheck: Equatable {
        case valid(version: UInt32)
        /// Shorter than a header, or zeros: the file was created but its header never reached the disk.
        case torn
        case invalid(String)
    }

    static func checkSegmentHeader(_ bytes: [UInt8]) -> SegmentHeaderCheck {
        if bytes.count < segmentHeaderSize {
            return .torn
        }
        if bytes[0..<segmentHeaderSize].allSatisfy({ $0 == 0 }) { return .torn }
        guard Array(bytes[0..<8]) == segmentMagic else { return .invalid("not a log segment (bad magic)") }
        let crc = bytes.withUnsafeBytes { UInt32(littleEndian: $0.loadUnaligned(fromByteOffset: 12, as: UInt32.self)) }
        guard crc == CRC32C.checksum(bytes[0..<12]) else { return .invalid("segment header checksum mismatch") }
        let version = bytes.withUnsafeBytes {
            UInt32(littleEndian: $0.loadUnaligned(fromByteOffset: 8, as: UInt32.self))
        }
        guard version == segmentFormatVersion || version == unbatchedSegmentFormatVersion else {
            return .invalid("unsupported segment format version \(version)")
        }
        return .valid(version: version)
    }
}
