// Base64 as password files, tokens, WebSocket keys, Basic credentials and binary payloads use it (RFC 4648 §4, §5).
import MidgeText
import XCTest

final class Base64Tests: XCTestCase {
    /// RFC 4648 §10 test vectors, both directions.
    func testRFC4648Vectors() {
        let vectors = [
            ("", ""), ("f", "Zg=="), ("fo", "Zm8="), ("foo", "Zm9v"), ("foob", "Zm9vYg=="), ("fooba", "Zm9vYmE="),
            ("foobar", "Zm9vYmFy"),
        ]
        for (plain, encoded) in vectors {
            XCTAssertEqual(Base64.encode(Array(plain.utf8)), encoded)
            XCTAssertEqual(Base64.decode(Array(encoded.utf8)), Array(plain.utf8), encoded)
        }
    }

    /// OpenSSL's decoder, which mosquitto uses, accepts unpadded input; so does ours.
    func testUnpaddedInputDecodes() {
        XCTAssertEqual(Base64.decode(Array("Zg".utf8)), Array("f".utf8))
        XCTAssertEqual(Base64.decode(Array("Zm8".utf8)), Array("fo".utf8))
    }

    func testMalformedInputIsRejected() {
        for bad in ["Z", "Zg=", "Z===", "Zm9v!", "Zg==Zg==", "=Zg=", "Zm 9v", "Zm9-", "Zm=v"] {
            XCTAssertNil(Base64.decode(Array(bad.utf8)), bad)
        }
    }

    /// Non-zero bits after the last byte are not a canonical encoding: one value, one spelling (a token's
    /// signature cannot be written two ways).
    func testNonCanonicalEncodingsAreRejected() {
        XCTAssertNil(Base64.decode(Array("Zh==".utf8)))
        XCTAssertNil(Base64.decodeURL(Array("Zh".utf8)))
        XCTAssertEqual(Base64.decodeURL(Array("Zg".utf8)), Array("f".utf8))
    }

    func testURLSafeAlphabetWithoutPadding() {
        XCTAssertEqual(Base64.encode([0xFB, 0xFF]), "+/8=")
        XCTAssertEqual(Base64.decodeURL(Array("-_8".utf8)), [0xFB, 0xFF])
        XCTAssertNil(Base64.decodeURL(Array("-_8=".utf8)))
        XCTAssertNil(Base64.decodeURL(Array("+/8".utf8)))
    }

    func testAllByteValuesRoundTrip() {
        let bytes = (0...255).map { UInt8($0) }
        for length in [0, 1, 2, 3, 4, 255, 256] {
            let slice = Array(bytes.prefix(length))
            XCTAssertEqual(Base64.decode(Array(Base64.encode(slice).utf8)), slice)
            XCTAssertEqual(Base64.encode(slice[...]), Base64.encode(slice), "any collection encodes the same")
        }
    }
}
