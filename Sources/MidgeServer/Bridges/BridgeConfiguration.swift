// What one mosquitto `connection` section says: where the remote broker is, which topics cross in which direction,
// how the two sessions behave, when to connect, and TLS towards the remote. Plain values; defaults are mosquitto 2.0's.
import MQTTCodec
import MidgeTLS

/// One bridge: an outbound MQTT connection to another broker that carries chosen topics both ways.
public struct BridgeConfiguration: Sendable, Equatable {
    public struct Address: Sendable, Equatable, CustomStringConvertible {
        public var host: String
        public var port: UInt16
        public var description: String { host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)" }
    }

    public enum StartType: String, Sendable, Equatable {
        /// Connects at start-up and reconnects after `restart_timeout` whenever the connection ends.
        case automatic
        /// Connects once `threshold` messages wait for the remote, and disconnects after `idle_timeout`
        /// seconds without traffic.
        case lazy
        /// Connects at start-up; never again once the connection ends.
        case once
    }

    /// mosquitto's `restart_timeout`: one value waits that long between attempts; two are the base and cap of an
    /// exponential backoff with jitter ("decorrelated jitter"), so a refused bridge does not hammer the remote.
    public enum RestartTimeout: Sendable, Equatable {
        case constant(seconds: Int)
        case backoff(base: Int, cap: Int)
    }

    /// The section's name (`connection NAME`): the default client ids and log lines use it.
    public var name: String
    public var addresses: [Address] = []
    /// False: the first address is the main one, tried first on every reconnect (mosquitto's default).
    public var roundRobin = false
    public var topics: [BridgeTopic] = []
    public var protocolVersion: ProtocolVersion = .v3_1_1
    /// Clean session towards the remote broker.
    public var cleanSession = false
    /// Clean session of the bridge's own session on this broker; nil means the same as `cleanSession`. False
    /// keeps outgoing messages queued (durably with `persistence true`) while the remote is unreachable.
    public var localCleanSession: Bool?
    /// nil means `<host name>.<name>`, as mosquitto.
    public var remoteClientID: String?
    /// nil means `local.<remote client id>`.
    public var localClientID: String?
    public var remoteUsername: String?
    public var remotePassword: String?
    /// The user name this broker's ACL checks the bridge's local side as (mosquitto's `local_username`); nil is
    /// anonymous. The local side is never asked for a password.
    public var localUsername: String?
    public var keepaliveInterval = 60
    public var idleTimeout = 60
    public var startType: StartType = .automatic
    public var threshold = 10
    public var restartTimeout: RestartTimeout = .backoff(base: 5, cap: 30)
    public var notifications = true
    /// nil means `$SYS/broker/connection/<remote client id>/state`.
    public var notificationTopic: String?
    public var notificationsLocalOnly = false
    /// Announce ourselves as a bridge (protocol level | 0x80), so a broker that understands it does not echo our
    /// own messages back and keeps their retain flags.
    public var tryPrivate = true
    /// UNSUBSCRIBE `out`-only topics on the remote at connect, so a direction changed from `in` stops arriving.
    public var attemptUnsubscribe = true
    /// Keep the RETAIN flag of messages sent to the remote; false sends every message unretained.
    public var outgoingRetain = true
    /// Local address the outbound socket binds to before connecting (`bridge_bind_address`).
    public var bindAddress: String?
    public var tls = BridgeTLSSettings()
    /// Where the section starts, for messages about it.
    public var origin = ConfigOrigin(fileName: "", line: 0, key: "connection")

    public init(name: String) {
        self.name = name
    }

    public var effectiveLocalCleanSession: Bool { localCleanSession ?? cleanSession }

    public func effectiveRemoteClientID(hostName: String) -> String {
        remoteClientID ?? "\(hostName).\(name)"
    }

    public func effectiveLocalClientID(hostName: String) -> String {
        localClientID ?? "local.\(effectiveRemoteClientID(hostName: hostName))"
    }

    public func effectiveNotificationTopic(hostName: String) -> String {
        notificationTopic ?? "$SYS/broker/connection/\(effectiveRemoteClientID(hostName: hostName))/state"
    }
}

/// `bridge_cafile`, `bridge_capath`, `bridge_certfile`, `bridge_keyfile`, `bridge_insecure`, `bridge_tls_version`
/// and `bridge_alpn`. As in mosquitto, TLS is on when a CA file or path is given.
public struct BridgeTLSSettings: Sendable, Equatable {
    public var caFile: String?
    public var caPath: String?
    public var certificateFile: String?
    public var keyFile: String?
    /// Skip the check that the remote's certificate names the host we connected to (the chain is still verified).
    public var insecure = false
    public var minimumVersion: TLSVersion = .tlsv12
    public var alpn: String?

    public var isEnabled: Bool { caFile != nil || caPath != nil }

    var clientConfiguration: TLSClientConfiguration {
        TLSClientConfiguration(
            caFile: caFile, caPath: caPath, certificateFile: certificateFile, privateKeyFile: keyFile,
            insecure: insecure, minimumVersion: minimumVersion, applicationProtocol: alpn)
    }
}
