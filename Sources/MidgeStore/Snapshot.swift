// Snapshot files: their format, writing one (temp file, fsync, rename, directory fsync), reading it back, and
// removing the files a new one makes obsolete.
import MidgeRecords

enum Snapshot {
    /// Writes `state` as snapshot `firstSegment` (it holds everything in segments below that number) and
    /// returns its size. The snapshot only appears under its real name once it is entirely on disk.
    static func write(
        _ state: StoreState, firstSegment: UInt64, directory: String, fileSystem fs: any StoreFileSystem
    ) throws(FileError) -> Int {
        let name = StoreFiles.snapshotName(firstSegment)
        let temporaryPath = StoreFiles.path(directory, name + StoreFiles.temporarySuffix)
        let file = try fs.openForWriting(temporaryPath, truncate: true)
        var written = 0
        do throws(FileError) {
            var buffer = header(firstSegment: firstSegment, recordCount: UInt64(state.recordCount))
            buffer.reserveCapacity(1 << 20)
            var crc: UInt32 = 0
            func flush() throws(FileError) {
                crc = CRC32C.checksum(buffer, continuing: crc)
                let offset = Int64(written)
                try fs.write(buffer, to: file, at: offset)
                written += buffer.count
                buffer.removeAll(keepingCapacity: true)
            }
            // Streamed in 1 MiB pieces so a large state does not need a second copy in memory.
            try state.forEachRecord { record throws(FileError) in
                record.appendFrame(to: &buffer)
                if buffer.count >= 1 << 20 { try flush() }
            }
            try flush()
            buffer = trailer(crc: crc)
            let offset = Int64(written)
            try fs.write(buffer, to: file, at: offset)
            written += buffer.count
            try fs.synchronize(file, dataOnly: false)
            fs.close(file)
        } catch {
            fs.close(file)
            try? fs.removeFile(temporaryPath)
            throw error
        }
        try fs.rename(temporaryPath, to: StoreFiles.path(directory, name))
        try fs.synchronizeDirectory(directory)
        return written
    }

    /// Keeps the two newest snapshots and the segments the older of them needs, so that an unreadable newest
    /// snapshot can still be replaced by the previous one plus the log; removes everything older.
    static func removeObsoleteFiles(directory: String, fileSystem fs: any StoreFileSystem) throws(FileError) {
        let names = try fs.contents(ofDirectory: directory)
        let snapshots = names.compactMap(StoreFiles.snapshotNumber).sorted(by: >)
        guard snapshots.count >= 2 else { return }
        let keepFrom = snapshots[1]
        var removed = false
        for number in snapshots.dropFirst(2) {
            try fs.removeFile(StoreFiles.path(directory, StoreFiles.snapshotName(number)))
            removed = true
        }
        for number in names.compactMap(StoreFiles.segmentNumber) where number < keepFrom {
            try fs.removeFile(StoreFiles.path(directory, StoreFiles.segmentName(number)))
            removed = true
        }
        if removed { try fs.synchronizeDirectory(directory) }
    }

    // MARK: Format: header, records, trailer.
    //   header  "MIDGESNP" version u32, reserved u32 (0), first uncovered segment u64, record count u64
    //   records framed as in the log
    //   trailer "MIDGEEND" crc32c of header and records u32, reserved u32 (0)

    static let magic = Array("MIDGESNP".utf8)
    static let trailerMagic = Array("MIDGEEND".utf8)
    static let headerSize = 32
    static let trailerSize = 16
    /// Unchanged by the batched log (segment version 2): a snapshot is one CRC-checked unit already.
    static let formatVersion: UInt32 = 1

    static func header(firstSegment: UInt64, recordCount: UInt64) -> [UInt8] {
        var header = magic
        header.appendInteger(formatVersion)
        header.appendInteger(UInt32(0))
        header.appendInteger(firstSegment)
        header.appendInteger(recordCount)
        return header
    }

    static func trailer(crc: UInt32) -> [UInt8] {
        var trailer = trailerMagic
        trailer.appendInteger(crc)
        trailer.appendInteger(UInt32(0))
        return trailer
    }

    /// Rebuilds the state a snapshot file holds, or says why it cannot.
    static func read(_ bytes: [UInt8], expectedFirstSegment: UInt64) -> Result<
        (StoreState, records: Int), SnapshotDamage
    > {
        let minimum = headerSize + trailerSize
        guard bytes.count >= minimum else {
            return .failure(.init("file is \(bytes.count) bytes, shorter than any snapshot"))
        }
        guard Array(bytes[0..<8]) == magic else { return .failure(.init("not a snapshot (bad magic)")) }
        let trailerStart = bytes.count - trailerSize
        guard Array(bytes[trailerStart..<trailerStart + 8]) == trailerMagic else {
            return .failure(.init("no trailer: the snapshot was not written to the end"))
        }
        return bytes.withUnsafeBytes { raw -> Result<(StoreState, records: Int), SnapshotDamage> in
            let storedCRC = UInt32(littleEndian: raw.loadUnaligned(fromByteOffset: trailerStart + 8, as: UInt32.self))
            guard CRC32C.checksum(UnsafeRawBufferPointer(rebasing: raw[0..<trailerStart])) == storedCRC else {
                return .failure(.init("checksum mismatch"))
            }
            let version = UInt32(littleEndian: raw.loadUnaligned(fromByteOffset: 8, as: UInt32.self))
            guard version == formatVersion else {
                return .failure(.init("unsupported format version \(version)"))
            }
            let firstSegment = UInt64(littleEndian: raw.loadUnaligned(fromByteOffset: 16, as: UInt64.self))
            guard firstSegment == expectedFirstSegment else {
                return .failure(.init("covers segments below \(firstSegment), its name says \(expectedFirstSegment)"))
            }
            let recordCount = UInt64(littleEndian: raw.loadUnaligned(fromByteOffset: 24, as: UInt64.self))
            let records = UnsafeRawBufferPointer(rebasing: raw[headerSize..<trailerStart])
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
                    return .failure(.init("record \(count) at offset \(headerSize + offset): \(damage)"))
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
