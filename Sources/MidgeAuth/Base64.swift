// Base64 as mosquitto's password files use it (RFC 4648 §4, standard alphabet, `=` padding) and the
// URL-safe form JSON Web Tokens use (RFC 4648 §5, no padding).

enum Base64 {
    private static let alphabet = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/".utf8)

    /// Standard base64; padding may be present or left off (OpenSSL's decoder accepts both, so files
    /// edited by hand may have either). Nil for any other byte, a misplaced `=`, or an impossible length.
    static func decode<C: Collection>(_ text: C) -> [UInt8]? where C.Element == UInt8 {
        decode(text, plus: UInt8(ascii: "+"), slash: UInt8(ascii: "/"), allowPadding: true)
    }

    /// URL-safe base64 without padding, as RFC 7515 §2 requires for JWS.
    static func decodeURL<C: Collection>(_ text: C) -> [UInt8]? where C.Element == UInt8 {
        decode(text, plus: UInt8(ascii: "-"), slash: UInt8(ascii: "_"), allowPadding: false)
    }

    /// Padded standard base64, as OpenSSL's base64 BIO writes it with no line breaks. Tokens are only ever read,
    /// so there is no URL-safe encoder.
    static func encode(_ bytes: [UInt8]) -> String {
        var out: [UInt8] = []
        out.reserveCapacity((bytes.count + 2) / 3 * 4)
        var index = 0
        while index + 3 <= bytes.count {
            let value = UInt32(bytes[index]) << 16 | UInt32(bytes[index + 1]) << 8 | UInt32(bytes[index + 2])
            out.append(alphabet[Int(value >> 18 & 0x3F)])
            out.append(alphabet[Int(value >> 12 & 0x3F)])
            out.append(alphabet[Int(value >> 6 & 0x3F)])
            out.append(alphabet[Int(value & 0x3F)])
            index += 3
        }
        let rest = bytes.count - index
        if rest > 0 {
            var value = UInt32(bytes[index]) << 16
            if rest == 2 { value |= UInt32(bytes[index + 1]) << 8 }
            out.append(alphabet[Int(value >> 18 & 0x3F)])
            out.append(alphabet[Int(value >> 12 & 0x3F)])
            if rest == 2 { out.append(alphabet[Int(value >> 6 & 0x3F)]) }
            out.append(contentsOf: Array(repeating: UInt8(ascii: "="), count: 3 - rest))
        }
        return String(decoding: out, as: UTF8.self)
    }

    private static func decode<C: Collection>(
        _ text: C, plus: UInt8, slash: UInt8, allowPadding: Bool
    ) -> [UInt8]? where C.Element == UInt8 {
        var symbols = Array(text)
        if allowPadding && symbols.count % 4 == 0 {
            // Up to two `=` may close a padded string; anywhere else `=` is an error below.
            var padding = 0
            while padding < 2, let last = symbols.last, last == UInt8(ascii: "=") {
                symbols.removeLast()
                padding += 1
            }
        }
        // 1 symbol left over carries only 6 bits: not a whole byte.
        guard symbols.count % 4 != 1 else { return nil }
        var out: [UInt8] = []
        out.reserveCapacity(symbols.count * 3 / 4)
        var accumulator: UInt32 = 0
        var bits = 0
        for symbol in symbols {
            let value: UInt32
            switch symbol {
            case UInt8(ascii: "A")...UInt8(ascii: "Z"): value = UInt32(symbol - UInt8(ascii: "A"))
            case UInt8(ascii: "a")...UInt8(ascii: "z"): value = UInt32(symbol - UInt8(ascii: "a")) + 26
            case UInt8(ascii: "0")...UInt8(ascii: "9"): value = UInt32(symbol - UInt8(ascii: "0")) + 52
            case plus: value = 62
            case slash: value = 63
            default: return nil
            }
            accumulator = accumulator << 6 | value
            bits += 6
            if bits >= 8 {
                bits -= 8
                out.append(UInt8(truncatingIfNeeded: accumulator >> UInt32(bits)))
                accumulator &= (1 << UInt32(bits)) - 1
            }
        }
        return out
    }
}
