// Topic names read off the wire (§3.3.2.1, §3.1.3.2): one validating pass, one copy, a precise error otherwise.

extension TopicName {
    /// Validates the topic in place in the receive buffer, then copies it out once.
    /// `wildcardRule` is the statement a wildcard breaks here: [MQTT-3.3.2-2] in PUBLISH, [MQTT-4.7.1-1] in a will.
    init(wire raw: UnsafeRawBufferPointer, field: StaticString, wildcardRule: StaticString) throws(DecodeError) {
        guard !raw.isEmpty, UTF8Validation.scan(raw, rejectingWildcards: true) else {
            throw .malformed(TopicName.violation(raw, field: field, wildcardRule: wildcardRule))
        }
        self.bytes = [UInt8](copying: raw)
    }

    static func violation(_ raw: UnsafeRawBufferPointer, field: StaticString, wildcardRule: StaticString) -> String {
        if raw.isEmpty { return "\(field) is empty [MQTT-4.7.3-1]" }
        if raw.contains(UInt8(ascii: "+")) || raw.contains(UInt8(ascii: "#")) {
            return "\(field) contains a wildcard \(wildcardRule)"
        }
        return "\(field) \(UTF8Validation.violation(raw))"
    }
}
