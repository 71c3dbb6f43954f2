// mosquitto's `per_listener_settings true`: each listener's own anonymous access, client id rules and ACL.

/// The security a listener gives its clients. Profile 0 is the broker-wide one (`BrokerConfiguration` and the
/// broker's `AccessControl`); with `per_listener_settings` each listener has its own, picked by
/// `ConnectionInfo.securityProfile`. Credentials are judged by the driver, per listener too, when the core asks
/// (`asksAdmission`, `Action.admit`).
public struct ListenerSecurity: Sendable {
    public var allowAnonymous: Bool
    public var allowZeroLengthClientID: Bool
    public var autoIDPrefix: String
    public var accessControl: any AccessControl
    /// Whether a CONNECT that passes the core's checks waits for an `AdmissionAnswer`; false: it is accepted at
    /// once as it came, which is what a broker without authentication (and a test) wants.
    public var asksAdmission: Bool

    public init(
        allowAnonymous: Bool, allowZeroLengthClientID: Bool, autoIDPrefix: String, accessControl: any AccessControl,
        asksAdmission: Bool = false
    ) {
        self.allowAnonymous = allowAnonymous
        self.allowZeroLengthClientID = allowZeroLengthClientID
        self.autoIDPrefix = autoIDPrefix
        self.accessControl = accessControl
        self.asksAdmission = asksAdmission
    }
}

extension Broker {
    /// The profile a connection's listener gives it; an unknown index falls back to the broker-wide one.
    func security(_ profile: Int) -> ListenerSecurity {
        profile > 0 && profile < securityProfiles.count ? securityProfiles[profile] : securityProfiles[0]
    }
}
