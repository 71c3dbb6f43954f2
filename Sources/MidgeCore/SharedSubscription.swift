// Shared subscriptions, `$share/<group>/<filter>`, as mosquitto 2.0 serves them to MQTT 3.1.1 clients: each message
// matching the filter goes to one member of each group, while ordinary subscribers still get every message.
import MQTTCodec

/// How a SUBSCRIBE or UNSUBSCRIBE filter reads: ordinary, a shared subscription, or a `$share` form to refuse.
enum SharedSubscription {
    case plain
    case shared(group: [UInt8], filter: [UInt8])
    /// `$share/` with an empty group, wildcards in the group, or no filter after it: refused with 0x80.
    case invalid

    private static let prefix = Array("$share/".utf8)

    init(_ filter: TopicFilter) {
        let bytes = filter.bytes
        guard bytes.count >= Self.prefix.count, bytes[0..<Self.prefix.count].elementsEqual(Self.prefix) else {
            self = .plain
            return
        }
        let groupStart = Self.prefix.count
        guard let slash = bytes[groupStart...].firstIndex(of: TopicLevels.separator), slash > groupStart,
            !bytes[groupStart..<slash].contains(where: { $0 == UInt8(ascii: "+") || $0 == UInt8(ascii: "#") }),
            slash + 1 < bytes.count
        else {
            self = .invalid
            return
        }
        // The rest was validated as part of the whole filter, and a valid filter's tail after a `/` is one too.
        self = .shared(group: Array(bytes[groupStart..<slash]), filter: Array(bytes[(slash + 1)...]))
    }
}

/// The members of one group on one filter, and whose turn is next.
final class SharedGroup {
    let name: [UInt8]
    @exclusivity(unchecked) var members = SubscriberSet()
    /// Where the next round-robin search starts.
    @exclusivity(unchecked) var cursor = 0

    init(name: [UInt8]) {
        self.name = name
    }
}
