// How deep a topic name or filter is (§4.7.1): the level count a broker's hierarchy limit is checked against.

/// Levels are what `/` separates, empty ones included [MQTT-4.7.3-4]: `a` has 1, `a/` and `/a` have 2.
public enum TopicDepth {
    /// True when `bytes` has more than `limit` levels. Free for every topic shorter than `limit` bytes, which
    /// cannot hold `limit` separators, so a PUBLISH pays for the count only when its topic could be too deep.
    @inlinable
    public static func exceeds(_ bytes: [UInt8], limit: Int) -> Bool {
        guard limit > 0, bytes.count >= limit else { return false }
        return levelCount(bytes) > limit
    }

    @inlinable
    public static func levelCount(_ bytes: [UInt8]) -> Int {
        var separators = 0
        for byte in bytes where byte == UInt8(ascii: "/") { separators += 1 }
        return separators + 1
    }
}
