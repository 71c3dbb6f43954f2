import XCTest

// CRC-32C against the standard check value and the RFC 3720 §B.4 vectors, slicing-by-8 against bitwise, and the
// CPU's instruction against slicing-by-8.
@testable import MidgeRecords
@testable import MidgeStore

final class CRC32CTests: XCTestCase {
    func testStandardCheckValue() {
        XCTAssertEqual(CRC32C.checksum(Array("123456789".utf8)), 0xE306_9283)
    }

    func testRFC3720Vectors() {
        XCTAssertEqual(CRC32C.checksum([UInt8](repeating: 0, count: 32)), 0x8A91_36AA)
        XCTAssertEqual(CRC32C.checksum([UInt8](repeating: 0xFF, count: 32)), 0x62A8_AB43)
        XCTAssertEqual(CRC32C.checksum((0..<32).map { UInt8($0) }), 0x46DD_794E)
        XCTAssertEqual(CRC32C.checksum((0..<32).reversed().map { UInt8($0) }), 0x113F_DB5C)
    }

    func testEmptyInputIsZero() {
        XCTAssertEqual(CRC32C.checksum([]), 0)
    }

    /// Every length around the 8-byte stride, every split point: same answer as one bit at a time.
    func testSlicingMatchesBitwiseAtEveryLengthAndSplit() {
        var random = SeededGenerator(state: 3720)
        for length in 0..<70 {
            let bytes = (0..<length).map { _ in UInt8.random(in: 0...255, using: &random) }
            let expected = bitwise(bytes)
            XCTAssertEqual(CRC32C.checksum(bytes), expected, "length \(length)")
            for split in 0...length {
                let first = CRC32C.checksum(bytes[0..<split])
                XCTAssertEqual(
                    CRC32C.checksum(bytes[split...], continuing: first), expected, "split \(split)/\(length)")
            }
        }
    }

    /// The CPU's instruction and the table agree on random inputs of every length up to 300, from every alignment
    /// within a word, and when continued from any split point.
    func testHardwareMatchesSoftwareOnRandomInputs() throws {
        guard CRC32C.hardwareAvailable else { throw XCTSkip("this CPU has no CRC-32C instruction") }
        var random = SeededGenerator(state: 2026)
        let buffer = (0..<(300 + 16)).map { _ in UInt8.random(in: 0...255, using: &random) }
        buffer.withUnsafeBytes { raw in
            for length in 0...300 {
                for alignment in 0..<16 {
                    let bytes = UnsafeRawBufferPointer(rebasing: raw[alignment..<alignment + length])
                    let seed = UInt32(truncatingIfNeeded: random.next())
                    XCTAssertEqual(
                        CRC32C.hardwareChecksum(bytes, continuing: seed),
                        CRC32C.softwareChecksum(bytes, continuing: seed),
                        "length \(length) alignment \(alignment)")
                }
                let split = Int.random(in: 0...length, using: &random)
                let whole = UnsafeRawBufferPointer(rebasing: raw[0..<length])
                let first = CRC32C.hardwareChecksum(UnsafeRawBufferPointer(rebasing: raw[0..<split]), continuing: 0)
                XCTAssertEqual(
                    CRC32C.hardwareChecksum(UnsafeRawBufferPointer(rebasing: raw[split..<length]), continuing: first),
                    CRC32C.softwareChecksum(whole, continuing: 0), "split \(split)/\(length)")
            }
        }
        XCTAssertEqual(
            Array("123456789".utf8).withUnsafeBytes { CRC32C.hardwareChecksum($0, continuing: 0) }, 0xE306_9283)
    }

    /// Not a pass/fail test: what a typical record's checksum costs each way on this machine.
    func testPrintCostPerRecord() {
        let record = [UInt8](repeating: 0x5A, count: 100)
        var sink: UInt32 = 0
        for (name, hardware) in [("table", false), ("instruction", true)] where !hardware || CRC32C.hardwareAvailable {
            let start = monotonicNanoseconds()
            record.withUnsafeBytes { raw in
                for _ in 0..<200_000 {
                    sink ^=
                        hardware
                        ? CRC32C.hardwareChecksum(raw, continuing: sink)
                        : CRC32C.softwareChecksum(raw, continuing: sink)
                }
            }
            let nanoseconds = Double(monotonicNanoseconds() - start) / 200_000
            print("CRC-32C of 100 bytes (\(name)): \((nanoseconds * 10).rounded() / 10) ns")
        }
        XCTAssertNotEqual(sink, 1, "keeps the loop")
    }

    /// Not a pass/fail test: a writer batch of durable QoS 1 records (body, in flight, completed) encoded as
    /// checksummed frames and as a batch with one checksum, and the checksum work alone each way. Run it in a
    /// release build for figures that mean anything.
    func testPrintPerRecordAgainstPerBatchChecksums() {
        var records: [StoreRecord] = []
        for id in UInt64(1)...300 {
            records.append(
                .messageStored(
                    id: id, topic: topic("bench/\(id % 8)"), payload: [UInt8](repeating: 0x5A, count: 64),
                    qos: .atLeastOnce))
            records.append(
                .deliveryInFlight(
                    clientID: "bench-subscriber-0", messageID: id, packetID: packet(UInt16(id)), qos: .atLeastOnce,
                    retain: false, state: .publishSent))
            records.append(.deliveryCompleted(clientID: "bench-subscriber-0", delivery: .packet(packet(UInt16(id)))))
        }
        var framed: [UInt8] = []
        var frames: [Range<Int>] = []
        for record in records {
            let start = framed.count
            record.appendFrame(to: &framed)
            frames.append(start..<framed.count)
        }
        var batch: [UInt8] = []
        let rounds = 300
        func time(_ body: () -> Void) -> Double {
            let start = monotonicNanoseconds()
            for _ in 0..<rounds { body() }
            return Double(monotonicNanoseconds() - start) / Double(rounds * records.count)
        }
        var sink: UInt32 = 0
        var scratch: [UInt8] = []
        let encodeFrames = time {
            scratch.removeAll(keepingCapacity: true)
            for record in records { record.appendFrame(to: &scratch) }
        }
        let encodeBatch = time {
            batch.removeAll(keepingCapacity: true)
            LogBatch.append(records, to: &batch)
        }
        let perRecord = time {
            framed.withUnsafeBytes { raw in
                for frame in frames {
                    let length = UnsafeRawBufferPointer(rebasing: raw[frame.lowerBound..<frame.lowerBound + 4])
                    let body = UnsafeRawBufferPointer(rebasing: raw[(frame.lowerBound + 8)..<frame.upperBound])
                    sink ^= CRC32C.checksum(body, continuing: CRC32C.checksum(length))
                }
            }
        }
        let perBatch = time { sink ^= batch.withUnsafeBytes { CRC32C.checksum($0) } }
        func rounded(_ value: Double) -> Double { (value * 10).rounded() / 10 }
        print(
            "per record of a durable QoS 1 batch (hardware CRC: \(CRC32C.hardwareAvailable)): encoded as checksummed "
                + "frames \(rounded(encodeFrames)) ns (\(framed.count / records.count) bytes), as one batch "
                + "\(rounded(encodeBatch)) ns (\(batch.count / records.count) bytes); the checksum work alone "
                + "\(rounded(perRecord)) ns per record, \(rounded(perBatch)) ns over the batch")
        XCTAssertNotEqual(sink, 1, "keeps the loops")
    }

    private func bitwise(_ bytes: [UInt8]) -> UInt32 {
        var crc: UInt32 = 0xFFFF_FFFF
        for byte in bytes {
            crc ^= UInt32(byte)
            for _ in 0..<8 { crc = crc & 1 == 1 ? (crc >> 1) ^ 0x82F6_3B78 : crc >> 1 }
        }
        return ~crc
    }
}
