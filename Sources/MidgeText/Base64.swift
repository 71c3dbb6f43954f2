// Base64 (RFC 4648): the standard alphabet with optional `=` padding (password files, WebSocket keys, Basic
// credentials, binary payloads) and the URL-safe alphabet without padding (JSON Web Tokens, RFC 7515 §2).

public enum Base64 {
    private static let alphabet = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/".utf8)

    /// Padded standard base64 with no line breaks, as OpenSSL's base64 BIO writes it.
    public static func encode<C: Collection>(_ bytes: C) -> String where C.Element == UInt8 {
        var out: [UInt8] = []
        out.reserveCapacity((bytes.count + 2) / 3 * 4)
        var group: UInt32 = 0
        var count = 0
        for byte in bytes {
            group = group << 8 | UInt32(byte)
            count += 1
            if count == 3 {
                for shift in [18, 12, 6, 0] { out.append(alphabet[Int(group >> UInt32(shift) & 0x3F)]) }
                group = 0
                count = 0
            }
        }
        if count > 0 {
            group <<= UInt32(8 * (3 - count))
            for position in 0...count { out.append(alphabet[Int(group >> UInt32(18 - 6 * position) & 0x3F)]) }
            for _ in count..<3 { out.append(UInt8(ascii: "=")) }
        }
        return String(decoding: out, as: UTF8.self)
    }

    /// Standard base64; `=` padding may be present (then the length is a multiple of 4) or left off, as OpenSSL's
    /// decoder, which mosquitto uses, accepts both. Nil for any other byte, a misplaced `=`, an impossible length,
    /// or leftover bits that are not zero: one value has one spelling.
    public static func decode<C: Collection>(_ text: C) -> [UInt8]? where C.Element == UInt8 {
        decode(text, plus: UInt8(ascii: "+"), slash: UInt8(ascii: "/"), allowPadding: true)
    }

    /// URL-safe base64 without padding, as RFC 7515 §2 requires for JWS; canonical only, so a token has one
    /// spelling.
    public static func decodeURL<C: Collection>(_ text: C) -> [UInt8]? where C.Element == UInt8 {
        decode(text, plus: UInt8(ascii: "-"), slash: UInt8(ascii: "_"), allowPadding: false)
    }

    private static func decode<C: Collection>(
        _ text: C, plus: UInt8, slash: UInt8, allowPadding: Bool
    ) -> [UInt8]? where C.Element == UInt8 {
        var symbols = Array(text)
        if allowPadding && symbols.count % 4 == 0 {
            // Up to two `=` may close a padded string; anywhere else `=` is an error below.
            var padding = 0
            while padding < 2, symbols.last == UInt8(ascii: "=") {
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
        guard accumulator == 0 else { return nil }
        return out
    }
}
