// The unit of atomicity of a version-2 log segment: one writer batch, applied whole or not at all.
//   [records length u64][record count u32][crc32c of those 12 bytes u32] then `count` record frames, each framed
//   and checksummed as in StoreRecord+Encoding.swift. All integers little-endian.

/// A crash in the middle of a write can leave any prefix of it on disk. The records of one batch belong together
/// (an inbound QoS 2 id and the message it routed, a message body and its deliveries), so recovery applies a batch
/// only when all of its bytes are there and every record in it checks out, and otherwise stops at its start.
enum LogBatch {
    static let headerSize = 16
    /// A frame header and a type byte: the smallest a record can be.
    static let minimumRecordSize = StoreRecord.frameHeaderSize + 1

    /// The result of reading the batch at some offset.
    enum Read {
        case batch([StoreRecord], size: Int)
        case end
        /// `records`: how many records the damaged batch held, when its header could still be trusted.
        case damaged(FrameDamage, records: Int?)
    }

    /// Reserves the header of a batch at the end of `buffer`; returns where it starts, for `finish`.
    static func begin(in buffer: inout [UInt8]) -> Int {
        let start = buffer.count
        buffer.append(contentsOf: [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0] as [UInt8])
        return start
    }

    /// Fills in the header reserved by `begin` once the `count` record frames behind it are appended.
    static func finish(in buffer: inout [UInt8], start: Int, count: Int) {
        let length = UInt64(buffer.count - start - headerSize)
        buffer.withUnsafeMutableBytes { raw in
            raw.storeBytes(of: length.littleEndian, toByteOffset: start, as: UInt64.self)
            raw.storeBytes(of: UInt32(count).littleEndian, toByteOffset: start + 8, as: UInt32.self)
            let crc = CRC32C.checksum(UnsafeRawBufferPointer(rebasing: raw[start..<start + 12]))
            raw.storeBytes(of: crc.littleEndian, toByteOffset: start + 12, as: UInt32.self)
        }
    }

    /// `records` as one batch appended to `buffer`; nothing when there are none.
    static func append(_ records: some Collection<StoreRecord>, to buffer: inout [UInt8]) {
        guard !records.isEmpty else { return }
        let start = begin(in: &buffer)
        for record in records { record.appendFrame(to: &buffer) }
        finish(in: &buffer, start: start, count: records.count)
    }

    /// The header at `offset`, if its checksum holds: the length of the records behind it and their count.
    private static func header(in bytes: UnsafeRawBufferPointer, at offset: Int) -> (length: UInt64, count: Int)? {
        guard bytes.count - offset >= headerSize else { return nil }
        let length = UInt64(littleEndian: bytes.loadUnaligned(fromByteOffset: offset, as: UInt64.self))
        let count = UInt32(littleEndian: bytes.loadUnaligned(fromByteOffset: offset + 8, as: UInt32.self))
        let stored = UInt32(littleEndian: bytes.loadUnaligned(fromByteOffset: offset + 12, as: UInt32.self))
        guard CRC32C.checksum(UnsafeRawBufferPointer(rebasing: bytes[offset..<offset + 12])) == stored else {
            return nil
        }
        return (length, Int(count))
    }

    /// Reads and decodes the whole batch at `offset`. `.end` only when `offset` is exactly the end of the bytes.
    static func read(in bytes: UnsafeRawBufferPointer, at offset: Int) -> Read {
        let available = bytes.count - offset
        if available == 0 { return .end }
        // A file extended but whose data never reached the disk reads as zeros: a torn write, not damage.
        let zeroTail = { StoreRecord.isZero(bytes, from: offset) }
        guard available >= headerSize else {
            return .damaged(
                zeroTail() ? .zeroFilledTail(bytes: available) : .tornBatchHeader(available: available),
                records: nil)
        }
        guard let (length, count) = header(in: bytes, at: offset) else {
            return .damaged(
                zeroTail() ? .zeroFilledTail(bytes: available) : .invalidBatchHeader("checksum mismatch"), records: nil)
        }
        guard count > 0 else { return .damaged(.invalidBatchHeader("no records"), records: nil) }
        guard length >= UInt64(count) * UInt64(minimumRecordSize), length <= UInt64(Int.max - headerSize - offset)
        else {
            return .damaged(.invalidBatchHeader("\(length) bytes cannot hold \(count) records"), records: count)
        }
        let size = headerSize + Int(length)
        guard size <= available else {
            return .damaged(.tornBatch(size: size, available: available, records: count), records: count)
        }
        let region = UnsafeRawBufferPointer(rebasing: bytes[(offset + headerSize)..<(offset + size)])
        var records: [StoreRecord] = []
        records.reserveCapacity(count)
        var position = 0
        for index in 0..<count {
            switch StoreRecord.readFrame(in: region, at: position) {
            case .record(let record, let recordSize):
                records.append(record)
                position += recordSize
            case .end:
                return .damaged(.malformedBatch("\(index) records where its header says \(count)"), records: count)
            case .damaged(let damage):
                if StoreRecord.isZero(bytes, from: offset + headerSize) {
                    return .damaged(.zeroFilledTail(bytes: available), records: count)
                }
                return .damaged(.inBatch(record: index + 1, of: count, damage), records: count)
            }
        }
        guard position == region.count else {
            return .damaged(
                .malformedBatch("\(region.count - position) bytes after its \(count) records"), records: count)
        }
        return .batch(records, size: size)
    }

    /// Records in the batches from `offset` on, following the headers whose checksums hold; whatever cannot be
    /// followed counts as one more record if it is not all zeros.
    static func countRecords(in bytes: UnsafeRawBufferPointer, from start: Int) -> Int {
        var offset = start
        var total = 0
        while offset < bytes.count {
            if let (length, count) = header(in: bytes, at: offset), count > 0 {
                total += count
                guard length <= UInt64(bytes.count - offset - headerSize) else { break }
                offset += headerSize + Int(length)
                continue
            }
            if !StoreRecord.isZero(bytes, from: offset) { total += 1 }
            break
        }
        return total
    }
}
