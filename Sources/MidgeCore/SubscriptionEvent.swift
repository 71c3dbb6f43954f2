// Subscriptions made and dropped, told to the driver for mosquitto's `log_type subscribe` and `unsubscribe` lines:
// both come from the handlers that change the subscriptions, worded in one place.
import MQTTCodec

/// One filter of a SUBSCRIBE that was granted, or one filter of an UNSUBSCRIBE (each is told, whether or not the
/// client held it, as mosquitto logs each).
public enum SubscriptionEvent: Sendable, Equatable {
    case subscribed(clientID: String, qos: QoS, filter: TopicFilter)
    case unsubscribed(clientID: String, filter: TopicFilter)

    /// The line as mosquitto writes it: `<client id> <granted QoS> <filter>`, or `<client id> <filter>`.
    public var logLine: String {
        switch self {
        case .subscribed(let clientID, let qos, let filter): "\(clientID) \(qos.rawValue) \(filter)"
        case .unsubscribed(let clientID, let filter): "\(clientID) \(filter)"
        }
    }
}

/// Where the core tells subscription events. Called on the thread that drives the core; it should only hand the
/// event on (the driver's logger decides whether the type is logged).
public typealias SubscriptionEventSink = (SubscriptionEvent) -> Void
