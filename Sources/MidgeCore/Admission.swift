// Asynchronous CONNECT admission: what the core asks its driver about a new connection, and the answer it waits for.
import MQTTCodec

/// A CONNECT that passed the core's own checks (client id rules, keepalive, memory ceiling, anonymity) and now needs
/// its credentials judged. The core emits it as `Action.admit`, keeps the connection pending and expects
/// `Broker.admissionAnswered` for it later; nothing the connection sends meanwhile is processed before that.
///
/// Why not a synchronous call: a password check costs a PBKDF2 and a token a signature verification, and a cluster
/// will have to ask another node who owns the client id. None of that may stall the core.
public struct AdmissionRequest: Sendable {
    public let connection: ConnectionID
    /// The id the session will have: the client's own, its user name (`use_username_as_clientid`) or one the core
    /// assigned to an empty id.
    public let clientID: String
    /// The core made `clientID` up for a client that sent an empty one.
    public let clientIDWasAssigned: Bool
    public let username: String?
    public let password: [UInt8]?
    public let cleanSession: Bool
    /// The listener's security profile, whether the client is internal, its address.
    public let info: ConnectionInfo

    public init(
        connection: ConnectionID, clientID: String, clientIDWasAssigned: Bool = false, username: String?,
        password: [UInt8]?, cleanSession: Bool, info: ConnectionInfo
    ) {
        self.connection = connection
        self.clientID = clientID
        self.clientIDWasAssigned = clientIDWasAssigned
        self.username = username
        self.password = password
        self.cleanSession = cleanSession
        self.info = info
    }
}

/// The verdict on one `AdmissionRequest`, with what an acceptance grants.
public struct AdmissionAnswer: Sendable {
    /// `.accepted`, or the CONNACK code the connection is refused with.
    public var verdict: ConnectReturnCode
    /// The user name the client is known by from now on (ACL checks, logs, retained-message setters): usually the
    /// CONNECT's, but an authenticator may replace it (a token's subject, a certificate's name).
    public var username: String?
    /// This client's own permissions (a token's claims); nil: its listener's `AccessControl`.
    public var accessControl: (any AccessControl)?
    /// A session to continue instead of the one the core would look up by client id; nil: the core's own.
    /// Nothing provides one yet: it is where a cluster hands over a session another node held.
    public var restoredSession: RestoredSession?

    public init(
        verdict: ConnectReturnCode, username: String?, accessControl: (any AccessControl)? = nil,
        restoredSession: RestoredSession? = nil
    ) {
        self.verdict = verdict
        self.username = username
        self.accessControl = accessControl
        self.restoredSession = restoredSession
    }

    /// Accepted as the request asked, with the listener's permissions.
    public static func accepted(_ request: AdmissionRequest) -> AdmissionAnswer {
        AdmissionAnswer(verdict: .accepted, username: request.username)
    }

    public static func refused(_ code: ConnectReturnCode) -> AdmissionAnswer {
        AdmissionAnswer(verdict: code, username: nil)
    }
}

/// A persistent session brought from elsewhere: the core builds the client's session from it (session present 1)
/// and drops any it held itself under that id. Only what a session needs to go on receiving: its subscriptions.
public struct RestoredSession: Sendable {
    public var subscriptions: [RestoredSubscription]

    public init(subscriptions: [RestoredSubscription]) {
        self.subscriptions = subscriptions
    }
}

public struct RestoredSubscription: Sendable {
    public var filter: TopicFilter
    public var qos: QoS

    public init(filter: TopicFilter, qos: QoS) {
        self.filter = filter
        self.qos = qos
    }
}
