// The store directory's files: log segments (`wal-N.log`), snapshots (`snapshot-N.snap`) and their headers.

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

    static let segmentMagic = Array("MIDGEWAL".utf8)
    static let segmentHeaderSize = 16
    static let formatVersion: UInt32 = 1

    static var segmentHeader: [UInt8] {
        var header = segmentMagic
        header.appendInteger(formatVersion)
        header.appendInteger(CRC32C.checksum(header))
        return header
    }

    enum SegmentHeaderCheck: Equatable {
        case valid
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
        guard version == formatVersion else { return .invalid("unsupported segment format version \(version)") }
        return .valid
    }

    // MARK: Snapshot: header, records, trailer.
    //   header  "MIDGESNP" version u32, reserved u32 (0), first uncovered segment u64, record count u64
    //   records framed as in the log
    //   trailer "MIDGEEND" crc32c of header and records u32, reserved u32 (0)

    static let snapshotMagic = Array("MIDGESNP".utf8)
    static let snapshotTrailerMagic = Array("MIDGEEND".utf8)
    static let snapshotHeaderSize = 32
    static let snapshotTrailerSize = 16

    static func snapshotHeader(firstSegment: UInt64, recordCount: UInt64) -> [UInt8] {
        var header = snapshotMagic
        header.appendInteger(formatVersion)
        header.appendInteger(UInt32(0))
        header.appendInteger(firstSegment)
        header.appendInteger(recordCount)
        return header
    }

    static func snapshotTrailer(crc: UInt32) -> [UInt8] {
        var trailer = snapshotTrailerMagic
        trailer.appendInteger(crc)
        trailer.appendInteger(UInt32(0))
        return trailer
    }

    /// Rebuilds the state a snapshot file holds, or says why it cannot.
    static func readSnapshot(_ bytes: [UInt8], expectedFirstSegment: UInt64) -> Result<
        (StoreState, records: Int), SnapshotDamage
    > {
        let minimum = snapshotHeaderSize + snapshotTrailerSize
        guard bytes.count >= minimum else {
            return .failure(.init("file is \(bytes.count) bytes, shorter than any snapshot"))
        }
        guard Array(bytes[0..<8]) == snapshotMagic else { return .failure(.init("not a snapshot (bad magic)")) }
        let trailerStart = bytes.count - snapshotTrailerSize
        guard Array(bytes[trailerStart..<trailerStart + 8]) == snapshotTrailerMagic else {
            return .failure(.init("no trailer: the snapshot was not written to the end"))
        }
        return bytes.withUnsafeBytes { raw -> Result<(StoreState, records: Int), SnapshotDamage> in
            let storedCRC = UInt32(littleEndian: raw.loadUnaligned(fromByteOffset: trailerStart + 8, as: UInt32.self))
            guard CRC32C.checksum(UnsafeRawBufferPointer(rebasing: raw[0..<trailerStart])) == storedCRC else {
                return .failure(.init("checksum mismatch"))
            }
            let version = UInt32(littleEndian: raw.loadUnaligned(fromByteOffset: 8, as: UInt32.self))
            guard version == formatVersion else { return .failure(.init("unsupported format version \(version)")) }
            let firstSegment = UInt64(littleEndian: raw.loadUnaligned(fromByteOffset: 16, as: UInt64.self))
            guard firstSegment == expectedFirstSegment else {
                return .failure(.init("covers segments below \(firstSegment), its name says \(expectedFirstSegment)"))
            }
            let recordCount = UInt64(littleEndian: raw.loadUnaligned(fromByteOffset: 24, as: UInt64.self))
            let records = UnsafeRawBufferPointer(rebasing: raw[snapshotHeaderSize..<trailerStart])
            var state = StoreState()
            var offset = 0
            var count: UInt64 = 0
            while true {
                switch StoreRecord.readFrame(in: records, at: offset) {
                case .end:
                    guard count == recordCount else {
                        return .failure(.init("holds \(count) records, its header says \(recordCount)"))
                    }
                    return .success((state, records: Int(count)))
                case .record(let record, let size):
                    state.apply(record)
                    offset += size
                    count += 1
                case .damaged(let damage):
                    return .failure(.init("record \(count) at offset \(snapshotHeaderSize + offset): \(damage)"))
                }
            }
        }
    }
}

/// Why a snapshot file could not be used.
struct SnapshotDamage: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}

extension StoreState {
    /// How many records `forEachRecord` produces, for the snapshot header.
    var recordCount: Int {
        var count = messages.count + retained.count
        for session in sessions.values {
            count +=
                1 + session.subscriptions.count + session.inboundQoS2.count + session.inFlight.count
                + session.queue.count
        }
        return count
    }
}
