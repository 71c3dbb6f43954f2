// Filter-to-name matching (§4.7) over raw bytes, for filters built on the fly from ACL patterns.

/// The same rules as `TopicFilter.matches(_:)`, for a filter that is not a `TopicFilter` value: an ACL
/// pattern expanded with a client's id into stack memory for one check. The expansion of a pattern that
/// was valid with `%c`/`%u` in place, by identities without `+` or `#`, is itself a valid filter.
enum TopicMatch {
    static func matches<F: RandomAccessCollection>(filter: F, topic: [UInt8]) -> Bool
    where F.Element == UInt8, F.Index == Int {
        let slash = UInt8(ascii: "/")
        let plus = UInt8(ascii: "+")
        let hash = UInt8(ascii: "#")
        guard let first = filter.first, !topic.isEmpty else { return false }
        // [MQTT-4.7.2-1] a leading wildcard never matches a `$` topic; a `$` filter never matches a
        // topic that does not start with `$` (mosquitto's `topic_matches_sub`).
        if topic[0] == UInt8(ascii: "$") && (first == plus || first == hash) { return false }
        let base = filter.startIndex
        let count = filter.count
        var f = 0
        var t = 0
        while f < count {
            if filter[base + f] == hash { return true }  // also matches the parent level: `a/#` ~ `a`
            if filter[base + f] == plus {
                while t < topic.count && topic[t] != slash { t += 1 }
                f += 1
            } else {
                while f < count && filter[base + f] != slash {
                    guard t < topic.count, topic[t] == filter[base + f] else { return false }
                    f += 1
                    t += 1
                }
                if t < topic.count && topic[t] != slash { return false }
            }
            if f == count { return t == topic.count }
            // filter[f] is `/`.
            if t == topic.count {
                return f + 2 == count && filter[base + f + 1] == hash
            }
            f += 1
            t += 1
        }
        return t == topic.count
    }
}
