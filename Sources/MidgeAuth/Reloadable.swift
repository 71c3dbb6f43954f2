// Password files and ACL files that SIGHUP can replace while clients stay connected: a lock around the current one.
import MQTTCodec
import MidgeCore
import Synchronization

/// The authenticator in force, swapped as a whole by `replace` (a SIGHUP reload). A CONNECT is checked against
/// whichever file was current when its check began.
public final class ReloadableAuthenticator: Authenticator {
    private let current: Mutex<any Authenticator>

    public init(_ authenticator: any Authenticator) {
        current = Mutex(authenticator)
    }

    public func replace(with authenticator: any Authenticator) {
        current.withLock { $0 = authenticator }
    }

    public func authenticate(clientID: String, username: String?, password: [UInt8]?) -> ConnectReturnCode {
        let authenticator = current.withLock { $0 }
        return authenticator.authenticate(clientID: clientID, username: username, password: password)
    }
}

/// The access control in force, swapped as a whole by `replace`. Every delivery is checked against the current
/// rules, so a reload applies to existing subscriptions too, as in mosquitto.
public final class ReloadableAccessControl: AccessControl {
    private let current: Mutex<any AccessControl>

    public init(_ accessControl: any AccessControl) {
        current = Mutex(accessControl)
    }

    public func replace(with accessControl: any AccessControl) {
        current.withLock { $0 = accessControl }
    }

    /// Always true: a reload may bring rules that restrict deliveries, and the core decides this once.
    public var checksDeliveries: Bool { true }

    public func mayPublish(clientID: String, username: String?, topic: TopicName) -> Bool {
        let rules = current.withLock { $0 }
        return rules.mayPublish(clientID: clientID, username: username, topic: topic)
    }

    public func maySubscribe(clientID: String, username: String?, filter: TopicFilter) -> Bool {
        let rules = current.withLock { $0 }
        return rules.maySubscribe(clientID: clientID, username: username, filter: filter)
    }

    public func mayReceive(clientID: String, username: String?, topic: TopicName) -> Bool {
        let rules = current.withLock { $0 }
        return rules.mayReceive(clientID: clientID, username: username, topic: topic)
    }
}
