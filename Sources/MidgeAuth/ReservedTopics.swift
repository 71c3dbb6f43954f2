// The `$` topics no access rule can open up: mosquitto's `acl__check_dollar`, shared by every checker.
import MQTTCodec

enum ReservedTopics {
    /// False when the topic may not be published (`writing`) or delivered whatever the rules say.
    ///
    /// `$SYS` is the broker's to write; the one exception is a bridge announcing its state, which a rule
    /// must still allow (aclfile.example: `pattern write $SYS/broker/connection/%c/state`). Shared-
    /// subscription names are for SUBSCRIBE only; no message is published or delivered on one. Both
    /// prefixes are compared as mosquitto's `strncmp` does, so `$SYSx` counts as `$SYS` too.
    static func permit(_ topic: TopicName, writing: Bool) -> Bool {
        let name = topic.bytes
        if writing && name.starts(with: sysPrefix) && !bridgeStateFilter.matches(topic) { return false }
        if name.starts(with: sharePrefix) { return false }
        return true
    }

    private static let sysPrefix = Array("$SYS".utf8)
    private static let sharePrefix = Array("$share".utf8)
    private static let bridgeStateFilter: TopicFilter = {
        guard let filter = TopicFilter("$SYS/broker/connection/+/state") else {
            fatalError("BUG: the bridge state filter literal is not a valid filter")
        }
        return filter
    }()
}
