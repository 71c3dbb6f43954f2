// One listener's own authentication and security (`per_listener_settings true`), as the server is handed them.
import MidgeCore

public struct ListenerAuth: Sendable {
    public var authenticator: any Authenticator
    public var security: ListenerSecurity

    public init(authenticator: any Authenticator, security: ListenerSecurity) {
        self.authenticator = authenticator
        self.security = security
    }
}
