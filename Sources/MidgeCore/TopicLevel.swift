// Topic levels as byte slices (§4.7.1): the key type of both topic tries, hashed and compared without copying.
import MQTTCodec

/// One level of a topic name or filter. Lookups wrap a slice of the caller's bytes, so walking a topic
/// costs no allocation; keys stored in a trie own a copy of just their level (see `owned`).
struct LevelKey: Hashable {
    let bytes: ArraySlice<UInt8>

    init(_ bytes: ArraySlice<UInt8>) { self.bytes = bytes }

    /// A key that keeps only its own bytes alive, not the whole topic or filter it was cut from.
    var owned: LevelKey { LevelKey(ArraySlice(Array(bytes))) }

    /// True for a level beginning with `$`, which top-level wildcards skip [MQTT-4.7.2-1].
    var isDollar: Bool { bytes.first == UInt8(ascii: "$") }

    static func == (lhs: LevelKey, rhs: LevelKey) -> Bool {
        guard lhs.bytes.count == rhs.bytes.count else { return false }
        return lhs.bytes.withUnsafeBufferPointer { left in
            rhs.bytes.withUnsafeBufferPointer { right in
                for index in 0..<left.count where left[index] != right[index] { return false }
                return true
            }
        }
    }

    // ArraySlice's own hash feeds the hasher one byte at a time; one bulk combine is several times cheaper.
    func hash(into hasher: inout Hasher) {
        bytes.withUnsafeBytes { hasher.combine(bytes: $0) }
    }
}

/// Walks the `/`-separated levels of topic or filter bytes. Empty levels are levels [MQTT-4.7.3-4]:
/// `a/` has the levels `a` and ``, `/a` has `` and `a`.
enum TopicLevels {
    static let separator = UInt8(ascii: "/")

    /// The end (exclusive) of the level starting at `start`.
    @inline(__always)
    static func levelEnd(_ bytes: [UInt8], from start: Int) -> Int {
        var index = start
        while index < bytes.count && bytes[index] != separator { index += 1 }
        return index
    }

    /// Where the level after the one ending at `end` starts, or nil when that was the last level.
    @inline(__always)
    static func nextStart(_ bytes: [UInt8], afterLevelEndingAt end: Int) -> Int? {
        end < bytes.count ? end + 1 : nil
    }

    /// How many bytes of `label` (whole levels joined by `/`) equal whole levels of `other` from `start`: the end
    /// of the last level both share, so the result is `label.count` or the position of a `/` in `label`. The first
    /// levels must be equal (the caller found `label` by it).
    static func commonLevels(of label: [UInt8], and other: [UInt8], from start: Int) -> Int {
        var boundary = 0
        var index = 0
        while index < label.count, start + index < other.count, label[index] == other[start + index] {
            if label[index] == separator { boundary = index }
            index += 1
        }
        let otherEnded = start + index == other.count
        if index == label.count { return otherEnded || other[start + index] == separator ? index : boundary }
        return otherEnded && label[index] == separator ? index : boundary
    }

    /// True when the single level `bytes[start..<end]` is exactly `marker` (`+` or `#`).
    @inline(__always)
    static func isWildcard(_ bytes: [UInt8], _ start: Int, _ end: Int, _ marker: UInt8) -> Bool {
        end == start + 1 && bytes[start] == marker
    }
}

extension TopicName {
    /// `$SYS` and everything below it; clients may not publish there (as in mosquitto).
    var isSysTopic: Bool {
        guard bytes.count >= 4, bytes[0] == UInt8(ascii: "$"), bytes[1] == UInt8(ascii: "S"),
            bytes[2] == UInt8(ascii: "Y"), bytes[3] == UInt8(ascii: "S")
        else { return false }
        return bytes.count == 4 || bytes[4] == TopicLevels.separator
    }

    /// Where a client may not publish: `$SYS`, except `$SYS/broker/connection/<id>/state`, where bridges report
    /// whether they are connected (mosquitto makes the same one exception, and its bridges' Wills use it). Inlined:
    /// asked for every PUBLISH, and all but `$SYS` ones are answered by the first test.
    @inline(__always)
    var isReservedForBroker: Bool {
        isSysTopic && !isBridgeState
    }

    /// `$SYS/broker/connection/<id>/state`.
    private var isBridgeState: Bool {
        let levels = bytes.split(separator: TopicLevels.separator, omittingEmptySubsequences: false)
        return levels.count == 5 && levels[1].elementsEqual("broker".utf8)
            && levels[2].elementsEqual("connection".utf8) && levels[4].elementsEqual("state".utf8)
    }
}
