// `mount_point` (mosquitto's per-listener topic prefix): what a client of a mounted listener sends is moved under the
// prefix before the core looks at it; what it is sent has the prefix taken off by the driver as it encodes.
import MQTTCodec

enum Mount {
    /// `topic` under `prefix`, or nil when the result would pass 65,535 bytes (the client is closed for it).
    static func topic(_ topic: TopicName, under prefix: [UInt8]) -> TopicName? {
        guard !prefix.isEmpty else { return topic }
        return TopicName(bytes: prefix + topic.bytes)
    }

    /// `filter` under `prefix`; a shared subscription keeps its `$share/<group>/` in front: the group shares the
    /// mounted filter.
    static func filter(_ filter: TopicFilter, under prefix: [UInt8]) -> TopicFilter? {
        guard !prefix.isEmpty else { return filter }
        if case .shared(let group, let inner) = SharedSubscription(filter) {
            return TopicFilter(bytes: Array("$share/".utf8) + group + [TopicLevels.separator] + prefix + inner)
        }
        return TopicFilter(bytes: prefix + filter.bytes)
    }
}
