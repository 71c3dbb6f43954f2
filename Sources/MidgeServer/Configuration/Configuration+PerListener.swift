// mosquitto's `per_listener_settings true`: allow_anonymous, allow_zero_length_clientid, auto_id_prefix,
// password_file, acl_file (and Midge's jwt_* keys) apply to the listener they follow.
import MidgeCore

/// One listener's own security keys. Keys given before the first `listener` line are the defaults of every listener.
public struct ListenerSecuritySettings: Sendable, Equatable {
    public var allowAnonymous: Bool?
    public var allowZeroLengthClientID: Bool?
    public var autoIDPrefix: String?
    public var passwordFile: String?
    public var aclFile: String?
    public var tokenKey: TokenKeySetting?
    public var tokenIssuer: String?
    public var tokenAudience: String?

    public init() {}

    /// Each key this listener did not set takes the value given before the first listener.
    func filled(from defaults: ListenerSecuritySettings) -> ListenerSecuritySettings {
        var filled = self
        filled.allowAnonymous = allowAnonymous ?? defaults.allowAnonymous
        filled.allowZeroLengthClientID = allowZeroLengthClientID ?? defaults.allowZeroLengthClientID
        filled.autoIDPrefix = autoIDPrefix ?? defaults.autoIDPrefix
        filled.passwordFile = passwordFile ?? defaults.passwordFile
        filled.aclFile = aclFile ?? defaults.aclFile
        filled.tokenKey = tokenKey ?? defaults.tokenKey
        filled.tokenIssuer = tokenIssuer ?? defaults.tokenIssuer
        filled.tokenAudience = tokenAudience ?? defaults.tokenAudience
        return filled
    }
}

extension Parser {
    static let perListenerKeys: Set<String> = [
        "allow_anonymous", "allow_zero_length_clientid", "auto_id_prefix", "password_file", "acl_file",
        "jwt_hs256_secret_file", "jwt_rs256_public_key", "jwt_issuer", "jwt_audience",
    ]

    /// `per_listener_settings true`, which (as in mosquitto) must come before any security key, since it changes
    /// where they go. Listeners declared before it start with no security keys of their own.
    mutating func enablePerListenerSettings(number: Int) throws(ConfigError) {
        let broker = configuration.broker
        let defaults = BrokerConfiguration()
        guard configuration.passwordFile == nil, configuration.aclFile == nil,
            configuration.tokenKey == nil, allowAnonymous == nil, broker.autoIDPrefix == defaults.autoIDPrefix,
            broker.allowZeroLengthClientID == defaults.allowZeroLengthClientID
        else {
            throw ConfigError(
                fileName: fileName, line: number, key: "per_listener_settings",
                message: "must come before every security setting, as in mosquitto")
        }
        configuration.perListenerSettings = true
    }

    /// With `per_listener_settings true`, takes a security key for the last listener (or, before the first, for
    /// every listener's defaults). False when the line is not one of them.
    mutating func parsePerListenerKey(_ line: ConfigLine) throws(ConfigError) -> Bool {
        guard configuration.perListenerSettings, Self.perListenerKeys.contains(line.key) else { return false }
        let last = configuration.listeners.count - 1
        var settings =
            last < 0 ? perListenerDefaults : configuration.listeners[last].security ?? ListenerSecuritySettings()
        switch line.key {
        case "allow_anonymous": settings.allowAnonymous = try line.boolean()
        case "allow_zero_length_clientid": settings.allowZeroLengthClientID = try line.boolean()
        case "auto_id_prefix": settings.autoIDPrefix = try line.text()
        case "password_file": settings.passwordFile = try line.text()
        case "acl_file": settings.aclFile = try line.text()
        case "jwt_hs256_secret_file": settings.tokenKey = .hs256SecretFile(try line.text())
        case "jwt_rs256_public_key": settings.tokenKey = .rs256PublicKey(try line.text())
        case "jwt_issuer": settings.tokenIssuer = try line.text()
        default: settings.tokenAudience = try line.text()
        }
        if last < 0 {
            perListenerDefaults = settings
        } else {
            configuration.listeners[last].security = settings
        }
        return true
    }

    /// At the end of the file: every listener gets its own security profile (1, 2, … in file order), its keys
    /// filled from the defaults, anonymous access off unless it allows it (listeners are declared).
    mutating func finishPerListenerSettings() {
        guard configuration.perListenerSettings else { return }
        for index in configuration.listeners.indices {
            var settings = (configuration.listeners[index].security ?? ListenerSecuritySettings())
                .filled(from: perListenerDefaults)
            if settings.allowAnonymous == nil { settings.allowAnonymous = false }
            configuration.listeners[index].security = settings
            configuration.listeners[index].securityProfile = index + 1
        }
    }
}
