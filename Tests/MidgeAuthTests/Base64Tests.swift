// Base64 as the password files and tokens use it (RFC 4648 §4, §5).
import XCTest

@testable import MidgeAuth

final class Base64Tests: XCTestCase {
    /// RFC 4648 §10 test vectors, both directions.
    func testRFC4648Vectors() {
        let vectors = [
            "": "", "f": "Zg==", "fo": "Zm8=", "foo": "Zm9v", "foob": "Zm9vYg==", "fooba": "Zm9vYmE=",
            "foobar": "Zm9vYmFy",
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
        for bad in ["Z", "Zg=", "Z===", "Zm9v!", "Zg==Zg==", "=Zg=", "Zm 9v", "Zm9-"] {
            XCTAssertNil(Base64.decode(Array(bad.utf8)), bad)
        }
    }

    func testURLSafeAlphabetWithoutPadding() {
        XCTAssertEqual(Base64.encode([0xFB, 0xFF]), "+/8=")
        XCTAssertEqual(Base64.decodeURL(Array("-_8".utf8)), [0xFB, 0xFF])
        XCTAssertNil(Base64.decodeURL(Array("-_8=".utf8)))
        XCTAssertNil(Base64.decodeURL(Array("+/8".utf8)))
    }
}
