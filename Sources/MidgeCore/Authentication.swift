// The questions the core asks about identity and permission; implementations live outside the core.
import MQTTCodec

/// Decides whether a CONNECT's credentials are good. The driver asks it once per `AdmissionRequest` (the core
/// never calls it: its checks may be slow), off the core's thread.
public protocol Authenticator: Sendable {
    /// `.accepted`, `.badUsernameOrPassword` or `.notAuthorized`.
    func authenticate(clientID: String, username: String?, password: [UInt8]?) -> ConnectReturnCode
    /// The whole answer: the verdict, and what an acceptance grants (identity, permissions). Authenticators whose
    /// acceptance grants nothing of its own keep the default, `authenticate`'s verdict alone.
    func admit(_ request: AdmissionRequest) -> AdmissionAnswer
}

extension Authenticator {
    public func admit(_ request: AdmissionRequest) -> AdmissionAnswer {
        let verdict = authenticate(clientID: request.clientID, username: request.username, password: request.password)
        return verdict == .accepted ? .accepted(request) : .refused(verdict)
    }
}

/// Decides what an authenticated client may do with a topic. As in mosquitto, a subscription is checked
/// when it is made and every message is checked again before it is delivered through it.
public protocol AccessControl: Sendable {
    /// False when `mayReceive` always answers true, so the core can skip the per-delivery check.
    var checksDeliveries: Bool { get }
    func mayPublish(clientID: String, username: String?, topic: TopicName) -> Bool
    func maySubscribe(clientID: String, username: String?, filter: TopicFilter) -> Bool
    func mayReceive(clientID: String, username: String?, topic: TopicName) -> Bool
    /// Whether an UNSUBSCRIBE may remove the client's subscription to `filter`. A refused one is acknowledged all the
    /// same (a 3.1.1 UNSUBACK has no failure code) and the subscription stays, as in mosquitto.
    func mayUnsubscribe(clientID: String, username: String?, filter: TopicFilter) -> Bool
    /// Whether `maySubscribe` is asked about a shared subscription as sent (`$share/group/filter`), as mosquitto's
    /// dynamic-security rules are written, rather than about the filter its messages match.
    var checksSharedFiltersAsSent: Bool { get }
}

extension AccessControl {
    /// Password and ACL files have no unsubscribe rules: every UNSUBSCRIBE is honoured.
    public func mayUnsubscribe(clientID: String, username: String?, filter: TopicFilter) -> Bool { true }
    /// Password and ACL files, and token claims, are about the topics messages are published on.
    public var checksSharedFiltersAsSent: Bool { false }
}

/// The defaults: everyone connects (subject to `allowAnonymous`), everything is allowed.
public struct AllowAll: Authenticator, AccessControl {
    public init() {}
    public func authenticate(clientID: String, username: String?, password: [UInt8]?) -> ConnectReturnCode {
        .accepted
    }
    public func mayPublish(clientID: String, username: String?, topic: TopicName) -> Bool { true }
    public func maySubscribe(clientID: String, username: String?, filter: TopicFilter) -> Bool { true }
    public var checksDeliveries: Bool { false }
    public func mayReceive(clientID: String, username: String?, topic: TopicName) -> Bool { true }
}
