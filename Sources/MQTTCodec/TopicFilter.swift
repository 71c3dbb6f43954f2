// Topic filters: what a SUBSCRIBE asks for, and how a filter matches a name (§4.7).

/// A validated topic filter.
///
/// | filter     | valid | matches                                   | does not match          |
/// |------------|-------|-------------------------------------------|-------------------------|
/// | `sport/#`  | yes   | `sport`, `sport/a`, `sport/a/b`           | `sports`                |
/// | `#`        | yes   | every topic not starting with `$`         | `$SYS/x` [MQTT-4.7.2-1] |
/// | `+`        | yes   | `a`, `` (one empty level)                 | `/x`, `a/b`             |
/// | `+/+`      | yes   | `/x`, `a/b`                               | `a`                     |
/// | `a/+/c`    | yes   | `a/b/c`, `a//c`                           | `a/b/c/d`               |
/// | `$SYS/#`   | yes   | `$SYS/x`                                  |                         |
/// | `a#`, `a/#/b`, `a/b#` | no | `#` alone and last [MQTT-4.7.1-2] |                         |
/// | `a+`, `a/+b`          | no | `+` fills a level [MQTT-4.7.1-3]  |                         |
/// | ``                    | no | empty [MQTT-4.7.3-1]              |                         |
public struct TopicFilter: Hashable, Sendable, CustomStringConvertible {
    /// The UTF-8 bytes, exactly as received.
    public let bytes: [UInt8]

    public init?(bytes: [UInt8]) {
        guard TopicFilter.isValid(bytes) else { return nil }
        self.bytes = bytes
    }

    public init?(_ string: String) {
        self.init(bytes: Array(string.utf8))
    }

    @inlinable
    public static func isValid<C: Collection>(_ bytes: C) -> Bool where C.Element == UInt8, C.Index == Int {
        guard !bytes.isEmpty, bytes.count <= 65535 else { return false }
        let slash = UInt8(ascii: "/"), plus = UInt8(ascii: "+"), hash = UInt8(ascii: "#")
        var levelStart = bytes.startIndex
        for index in bytes.indices {
            let byte = bytes[index]
            if byte == slash {
                levelStart = index + 1
            } else if byte == plus || byte == hash {
                // A wildcard must be the whole level: preceded by start or `/`, followed by end or `/`.
                guard index == levelStart else { return false }
                let nextIndex = index + 1
                if byte == hash {
                    guard nextIndex == bytes.endIndex else { return false }
                } else if nextIndex != bytes.endIndex && bytes[nextIndex] != slash {
                    return false
                }
            }
        }
        return UTF8Validation.isValidMQTTString(bytes)
    }

    public var hasWildcards: Bool {
        bytes.contains(UInt8(ascii: "+")) || bytes.contains(UInt8(ascii: "#"))
    }

    /// Level-by-level comparison of raw bytes, with no normalisation or case folding [MQTT-4.7.3-4].
    public func matches(_ name: TopicName) -> Bool {
        TopicFilter.matches(filterBytes: bytes, topicBytes: name.bytes)
    }

    /// `matches(_:)` for a filter that is not a `TopicFilter` value: an ACL pattern expanded with a client's id
    /// into stack memory for one check, where building a value would allocate on every delivery. `filterBytes`
    /// must be a valid filter and `topicBytes` a valid name; empty input matches nothing. Inlinable so callers in
    /// other modules get a specialised copy instead of a generic call per byte.
    @inlinable
    public static func matches<Filter: RandomAccessCollection, Topic: RandomAccessCollection>(
        filterBytes: Filter, topicBytes: Topic
    ) -> Bool where Filter.Element == UInt8, Filter.Index == Int, Topic.Element == UInt8, Topic.Index == Int {
        let slash = UInt8(ascii: "/")
        let plus = UInt8(ascii: "+")
        let hash = UInt8(ascii: "#")
        guard let first = filterBytes.first, let topicFirst = topicBytes.first else { return false }
        // [MQTT-4.7.2-1] a filter starting with a wildcard never matches a `$` topic.
        if topicFirst == UInt8(ascii: "$") && (first == plus || first == hash) { return false }
        // Offsets from each collection's start, so slices that do not start at index 0 work too.
        let filterBase = filterBytes.startIndex
        let topicBase = topicBytes.startIndex
        let filterCount = filterBytes.count
        let topicCount = topicBytes.count
        var f = 0
        var t = 0
        while f < filterCount {
            if filterBytes[filterBase + f] == hash { return true }  // also matches the parent level: `a/#` ~ `a`
            if filterBytes[filterBase + f] == plus {
                while t < topicCount && topicBytes[topicBase + t] != slash { t += 1 }
                f += 1
            } else {
                while f < filterCount && filterBytes[filterBase + f] != slash {
                    guard t < topicCount, topicBytes[topicBase + t] == filterBytes[filterBase + f] else { return false }
                    f += 1
                    t += 1
                }
                if t < topicCount && topicBytes[topicBase + t] != slash { return false }
            }
            // Both sides are at a level end: either `/` or the end of the bytes.
            if f == filterCount { return t == topicCount }
            // The filter is at a `/`.
            if t == topicCount {
                // The topic ended; only a trailing `/#` can still match (`sport/#` matches `sport`).
                return f + 2 == filterCount && filterBytes[filterBase + f + 1] == hash
            }
            f += 1
            t += 1
        }
        return t == topicCount
    }

    public var description: String { String(decoding: bytes, as: UTF8.self) }
}
