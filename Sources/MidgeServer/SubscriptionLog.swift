// `log_type subscribe`: the core asks access control about every SUBSCRIBE filter, so a wrapper there sees each
// subscription without the core knowing about logging.
import MQTTCodec
import MidgeCore

/// Passes every question to `rules` and logs the subscriptions they allow, as mosquitto's `log_type subscribe`
/// does (client id and filter).
public struct SubscriptionLoggingAccessControl: AccessControl {
    let rules: any AccessControl
    let logger: Logger

    public init(_ rules: any AccessControl, logger: Logger) {
        self.rules = rules
        self.logger = logger
    }

    public var checksDeliveries: Bool { rules.checksDeliveries }

    public func mayPublish(clientID: String, username: String?, topic: TopicName) -> Bool {
        rules.mayPublish(clientID: clientID, username: username, topic: topic)
    }

    public func maySubscribe(clientID: String, username: String?, filter: TopicFilter) -> Bool {
        let allowed = rules.maySubscribe(clientID: clientID, username: username, filter: filter)
        if allowed { logger.logSubscription("\(clientID) \(filter)") }
        return allowed
    }

    public func mayReceive(clientID: String, username: String?, topic: TopicName) -> Bool {
        rules.mayReceive(clientID: clientID, username: username, topic: topic)
    }

    public func mayUnsubscribe(clientID: String, username: String?, filter: TopicFilter) -> Bool {
        rules.mayUnsubscribe(clientID: clientID, username: username, filter: filter)
    }

    public var checksSharedFiltersAsSent: Bool { rules.checksSharedFiltersAsSent }
}
