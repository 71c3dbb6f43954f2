// The unit of atomicity of a version-2 log segment: one writer batch, applied whole or not at all.
//   header  [records length u64][record count u32][crc32c of the records u32][crc32c of those 16 bytes u32]
//   records [length u32][type u8][body], `count` of them (StoreRecord+Framing.swift). All integers little-endian.
import MidgeRecords

/// A crash in the middle of a write can leave any prefix of it on disk. The records of one batch belong together
/// (an inbound QoS 2 id and the message it routed, a message body and its deliveries), so recovery applies a batch
/// only when all of its bytes are there and its checksum holds, and otherwise stops at its start.
///
/// One checksum covers the batch's records rather than one per record: measured on a batch of durable QoS 1
/// records (56 bytes on average, release build, hardware CRC), the checksum work was 24–51 ns per record computed
/// per record and 7–10 ns per record computed once over the batch; and each record is 4 bytes shorter. The header
/// has its own checksum, so the length and count of a torn batch can still be trusted for the recovery report.
enum LogBatch {
    static let headerSize = 20
    /// A length field and a type byte: the smallest a record can be.
    static let minimumRecordSize = StoreRecord.entryHeaderSize + 1

    /// The result of reading the batch at some offset.
    enum Read {
        case batch([StoreRecord], size: Int)
        case end
        case damaged(FrameDamage)
    }

    /// Reserves the header of a batch at the end of `buffer`, for `finish`.
    private static func begin(in buffer: inout [UInt8]) {
        buffer.append(contentsOf: repeatElement(0, count: headerSize))
    }

    /// Fills in the header reserved by `begin` once the `count` records behind it are appended (`appendEntry`).
    private static func finish(in buffer: inout [UInt8], start: Int, count: Int) {
        let length = UInt64(buffer.count - start - headerSize)
        buffer.withUnsafeMutableBytes { raw in
            let records = CRC32C.checksum(UnsafeRawBufferPointer(rebasing: raw[(start + headerSize)...]))
            raw.storeBytes(of: length.littleEndian, toByteOffset: start, as: UInt64.self)
            raw.storeBytes(of: UInt32(count).littleEndian, toByteOffset: start + 8, as: UInt32.self)
            raw.storeBytes(of: records.littleEndian, toByteOffset: start + 12, as: UInt32.self)
            let header = CRC32C.checksum(UnsafeRawBufferPointer(rebasing: raw[start..<start + 16]))
            raw.storeBytes(of: header.littleEndian, toByteOffset: start + 16, as: UInt32.self)
        }
    }

    /// The records of `records` whose index `include` accepts, as one batch appended to `buffer`; nothing when
    /// there are none. Returns how many went in.
    @discardableResult
    static func append(
        _ records: [StoreRecord], to buffer: inout [UInt8], including include: (Int) -> Bool = { _ in true }
    ) -> Int {
        let start = buffer.count
        var count = 0
        // Through the buffer: `records[index]` would copy each record (a retain per field) to read it.
        records.withUnsafeBufferPointer { records in
            for index in records.indices where include(index) {
                if count == 0 { begin(in: &buffer) }
                records[index].appendEntry(to: &buffer)
                count += 1
            }
        }
        if count > 0 { finish(in: &buffer, start: start, count: count) }
        return count
    }

    /// The header at `offset`, if its checksum holds.
    private static func header(in bytes: UnsafeRawBufferPointer, at offset: Int)
        -> (length: UInt64, count: Int, checksum: UInt32)?
    {
        guard bytes.count - offset >= headerSize else { return nil }
        let stored = UInt32(littleEndian: bytes.loadUnaligned(fromByteOffset: offset + 16, as: UInt32.self))
        guard CRC32C.checksum(UnsafeRawBufferPointer(rebasing: bytes[offset..<offset + 16])) == stored else {
            return nil
        }
        let length = UInt64(littleEndian: bytes.loadUnaligned(fromByteOffset: offset, as: UInt64.self))
        let count = UInt32(littleEndian: bytes.loadUnaligned(fromByteOffset: offset + 8, as: UInt32.self))
        let checksum = UInt32(littleEndian: bytes.loadUnaligned(fromByteOffset: offset + 12, as: UInt32.self))
        return (length, Int(count), checksum)
    }

    /// Reads, checks and decodes the whole batch at `offset`. `.end` only when `offset` is exactly the end of the
    /// bytes.
    static func read(in bytes: UnsafeRawBufferPointer, at offset: Int) -> Read {
        let available = bytes.count - offset
        if available == 0 { return .end }
        // A file extended but whose data never reached the disk reads as zeros: a torn write, not damage.
        let zeroTail = { StoreRecord.isZero(bytes, from: offset) }
        guard available >= headerSize else {
            return .damaged(
                zeroTail() ? .zeroFilledTail(bytes: available) : .tornBatchHeader(available: available))
        }
        guard let (length, count, checksum) = header(in: bytes, at: offset) else {
            return .damaged(
                zeroTail() ? .zeroFilledTail(bytes: available) : .invalidBatchHeader("checksum mismatch"))
        }
        guard count > 0 else { return .damaged(.invalidBatchHeader("no records")) }
        guard length >= UInt64(count) * UInt64(minimumRecordSize), length <= UInt64(Int.max - headerSize - offset)
        else {
            return .damaged(.invalidBatchHeader("\(length) bytes cannot hold \(count) records"))
        }
        let size = headerSize + Int(length)
        guard size <= available else {
            return .damaged(.tornBatch(size: size, available: available, records: count))
        }
        let region = UnsafeRawBufferPointer(rebasing: bytes[(offset + headerSize)..<(offset + size)])
        guard CRC32C.checksum(region) == checksum else {
            let zeros = StoreRecord.isZero(bytes, from: offset + headerSize)
            return .damaged(zeros ? .zeroFilledTail(bytes: available) : .checksumMismatch)
        }
        var records: [StoreRecord] = []
        records.reserveCapacity(count)
        var position = 0
        for index in 0..<count {
            switch StoreRecord.readEntry(in: region, at: position) {
            case .record(let record, let recordSize):
                records.append(record)
                position += recordSize
            case .end:
                return .damaged(.malformedBatch("\(index) records where its header says \(count)"))
            case .damaged(let damage):
                return .damaged(.inBatch(record: index + 1, of: count, damage))
            }
        }
        guard position == region.count else {
            return .damaged(
                .malformedBatch("\(region.count - position) bytes after its \(count) records"))
        }
        return .batch(records, size: size)
    }

    /// Records in the batches from `offset` on, following the headers whose checksums hold; whatever cannot be
    /// followed counts as one more record if it is not all zeros.
    static func countRecords(in bytes: UnsafeRawBufferPointer, from start: Int) -> Int {
        var offset = start
        var total = 0
        while offset < bytes.count {
            if let (length, count, _) = header(in: bytes, at: offset), count > 0,
                length >= UInt64(count) * UInt64(minimumRecordSize)
            {
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
