import XCTest

// Record and batch framing: every type round-trips, the layouts are as documented, and damage is named precisely.
@testable import MidgeRecords
@testable import MidgeStore

final class RecordCodingTests: XCTestCase {
    func testEveryRecordTypeRoundTrips() {
        for record in everyRecordType {
            let frame = record.frame
            let decoded = frame.withUnsafeBytes { StoreRecord.readFrame(in: $0, at: 0) }
            guard case .record(let back, let size) = decoded else {
                XCTFail("\(record) did not decode: \(decoded)")
                continue
            }
            XCTAssertEqual(back, record)
            XCTAssertEqual(size, frame.count)
        }
    }

    func testRoundTripOfAConcatenatedLog() {
        let records = brokerHistory(count: 2000, seed: 1)
        var bytes: [UInt8] = []
        for record in records { record.appendFrame(to: &bytes) }
        var decoded: [StoreRecord] = []
        bytes.withUnsafeBytes { raw in
            var offset = 0
            while case .record(let record, let size) = StoreRecord.readFrame(in: raw, at: offset) {
                decoded.append(record)
                offset += size
            }
            XCTAssertEqual(offset, raw.count)
        }
        XCTAssertEqual(decoded, records)
    }

    /// [length u32 LE][crc32c u32 LE over length, type and body][type u8][body].
    func testFrameLayout() {
        let frame = StoreRecord.sessionEnded(clientID: "ab").frame
        XCTAssertEqual(Array(frame[0..<4]), [5, 0, 0, 0])  // type + u16 length + "ab"
        XCTAssertEqual(Array(frame[8...]), [4, 2, 0, 0x61, 0x62])
        let crc = CRC32C.checksum(frame[8...], continuing: CRC32C.checksum(frame[0..<4]))
        XCTAssertEqual(
            Array(frame[4..<8]), [UInt8(crc & 0xFF), UInt8(crc >> 8 & 0xFF), UInt8(crc >> 16 & 0xFF), UInt8(crc >> 24)])
    }

    func testDamageIsNamed() {
        let frame = StoreRecord.sessionEnded(clientID: "ab").frame
        XCTAssertEqual(damage(Array(frame[0..<5])), .tornHeader(available: 5))
        XCTAssertEqual(damage(Array(frame[0..<10])), .tornRecord(length: 13, available: 10))
        XCTAssertEqual(damage([UInt8](repeating: 0, count: 20)), .zeroFilledTail(bytes: 20))
        XCTAssertEqual(damage([UInt8](repeating: 0, count: 3)), .zeroFilledTail(bytes: 3))
        var flipped = frame
        flipped[10] ^= 0x40
        XCTAssertEqual(damage(flipped), .checksumMismatch)
        XCTAssertEqual(damage([0xFF, 0xFF, 0xFF, 0xFF, 0, 0, 0, 0, 1]), .invalidLength(0xFFFF_FFFF))
        XCTAssertEqual(damage(framed([200, 1, 2])), .unknownType(200))
        // QoS 3 in a retained record, and a byte left over after the fields: valid checksums, bad contents.
        XCTAssertEqual(damage(framed([1, 1, 0, 0x61, 3, 0, 0, 0, 0])), .malformedBody("QoS 3"))
        XCTAssertEqual(damage(framed([4, 2, 0, 0x61, 0x62, 9])), .malformedBody("1 bytes after the fields"))
        XCTAssertEqual(damage(framed([2, 3, 0, 0x61, 0x2B, 0x62])), .malformedBody("invalid topic name"))
        XCTAssertEqual(damage(framed([12, 1, 0, 0x63, 0, 0])), .malformedBody("packet id 0"))
    }

    func testDamageDescriptionsSayWhy() {
        XCTAssertEqual(FrameDamage.checksumMismatch.description, "checksum mismatch")
        XCTAssertEqual(
            FrameDamage.tornRecord(length: 40, available: 13).description,
            "torn record (file ends 13 bytes into a 40-byte record)")
    }

    /// [records length u64][record count u32][crc32c of the records u32][crc32c of those 16 bytes u32], then each
    /// record as [length u32][type u8][body].
    func testBatchLayout() {
        let records: [StoreRecord] = [.sessionEnded(clientID: "ab"), .sessionEnded(clientID: "c")]
        var bytes: [UInt8] = []
        LogBatch.append(records, to: &bytes)
        let entries: [UInt8] = [5, 0, 0, 0, 4, 2, 0, 0x61, 0x62, 4, 0, 0, 0, 4, 1, 0, 0x63]
        XCTAssertEqual(Array(bytes[0..<12]), [UInt8(entries.count), 0, 0, 0, 0, 0, 0, 0, 2, 0, 0, 0])
        XCTAssertEqual(Array(bytes[12..<16]), littleEndian(CRC32C.checksum(entries)))
        XCTAssertEqual(Array(bytes[16..<20]), littleEndian(CRC32C.checksum(bytes[0..<16])))
        XCTAssertEqual(Array(bytes[20...]), entries)
        let read = bytes.withUnsafeBytes { LogBatch.read(in: $0, at: 0) }
        guard case .batch(let back, let size) = read else { return XCTFail("\(read)") }
        XCTAssertEqual(back, records)
        XCTAssertEqual(size, bytes.count)
        var empty: [UInt8] = []
        LogBatch.append([StoreRecord](), to: &empty)
        XCTAssertEqual(empty, [], "no records, no batch")
    }

    func testEveryRecordTypeRoundTripsThroughABatch() {
        var bytes: [UInt8] = []
        LogBatch.append(everyRecordType, to: &bytes)
        let read = bytes.withUnsafeBytes { LogBatch.read(in: $0, at: 0) }
        guard case .batch(let back, _) = read else { return XCTFail("\(read)") }
        XCTAssertEqual(back, everyRecordType)
    }

    func testBatchDamageIsNamed() {
        // 13 + 8 bytes: room for up to 4 records of the smallest size, 5 bytes.
        let entries: [UInt8] = [9, 0, 0, 0, 4, 6, 0] + Array("abcdef".utf8) + [4, 0, 0, 0, 4, 1, 0, 0x63]
        let batch = batchFramed(entries, count: 2)
        XCTAssertEqual(batchDamage(Array(batch[0..<7])), .tornBatchHeader(available: 7))
        XCTAssertEqual(
            batchDamage(Array(batch[0..<30])), .tornBatch(size: batch.count, available: 30, records: 2), "with count")
        XCTAssertEqual(batchDamage([UInt8](repeating: 0, count: 40)), .zeroFilledTail(bytes: 40))
        XCTAssertEqual(
            batchDamage(Array(batch[0..<20]) + [UInt8](repeating: 0, count: entries.count)),
            .zeroFilledTail(bytes: batch.count), "a header whose records never reached the disk")
        var flipped = batch
        flipped[9] ^= 0x01
        XCTAssertEqual(batchDamage(flipped), .invalidBatchHeader("checksum mismatch"))
        flipped = batch
        flipped[20 + 13 + 5] ^= 0x20
        XCTAssertEqual(batchDamage(flipped), .checksumMismatch)
        XCTAssertEqual(
            batchDamage(batchFramed(entries, count: 3)), .malformedBatch("2 records where its header says 3"))
        XCTAssertEqual(batchDamage(batchFramed(entries, count: 1)), .malformedBatch("8 bytes after its 1 records"))
        XCTAssertEqual(batchDamage(batchFramed(entries, count: 0)), .invalidBatchHeader("no records"))
        XCTAssertEqual(
            batchDamage(batchFramed(entries, count: 5)), .invalidBatchHeader("21 bytes cannot hold 5 records"))
        // The checksum holds but a record does not decode.
        var unknown = entries
        unknown[13 + 4] = 200
        XCTAssertEqual(batchDamage(batchFramed(unknown, count: 2)), .inBatch(record: 2, of: 2, .unknownType(200)))
        XCTAssertEqual(
            FrameDamage.tornBatch(size: 120, available: 37, records: 3).description,
            "torn batch (file ends 37 bytes into a 120-byte batch of 3 records)")
        XCTAssertEqual(
            FrameDamage.inBatch(record: 2, of: 5, .unknownType(200)).description,
            "record 2 of a 5-record batch: unknown record type 200")
    }

    private func littleEndian(_ value: UInt32) -> [UInt8] {
        [UInt8(value & 0xFF), UInt8(value >> 8 & 0xFF), UInt8(value >> 16 & 0xFF), UInt8(value >> 24)]
    }

    private func batchDamage(_ bytes: [UInt8]) -> FrameDamage? {
        let read = bytes.withUnsafeBytes { LogBatch.read(in: $0, at: 0) }
        if case .damaged(let damage) = read { return damage }
        XCTFail("expected damage, got \(read)")
        return nil
    }

    /// A batch with correct checksums around arbitrary record bytes and count.
    private func batchFramed(_ entries: [UInt8], count: UInt32) -> [UInt8] {
        var header: [UInt8] = []
        header.appendInteger(UInt64(entries.count))
        header.appendInteger(count)
        header.appendInteger(CRC32C.checksum(entries))
        header.appendInteger(CRC32C.checksum(header))
        return header + entries
    }

    private func damage(_ bytes: [UInt8]) -> FrameDamage? {
        let frame = bytes.withUnsafeBytes { StoreRecord.readFrame(in: $0, at: 0) }
        if case .damaged(let damage) = frame { return damage }
        XCTFail("expected damage, got \(frame)")
        return nil
    }

    /// A frame with a correct length and checksum around arbitrary type-and-body bytes.
    private func framed(_ typeAndBody: [UInt8]) -> [UInt8] {
        var frame: [UInt8] = []
        frame.appendInteger(UInt32(typeAndBody.count))
        let crc = CRC32C.checksum(typeAndBody, continuing: CRC32C.checksum(frame))
        frame.appendInteger(crc)
        return frame + typeAndBody
    }
}
