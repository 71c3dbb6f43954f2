// CRC-32C against the standard check value and the RFC 3720 §B.4 vectors, and slicing-by-8 against bitwise.
import XCTest

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

    private func bitwise(_ bytes: [UInt8]) -> UInt32 {
        var crc: UInt32 = 0xFFFF_FFFF
        for byte in bytes {
            crc ^= UInt32(byte)
            for _ in 0..<8 { crc = crc & 1 == 1 ? (crc >> 1) ^ 0x82F6_3B78 : crc >> 1 }
        }
        return ~crc
    }
}
