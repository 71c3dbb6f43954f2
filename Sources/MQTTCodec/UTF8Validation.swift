// MQTT's UTF-8 string rules (§1.5.3): well-formed, no surrogates, no overlong forms, no U+0000.

public enum UTF8Validation {
    /// True when `bytes` is well-formed UTF-8 that MQTT accepts [MQTT-1.5.3-1] [MQTT-1.5.3-2].
    /// U+FEFF is an ordinary character and is kept [MQTT-1.5.3-3].
    @inlinable
    public static func isValidMQTTString<C: Collection>(_ bytes: C) -> Bool where C.Element == UInt8 {
        if let valid = bytes.withContiguousStorageIfAvailable({
            scan(UnsafeRawBufferPointer($0), rejectingWildcards: false)
        }) {
            return valid
        }
        var index = bytes.startIndex
        let end = bytes.endIndex
        while index != end {
            let lead = bytes[index]
            if lead < 0x80 {
                if lead == 0 { return false }
                bytes.formIndex(after: &index)
                continue
            }
            guard let sequence = Sequence(lead: lead) else { return false }
            var scalar = sequence.leadBits
            bytes.formIndex(after: &index)
            for _ in 1..<sequence.length {
                guard index != end else { return false }
                let continuation = bytes[index]
                guard continuation & 0xC0 == 0x80 else { return false }
                scalar = scalar << 6 | UInt32(continuation & 0x3F)
                bytes.formIndex(after: &index)
            }
            guard sequence.accepts(scalar) else { return false }
        }
        return true
    }

    /// The same rules over contiguous bytes, optionally also refusing `+` and `#` (topic names, §4.7.1).
    ///
    /// Runs of plain ASCII are checked eight bytes per step: a word is clean when no byte has its high bit set
    /// (non-ASCII) and no byte is 0x00, `+` or `#` (the classic `(w - 0x01…) & ~w & 0x80…` zero-byte test, applied
    /// to `w` and to `w` XOR the byte looked for). Any other word is walked one scalar at a time.
    @usableFromInline
    static func scan(_ bytes: UnsafeRawBufferPointer, rejectingWildcards: Bool) -> Bool {
        let count = bytes.count
        guard count > 0, let base = bytes.baseAddress else { return true }
        let ones: UInt64 = 0x0101_0101_0101_0101
        let highBits: UInt64 = 0x8080_8080_8080_8080
        let pluses = ones &* UInt64(UInt8(ascii: "+"))
        let hashes = ones &* UInt64(UInt8(ascii: "#"))
        var index = 0
        // True when none of the eight bytes at `offset` is non-ASCII, 0x00, or (when asked) a wildcard.
        @inline(__always)
        func isPlainASCII(at offset: Int) -> Bool {
            let word = base.loadUnaligned(fromByteOffset: offset, as: UInt64.self)
            var flagged = word | ((word &- ones) & ~word)
            if rejectingWildcards {
                let plus = word ^ pluses
                let hash = word ^ hashes
                flagged |= ((plus &- ones) & ~plus) | ((hash &- ones) & ~hash)
            }
            return flagged & highBits == 0
        }
        while index < count {
            if count &- index >= 8 {
                if isPlainASCII(at: index) {
                    index &+= 8
                    continue
                }
            } else if count >= 8 && isPlainASCII(at: count &- 8) {
                // A tail shorter than a word: the last eight bytes overlap bytes already accepted, and plain ASCII
                // cannot be the inside of a multi-byte sequence, so a clean last word means a clean tail.
                return true
            }
            let lead = base.load(fromByteOffset: index, as: UInt8.self)
            if lead < 0x80 {
                if lead == 0 { return false }
                if rejectingWildcards && (lead == UInt8(ascii: "+") || lead == UInt8(ascii: "#")) { return false }
                index &+= 1
                continue
            }
            guard let sequence = Sequence(lead: lead), count &- index >= sequence.length else { return false }
            var scalar = sequence.leadBits
            for offset in 1..<sequence.length {
                let continuation = base.load(fromByteOffset: index &+ offset, as: UInt8.self)
                guard continuation & 0xC0 == 0x80 else { return false }
                scalar = scalar << 6 | UInt32(continuation & 0x3F)
            }
            guard sequence.accepts(scalar) else { return false }
            index &+= sequence.length
        }
        return true
    }

    /// What a multi-byte sequence's lead byte announces.
    @usableFromInline
    struct Sequence {
        /// 2, 3 or 4 bytes in all.
        @usableFromInline let length: Int
        /// The smallest scalar this length may carry; anything below is an overlong form.
        @usableFromInline let minimum: UInt32
        /// The scalar bits the lead byte carries.
        @usableFromInline let leadBits: UInt32

        /// Nil for a continuation byte used as a lead, for C0 and C1 (always overlong) and for F5...FF.
        @inlinable @inline(__always)
        init?(lead: UInt8) {
            switch lead {
            case 0xC2...0xDF: (length, minimum, leadBits) = (2, 0x80, UInt32(lead & 0x1F))
            case 0xE0...0xEF: (length, minimum, leadBits) = (3, 0x800, UInt32(lead & 0x0F))
            case 0xF0...0xF4: (length, minimum, leadBits) = (4, 0x10000, UInt32(lead & 0x07))
            default: return nil
            }
        }

        /// Not overlong, not above U+10FFFF, not a UTF-16 surrogate [MQTT-1.5.3-1].
        @inlinable @inline(__always)
        func accepts(_ scalar: UInt32) -> Bool {
            scalar >= minimum && scalar <= 0x10FFFF && !(0xD800...0xDFFF).contains(scalar)
        }
    }

    /// Which string rule `bytes` breaks; only asked after validation failed, to name the rule in the error.
    static func violation(_ bytes: UnsafeRawBufferPointer) -> String {
        bytes.contains(0) ? "contains U+0000 [MQTT-1.5.3-2]" : "is not well-formed UTF-8 [MQTT-1.5.3-1]"
    }
}
