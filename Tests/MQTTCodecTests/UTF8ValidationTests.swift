// MQTT's UTF-8 rules (§1.5.3) on both validator paths: the contiguous fast scan and the generic collection loop.

import XCTest

@testable import MQTTCodec

final class UTF8ValidationTests: XCTestCase {
    static let cases: [(name: String, bytes: [UInt8], valid: Bool)] = [
        ("empty", [], true),
        ("ASCII", utf8("sensors/room-1"), true),
        ("U+007F, the last one-byte scalar", [0x7F], true),
        ("U+0080 (C2 80)", [0xC2, 0x80], true),
        ("é (C3 A9)", [0xC3, 0xA9], true),
        ("U+07FF (DF BF)", [0xDF, 0xBF], true),
        ("U+0800 (E0 A0 80)", [0xE0, 0xA0, 0x80], true),
        ("€ (E2 82 AC)", [0xE2, 0x82, 0xAC], true),
        ("U+D7FF, just below the surrogates (ED 9F BF)", [0xED, 0x9F, 0xBF], true),
        ("U+E000, just above the surrogates (EE 80 80)", [0xEE, 0x80, 0x80], true),
        ("MQTT-1.5.3-3 U+FEFF is kept (EF BB BF)", [0xEF, 0xBB, 0xBF], true),
        ("U+FFFF, a non-character MQTT does not forbid (EF BF BF)", [0xEF, 0xBF, 0xBF], true),
        ("U+10000 (F0 90 80 80)", [0xF0, 0x90, 0x80, 0x80], true),
        ("𝄞 U+1D11E (F0 9D 84 9E)", [0xF0, 0x9D, 0x84, 0x9E], true),
        ("U+10FFFF, the last scalar (F4 8F BF BF)", [0xF4, 0x8F, 0xBF, 0xBF], true),
        ("MQTT-1.5.3-2 U+0000", [0x00], false),
        ("MQTT-1.5.3-2 U+0000 inside", [0x61, 0x00, 0x62], false),
        ("MQTT-1.5.3-1 surrogate U+D800 (ED A0 80)", [0xED, 0xA0, 0x80], false),
        ("MQTT-1.5.3-1 surrogate U+DFFF (ED BF BF)", [0xED, 0xBF, 0xBF], false),
        ("MQTT-1.5.3-1 surrogate pair as CESU-8 (ED A0 BD ED B8 80)", [0xED, 0xA0, 0xBD, 0xED, 0xB8, 0x80], false),
        ("overlong '/' (C0 AF)", [0xC0, 0xAF], false),
        ("overlong U+007F (C1 BF)", [0xC1, 0xBF], false),
        ("overlong U+0000 (C0 80)", [0xC0, 0x80], false),
        ("overlong '/' in three bytes (E0 80 AF)", [0xE0, 0x80, 0xAF], false),
        ("overlong U+07FF in three bytes (E0 9F BF)", [0xE0, 0x9F, 0xBF], false),
        ("overlong '/' in four bytes (F0 80 80 AF)", [0xF0, 0x80, 0x80, 0xAF], false),
        ("overlong U+FFFF in four bytes (F0 8F BF BF)", [0xF0, 0x8F, 0xBF, 0xBF], false),
        ("above U+10FFFF (F4 90 80 80)", [0xF4, 0x90, 0x80, 0x80], false),
        ("F5 lead byte", [0xF5, 0x80, 0x80, 0x80], false),
        ("F8 lead byte", [0xF8, 0x88, 0x80, 0x80, 0x80], false),
        ("FE", [0xFE], false),
        ("FF", [0xFF], false),
        ("lone continuation byte 80", [0x80], false),
        ("lone continuation byte BF", [0xBF], false),
        ("truncated two-byte sequence (C3)", [0xC3], false),
        ("truncated three-byte sequence (E2 82)", [0xE2, 0x82], false),
        ("truncated four-byte sequence (F0 9D 84)", [0xF0, 0x9D, 0x84], false),
        ("continuation replaced by ASCII (C3 28)", [0xC3, 0x28], false),
        ("continuation replaced by a lead byte (E2 C3 A9)", [0xE2, 0xC3, 0xA9], false),
    ]

    func testTheTable() {
        for item in Self.cases {
            XCTAssertEqual(UTF8Validation.isValidMQTTString(item.bytes), item.valid, "contiguous: \(item.name)")
            XCTAssertEqual(
                UTF8Validation.isValidMQTTString(item.bytes.lazy.map { $0 }), item.valid, "generic: \(item.name)")
        }
    }

    func testTheTableAtEveryOffsetOfAnEightByteWord() {
        // The fast path reads eight bytes at a time; move each case across word boundaries and into long runs.
        for item in Self.cases {
            for lead in 0...9 {
                for trail in [0, 1, 7, 8, 17] {
                    let bytes =
                        [UInt8](repeating: 0x61, count: lead) + item.bytes + [UInt8](repeating: 0x62, count: trail)
                    XCTAssertEqual(
                        UTF8Validation.isValidMQTTString(bytes), item.valid,
                        "\(item.name), \(lead) before, \(trail) after")
                    XCTAssertEqual(
                        UTF8Validation.isValidMQTTString(bytes.lazy.map { $0 }), item.valid,
                        "generic: \(item.name), \(lead) before, \(trail) after")
                }
            }
        }
    }

    func testAgreesWithTheStandardLibraryOnPseudoRandomBytes() {
        // Swift's own decoder rejects surrogates, overlong forms and values above U+10FFFF; MQTT also rejects U+0000.
        var generator = SplitMix64(seed: 0x4D51_5454)
        let alphabet: [UInt8] = [
            0x00, 0x2F, 0x61, 0x7F, 0x80, 0x9F, 0xA0, 0xBF, 0xC0, 0xC2, 0xDF, 0xE0, 0xED, 0xEF, 0xF0, 0xF4, 0xF5,
        ]
        for _ in 0..<20_000 {
            let count = Int(generator.next() % 12)
            var bytes: [UInt8] = []
            for _ in 0..<count {
                let pick = generator.next()
                bytes.append(
                    pick & 1 == 0 ? alphabet[Int(pick >> 1) % alphabet.count] : UInt8(truncatingIfNeeded: pick >> 8))
            }
            let expected = String(validating: bytes, as: UTF8.self) != nil && !bytes.contains(0)
            XCTAssertEqual(UTF8Validation.isValidMQTTString(bytes), expected, "\(bytes)")
            XCTAssertEqual(UTF8Validation.isValidMQTTString(bytes.lazy.map { $0 }), expected, "generic \(bytes)")
        }
    }

    func testTheViolationNamesTheRuleBroken() {
        ([0x61, 0x00] as [UInt8]).withUnsafeBytes { raw in
            XCTAssertEqual(UTF8Validation.violation(raw), "contains U+0000 [MQTT-1.5.3-2]")
        }
        ([0xC0, 0xAF] as [UInt8]).withUnsafeBytes { raw in
            XCTAssertEqual(UTF8Validation.violation(raw), "is not well-formed UTF-8 [MQTT-1.5.3-1]")
        }
    }
}

/// A small deterministic generator, so the property test sees the same bytes on every run.
struct SplitMix64 {
    var state: UInt64

    init(seed: UInt64) {
        state = seed
    }

    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}
