// One `topic` line of a bridge: `topic PATTERN [in|out|both [QOS [LOCAL_PREFIX REMOTE_PREFIX]]]`, the filters it
// subscribes to on each side, and how a topic is renamed as it crosses.
import MQTTCodec

public struct BridgeTopic: Sendable, Equatable {
    public enum Direction: String, Sendable, Equatable {
        /// Local messages go to the remote.
        case out
        /// Remote messages come here.
        case `in`
        case both

        var carriesOut: Bool { self != .in }
        var carriesIn: Bool { self != .out }
    }

    /// The pattern; empty when the prefixes are whole topics (mosquitto's `topic "" out 1 local/a remote/b`).
    public var pattern: String
    public var direction: Direction
    public var qos: QoS
    public var localPrefix: String
    public var remotePrefix: String
    /// `localPrefix + pattern`: what the bridge subscribes to here for `out`, and the names of what arrives `in`.
    public let localFilter: TopicFilter
    /// `remotePrefix + pattern`: what the bridge subscribes to on the remote for `in`.
    public let remoteFilter: TopicFilter

    public enum Problem: Error, Equatable, CustomStringConvertible {
        case emptyPatternWithoutPrefixes
        case wildcardInPrefix(String)
        case invalidFilter(String)

        public var description: String {
            switch self {
            case .emptyPatternWithoutPrefixes:
                "an empty pattern needs a local and a remote prefix (the two topics it joins)"
            case .wildcardInPrefix(let prefix): "prefix '\(prefix)' may not contain + or #"
            case .invalidFilter(let filter): "'\(filter)' is not a valid topic filter"
            }
        }
    }

    public init(
        pattern: String, direction: Direction = .out, qos: QoS = .atMostOnce, localPrefix: String = "",
        remotePrefix: String = ""
    ) throws(Problem) {
        if pattern.isEmpty && (localPrefix.isEmpty || remotePrefix.isEmpty) { throw .emptyPatternWithoutPrefixes }
        for prefix in [localPrefix, remotePrefix] where prefix.contains("+") || prefix.contains("#") {
            throw .wildcardInPrefix(prefix)
        }
        guard let local = TopicFilter(localPrefix + pattern) else { throw .invalidFilter(localPrefix + pattern) }
        guard let remote = TopicFilter(remotePrefix + pattern) else { throw .invalidFilter(remotePrefix + pattern) }
        self.pattern = pattern
        self.direction = direction
        self.qos = qos
        self.localPrefix = localPrefix
        self.remotePrefix = remotePrefix
        localFilter = local
        remoteFilter = remote
    }

    /// The remote name of a local topic this line carries out, or nil when the line does not match it.
    func remoteTopic(forLocal topic: TopicName) -> TopicName? {
        guard direction.carriesOut, localFilter.matches(topic) else { return nil }
        return Self.rename(topic, from: localPrefix, to: remotePrefix)
    }

    /// The local name of a remote topic this line carries in, or nil when the line does not match it.
    func localTopic(forRemote topic: TopicName) -> TopicName? {
        guard direction.carriesIn, remoteFilter.matches(topic) else { return nil }
        return Self.rename(topic, from: remotePrefix, to: localPrefix)
    }

    /// A matching topic starts with `from` (the filter does, and prefixes hold no wildcards), so the rest is kept.
    private static func rename(_ topic: TopicName, from: String, to: String) -> TopicName? {
        if from.isEmpty && to.isEmpty { return topic }
        let rest = topic.bytes.dropFirst(from.utf8.count)
        return TopicName(bytes: Array(to.utf8) + rest)
    }
}

extension [BridgeTopic] {
    /// The first line that carries `topic` out decides its remote name, as in mosquitto.
    func remoteTopic(forLocal topic: TopicName) -> TopicName? {
        for line in self {
            if let renamed = line.remoteTopic(forLocal: topic) { return renamed }
        }
        return nil
    }

    func localTopic(forRemote topic: TopicName) -> TopicName? {
        for line in self {
            if let renamed = line.localTopic(forRemote: topic) { return renamed }
        }
        return nil
    }
}
