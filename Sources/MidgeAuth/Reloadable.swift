// Password files and ACL files that SIGHUP can replace while clients stay connected: a lock around the current one.
import MQTTCodec
import MidgeCore
import Synchronization

/// The authenticator in force, swapped as a whole by `replace` (a SIGHUP reload). A CONNECT is checked against
/// whichever file was current when its check began.
///
/// Accepted user names and passwords are remembered for `cacheSeconds` (see `CredentialCache`), and forgotten at
/// every `replace`. That is right for a password file, whose verdict depends only on the user name and password
/// and has no side effects; an authenticator that reads the client id or keeps per-client state (tokens) must be
/// wrapped with `cacheSeconds: 0`.
public final class ReloadableAuthenticator: Authenticator {
    /// How long an accepted credential is taken without a check, unless the file is replaced first.
    public static let defaultCacheSeconds: Int64 = 60

    /// The file in force, and how many times it was replaced.
    private let current: Mutex<(authenticator: any Authenticator, generation: Int)>
    private let cache: CredentialCache

    public convenience init(_ authenticator: any Authenticator, cacheSeconds: Int64 = defaultCacheSeconds) {
        self.init(authenticator, cache: CredentialCache(lifetime: cacheSeconds))
    }

    init(_ authenticator: any Authenticator, cache: CredentialCache) {
        current = Mutex((authenticator, 0))
        self.cache = cache
    }

    public func replace(with authenticator: any Authenticator) {
        // Under the same lock order as `authenticate` reads: no check that began on the old file lands after this.
        current.withLock { current in
            current = (authenticator, current.generation &+ 1)
            cache.removeAll()
        }
    }

    public func authenticate(clientID: String, username: String?, password: [UInt8]?) -> ConnectReturnCode {
        if cache.contains(username: username, password: password) { return .accepted }
        let (authenticator, generation) = current.withLock { $0 }
        let code = authenticator.authenticate(clientID: clientID, username: username, password: password)
        guard code == .accepted else { return code }
        // A check that ran on the file a `replace` has just dropped must not enter the new file's cache.
        current.withLock { current in
            if current.generation == generation { cache.insert(username: username, password: password) }
        }
        return code
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

    public func mayUnsubscribe(clientID: String, username: String?, filter: TopicFilter) -> Bool {
        let rules = current.withLock { $0 }
        return rules.mayUnsubscribe(clientID: clientID, username: username, filter: filter)
    }

    public var checksSharedFiltersAsSent: Bool { current.withLock { $0 }.checksSharedFiltersAsSent }

    public func mayReceive(clientID: String, username: String?, topic: TopicName) -> Bool {
        let rules = current.withLock { $0 }
        return rules.mayReceive(clientID: clientID, username: username, topic: topic)
    }
}
