// Commands published to a `$CONTROL/...` topic (mosquitto 2.0's control API): the question the core hands to whoever
// answers them, and the answer it carries out.
import MQTTCodec

/// Answers the requests published to one `$CONTROL/<feature>/v1` topic; mosquitto's dynamic-security plugin is one.
/// Called on the thread that runs the core, once per accepted PUBLISH to `topic`.
public protocol ControlTopicHandler: Sendable {
    /// The request topic, e.g. `$CONTROL/dynamic-security/v1`; replies go to the same topic plus `/response`.
    var topic: TopicName { get }
    func handle(payload: [UInt8], clientID: String, username: String?) -> ControlReply
}

/// What a control request produced: the payload to publish on the response topic, and the clients to disconnect
/// because what they were allowed has changed (mosquitto's `mosquitto_kick_client_by_username`).
public struct ControlReply: Sendable {
    public enum Disconnect: Sendable, Equatable, Hashable {
        /// Every connection that logged in with this user name.
        case username(String)
        /// Every connection without a user name.
        case anonymous
    }

    public var response: [UInt8]
    public var disconnect: [Disconnect]

    public init(response: [UInt8], disconnect: [Disconnect] = []) {
        self.response = response
        self.disconnect = disconnect
    }
}
