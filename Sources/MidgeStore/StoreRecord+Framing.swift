// The on-disk framing of a record: [length u32][crc32c u32][type u8][body] in snapshots and version-1 log segments,
// [length u32][type u8][body] inside a batch of a version-2 segment (LogBatch.swift checksums the batch whole). All
// integers little-endian. The type byte and body are MidgeRecords' encoding; the length and checksum are the file's.
import MQTTCodec
import MidgeRecords

/// Why the bytes at some offset are not a record. The description is what the recovery log line says.
public enum FrameDamage: Error, Sendable, Equatable, CustomStringConvertible {
    /// The file ends inside the 8-byte frame header.
    case tornHeader(available: Int)
    /// The file ends before the `length` bytes the header announces: a write cut short by a crash.
    case tornRecord(length: Int, available: Int)
    /// Only zero bytes remain: the file size was extended but the data never reached the disk.
    case zeroFilledTail(bytes: Int)
    /// A length of 0 or beyond `maximumRecordLength`.
    case invalidLength(UInt32)
    case checksumMismatch
    /// The checksum holds but the type byte is not one this version knows (a newer writer?).
    case unknownType(UInt8)
    /// The checksum holds but the body does not decode.
    case malformedBody(String)
    /// The file ends inside a batch header (segment version 2).
    case tornBatchHeader(available: Int)
    /// The file ends before the end of the batch its header announces: a write cut short by a crash.
    case tornBatch(size: Int, available: Int, records: Int)
    /// A batch header whose checksum or values are wrong.
    case invalidBatchHeader(String)
    /// The header holds, but the record frames do not fill the batch as it says.
    case malformedBatch(String)
    /// A record inside a batch whose bytes were all there and checked out, yet do not decode (a bug, or a newer
    /// writer): damage, not a torn write.
    indirect case inBatch(record: Int, of: Int, FrameDamage)

    public var description: String {
        switch self {
        case .tornHeader(let available): "torn record (file ends \(available) bytes into a frame header)"
        case .tornRecord(let length, let available):
            "torn record (file ends \(available) bytes into a \(length)-byte record)"
        case .zeroFilledTail(let bytes): "torn record (\(bytes) zero bytes where a record should be)"
        case .invalidLength(let length): "invalid record length \(length)"
        case .checksumMismatch: "checksum mismatch"
        case .unknownType(let type): "unknown record type \(type)"
        case .malformedBody(let why): "malformed record (\(why))"
        case .tornBatchHeader(let available): "torn batch (file ends \(available) bytes into a batch header)"
        case .tornBatch(let size, let available, let records):
            "torn batch (file ends \(available) bytes into a \(size)-byte batch of \(records) records)"
        case .invalidBatchHeader(let why): "invalid batch header (\(why))"
        case .malformedBatch(let why): "malformed batch (\(why))"
        case .inBatch(let record, let count, let damage): "record \(record) of a \(count)-record batch: \(damage)"
        }
    }
}

/// The result of reading one frame.
enum Frame {
    case record(StoreRecord, size: Int)
    case end
    case damaged(FrameDamage)
}

extension StoreRecord {
    /// Type byte plus body; a whole MQTT payload (256 MiB) plus its topic and ids must fit.
    static let maximumRecordLength = 268_435_455 + 65_535 + 64
    static let frameHeaderSize = 8

    /// Appends this record's frame to `buffer`. The checksum covers the length field, the type and the body,
    /// so a damaged length is caught as well as damaged contents.
    func appendFrame(to buffer: inout [UInt8]) {
        append(to: &buffer, headerSize: StoreRecord.frameHeaderSize) { raw, start in
            var crc = CRC32C.checksum(UnsafeRawBufferPointer(rebasing: raw[start..<start + 4]))
            crc = CRC32C.checksum(
                UnsafeRawBufferPointer(rebasing: raw[(start + StoreRecord.frameHeaderSize)...]), continuing: crc)
            raw.storeBytes(of: crc.littleEndian, toByteOffset: start + 4, as: UInt32.self)
        }
    }

    static let entryHeaderSize = 4

    /// Appends this record as an entry of a batch: the frame without a checksum of its own.
    func appendEntry(to buffer: inout [UInt8]) {
        append(to: &buffer, headerSize: StoreRecord.entryHeaderSize) { _, _ in }
    }

    /// The length, `headerSize - 4` bytes left for `seal`, then the type and body; `seal` gets the buffer and the
    /// record's start once the rest is written.
    ///
    /// Sized first and written through a pointer: appending field by field to the growing array (a capacity check
    /// and a generic copy each) took ~140 ns for a 56-byte record, release build.
    private func append(
        to buffer: inout [UInt8], headerSize: Int, seal: (UnsafeMutableRawBufferPointer, _ start: Int) -> Void
    ) {
        let start = buffer.count
        let length = encodedLength
        buffer.append(contentsOf: repeatElement(0, count: headerSize + length))
        buffer.withUnsafeMutableBytes { raw in
            raw.storeBytes(of: UInt32(length).littleEndian, toByteOffset: start, as: UInt32.self)
            encode(into: raw, at: start + headerSize)
            seal(raw, start)
        }
    }

    /// This record's frame as a new array.
    public var frame: [UInt8] {
        var buffer: [UInt8] = []
        appendFrame(to: &buffer)
        return buffer
    }

    /// Reads the frame at `offset`. `.end` only when `offset` is exactly the end of the bytes.
    static func readFrame(in bytes: UnsafeRawBufferPointer, at offset: Int) -> Frame {
        let available = bytes.count - offset
        if available == 0 { return .end }
        if available < frameHeaderSize {
            return isZero(bytes, from: offset)
                ? .damaged(.zeroFilledTail(bytes: available))
                : .damaged(.tornHeader(available: available))
        }
        let length = UInt32(littleEndian: bytes.loadUnaligned(fromByteOffset: offset, as: UInt32.self))
        let storedCRC = UInt32(littleEndian: bytes.loadUnaligned(fromByteOffset: offset + 4, as: UInt32.self))
        if length == 0 && storedCRC == 0 && isZero(bytes, from: offset) {
            return .damaged(.zeroFilledTail(bytes: available))
        }
        guard length > 0, length <= maximumRecordLength else { return .damaged(.invalidLength(length)) }
        let size = frameHeaderSize + Int(length)
        guard size <= available else { return .damaged(.tornRecord(length: size, available: available)) }
        var crc = CRC32C.checksum(UnsafeRawBufferPointer(rebasing: bytes[offset..<offset + 4]))
        let body = UnsafeRawBufferPointer(rebasing: bytes[(offset + frameHeaderSize)..<(offset + size)])
        crc = CRC32C.checksum(body, continuing: crc)
        guard crc == storedCRC else { return .damaged(.checksumMismatch) }
        do {
            return .record(try decodeTypeAndBody(body), size: size)
        } catch {
            return .damaged(error)
        }
    }

    /// Reads the batch entry at `offset` of a batch's records, whose checksum has already been verified.
    static func readEntry(in bytes: UnsafeRawBufferPointer, at offset: Int) -> Frame {
        let available = bytes.count - offset
        if available == 0 { return .end }
        guard available >= entryHeaderSize else { return .damaged(.tornHeader(available: available)) }
        let length = UInt32(littleEndian: bytes.loadUnaligned(fromByteOffset: offset, as: UInt32.self))
        guard length > 0, length <= maximumRecordLength else { return .damaged(.invalidLength(length)) }
        let size = entryHeaderSize + Int(length)
        guard size <= available else { return .damaged(.tornRecord(length: size, available: available)) }
        do {
            let body = UnsafeRawBufferPointer(rebasing: bytes[(offset + entryHeaderSize)..<(offset + size)])
            return .record(try decodeTypeAndBody(body), size: size)
        } catch {
            return .damaged(error)
        }
    }

    static func isZero(_ bytes: UnsafeRawBufferPointer, from offset: Int) -> Bool {
        for index in offset..<bytes.count where bytes[index] != 0 { return false }
        return true
    }

    /// `decode`, its failure worded as damage for the recovery report.
    static func decodeTypeAndBody(_ body: UnsafeRawBufferPointer) throws(FrameDamage) -> StoreRecord {
        do {
            return try decode(body)
        } catch {
            switch error {
            case .unknownType(let type): throw .unknownType(type)
            case .malformed(let why): throw .malformedBody(why)
            }
        }
    }
}

extension [UInt8] {
    mutating func appendInteger<T: FixedWidthInteger>(_ value: T) {
        Swift.withUnsafeBytes(of: value.littleEndian) { append(contentsOf: $0) }
    }
}
