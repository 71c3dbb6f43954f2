// MQTT's UTF-8 string rules (§1.5.3): well-formed, no surrogates, no overlong forms, no U+0000.

public enum UTF8Validation {
    /// True when `bytes` is well-formed UTF-8 that MQTT accepts [MQTT-1.5.3-1] [MQTT-1.5.3-2].
    /// U+FEFF is an ordinary character and is kept [MQTT-1.5.3-3].
    @inlinable
    public static func isValidMQTTString<C: Collection>(_ bytes: C) -> Bool where C.Element == UInt8 {
        var index = bytes.startIndex
        let end = bytes.endIndex
        while index != end {
            let lead = bytes[index]
            if lead < 0x80 {
                if lead == 0 { return false }
                bytes.formIndex(after: &index)
                continue
            }
            let length: Int
            let minimum: UInt32
            var scalar: UInt32
            switch lead {
            case 0xC2...0xDF: length = 2; minimum = 0x80; scalar = UInt32(lead & 0x1F)
            case 0xE0...0xEF: length = 3; minimum = 0x800; scalar = UInt32(lead & 0x0F)
            case 0xF0...0xF4: length = 4; minimum = 0x10000; scalar = UInt32(lead & 0x07)
            default: return false  // continuation byte as lead, C0/C1 (always overlong) or F5..FF
            }
            bytes.formIndex(after: &index)
            for _ in 1..<length {
                guard index != end else { return false }
                let continuation = bytes[index]
                guard continuation & 0xC0 == 0x80 else { return false }
                scalar = scalar << 6 | UInt32(continuation & 0x3F)
                bytes.formIndex(after: &index)
            }
            if scalar < minimum || scalar > 0x10FFFF || (0xD800...0xDFFF).contains(scalar) { return false }
        }
        return true
    }
}
