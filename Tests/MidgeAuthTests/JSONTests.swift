// The strict JSON reader behind token headers and claims (RFC 8259).
import XCTest

@testable import MidgeAuth

final class JSONTests: XCTestCase {
    private func parse(_ text: String) -> JSONValue? { JSONValue.parse(Array(text.utf8)) }

    func testValues() {
        XCTAssertEqual(
            parse(#" {"a": [1, -2.5e3, true, false, null, "x"], "b": {}} "#),
            .object([
                "a": .array([.number(1), .number(-2500), .bool(true), .bool(false), .null, .string("x")]),
                "b": .object([:]),
            ]))
        XCTAssertEqual(parse("2000000000"), .number(2_000_000_000))
        XCTAssertEqual(parse("[]"), .array([]))
    }

    func testStringEscapes() {
        XCTAssertEqual(parse(#""a\"b\\c\/d\n\t\u00e9\ud83d\ude00""#), .string("a\"b\\c/d\n\té😀"))
        XCTAssertEqual(parse("\"zoë\""), .string("zoë"))
    }

    func testRejectsWhatRFC8259DoesNotAllow() {
        let bad = [
            "", "{", "[1,]", "{\"a\":1,}", "01", "1.", ".5", "-", "+1", "1e", "\"abc", "\"\u{01}\"", "'a'",
            "tru", "nul", "{\"a\" 1}", "[1 2]", "\"\\x\"", "\"\\ud83d\"", "\"\\ude00\"", "1 2", "NaN", "{a:1}",
        ]
        for text in bad { XCTAssertNil(parse(text), text) }
        XCTAssertNil(JSONValue.parse([0x22, 0xFF, 0x22]), "invalid UTF-8")
    }

    func testRejectsDuplicateKeys() {
        XCTAssertNil(parse(#"{"sub":"alice","sub":"admin"}"#))
    }

    func testDepthIsBounded() {
        XCTAssertNotNil(parse(String(repeating: "[", count: 32) + String(repeating: "]", count: 32)))
        XCTAssertNil(parse(String(repeating: "[", count: 10_000) + String(repeating: "]", count: 10_000)))
    }
}
