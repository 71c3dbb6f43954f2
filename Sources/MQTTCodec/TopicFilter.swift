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
        let filter = bytes, topic = name.bytes
        let slash = UInt8(ascii: "/"), plus = UInt8(ascii: "+"), hash = UInt8(ascii: "#")
        if name.isDollarTopic, let first = filter.first, first == plus || first == hash { return false }
        var f = 0, t = 0
        while f < filter.count {
            if filter[f] == hash { return true }  // also matches the parent level: `sport/#` ~ `sport`
            if filter[f] == plus {
                while t < topic.count && topic[t] != slash { t += 1 }
                f += 1
            } else {
                while f < filter.count && filter[f] != slash {
                    guard t < topic.count, topic[t] == filter[f] else { return false }
                    f += 1
                    t += 1
                }
                if t < topic.count && topic[t] != slash { return false }
            }
            // Both sides are at a level end: either `/` or the end of the bytes.
            if f == filter.count { return t == topic.count }
            // filter[f] == "/"
            if t == topic.count {
                // Topic ended; only a trailing `/#` can still match (`sport/#` matches `sport`).
                return f + 2 == filter.count && filter[f + 1] == hash
            }
            f += 1
            t += 1
        }
        return t == topic.count
    }

    public var description: String { String(decoding: bytes, as: UTF8.self) }
}
