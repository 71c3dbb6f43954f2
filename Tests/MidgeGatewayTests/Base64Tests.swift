// Base64 (RFC 4648 §10 test vectors) as the gateway uses it: WebSocket keys, Basic credentials, binary payloads.

import XCTest

@testable import MidgeGateway

final class Base64Tests: XCTestCase {
    /// RFC 4648 §10: "", "f", "fo", "foo", "foob", "fooba", "foobar".
    func testRFC4648Vectors() {
        let vectors = [
            ("", ""), ("f", "Zg=="), ("fo", "Zm8="), ("foo", "Zm9v"), ("foob", "Zm9vYg=="), ("fooba", "Zm9vYmE="),
            ("foobar", "Zm9vYmFy"),
        ]
        for (plain, encoded) in vectors {
            XCTAssertEqual(Base64.encode(Array(plain.utf8)), encoded)
            XCTAssertEqual(Base64.decode(Array(encoded.utf8)), Array(plain.utf8))
        }
    }

    func testDecodeAcceptsMissingPaddingAndRefusesGarbage() {
        XCTAssertEqual(Base64.decode(Array("Zm8".utf8)), Array("fo".utf8))
        XCTAssertNil(Base64.decode(Array("Zm9v!".utf8)))
        XCTAssertNil(Base64.decode(Array("Z".utf8)))
        XCTAssertNil(Base64.decode(Array("Zm=v".utf8)))
        // "Zh==" carries non-zero bits after the last byte: not a canonical encoding.
        XCTAssertNil(Base64.decode(Array("Zh==".utf8)))
    }

    func testAllByteValuesRoundTrip() {
        let bytes = (0...255).map { UInt8($0) }
        for length in [0, 1, 2, 3, 4, 255, 256] {
            let slice = Array(bytes.prefix(length))
            XCTAssertEqual(Base64.decode(Array(Base64.encode(slice).utf8)), slice)
        }
    }
}
