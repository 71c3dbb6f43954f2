// Topic filters read off the wire (§3.8.3, §3.10.3): validated in place, copied once, a precise error otherwise.

extension TopicFilter {
    /// Validates the filter in place in the receive buffer, then copies it out once.
    init(wire raw: UnsafeRawBufferPointer, field: StaticString) throws(DecodeError) {
        guard TopicFilter.isValid(raw) else {
            throw .malformed(TopicFilter.violation(raw, field: field))
        }
        self.bytes = [UInt8](copying: raw)
    }

    /// Which rule an invalid filter breaks, checked level by level; only asked after validation failed.
    static func violation(_ raw: UnsafeRawBufferPointer, field: StaticString) -> String {
        if raw.isEmpty { return "\(field) is empty [MQTT-4.7.3-1]" }
        if !UTF8Validation.isValidMQTTString(raw) { return "\(field) \(UTF8Validation.violation(raw))" }
        let slash = UInt8(ascii: "/")
        let plus = UInt8(ascii: "+")
        let hash = UInt8(ascii: "#")
        var levelStart = 0
        while levelStart <= raw.count {
            var levelEnd = levelStart
            while levelEnd < raw.count && raw[levelEnd] != slash { levelEnd += 1 }
            let level = UnsafeRawBufferPointer(rebasing: raw[levelStart..<levelEnd])
            if level.contains(hash) && !(level.count == 1 && levelEnd == raw.count) {
                return "\(field) has a '#' that is not a whole last level [MQTT-4.7.1-2]"
            }
            if level.contains(plus) && level.count != 1 {
                return "\(field) has a '+' that is not a whole level [MQTT-4.7.1-3]"
            }
            levelStart = levelEnd + 1
        }
        return "\(field) is longer than 65535 bytes [MQTT-4.7.3-3]"
    }
}
