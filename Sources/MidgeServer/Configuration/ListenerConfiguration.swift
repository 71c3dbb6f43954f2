// One listener as the configuration describes it: where it binds, what it speaks, its TLS settings and limits.
import MidgeTLS

/// One `listener PORT [ADDRESS]` line (or the legacy `port` / `bind_address` pair), with the settings that follow
/// it in the file, as in mosquitto: what it speaks, its TLS settings and its limits.
public struct ListenerConfiguration: Sendable, Equatable {
    public var port: UInt16
    /// Nil listens on every interface, IPv4 and IPv6 (or on `host`'s addresses).
    public var address: IPAddress?
    /// A host name given instead of a numeric address: bound on every address it resolves to at start-up.
    public var host: String?
    /// `listener 0 PATH`: a unix domain socket instead of TCP.
    public var unixSocketPath: String?
    /// `socket_domain ipv4|ipv6`: only that family's addresses; nil binds both.
    public var socketDomain: SocketDomain?
    /// `bind_interface NAME`: the sockets only take connections arriving on that interface (SO_BINDTODEVICE).
    public var bindInterface: String?
    /// The line that declared the listener, for errors when it cannot be opened; line 0 when none did.
    public var origin = ConfigOrigin(fileName: "", line: 0, key: "")
    /// `protocol`: MQTT over TCP (the default), MQTT over WebSocket, or the HTTP gateway.
    public var `protocol`: ListenerProtocol = .mqtt
    /// Set when the listener has `certfile` and `keyfile`: every connection starts with a TLS handshake.
    public var tls: TLSConfiguration?
    /// `max_connections` after this `listener` line: open connections on this listener; -1 means no limit.
    public var maxConnections: Int = -1
    /// `websockets_headers_size`: the largest WebSocket upgrade request header section.
    public var webSocketHeadersSize: Int = 4096
    /// `websockets_compression` (Midge): offer permessage-deflate to WebSocket clients that ask for it.
    public var webSocketCompression = false
    /// `max_connection_rate`: new connections accepted per second on this listener; beyond it the rest wait in
    /// the kernel's backlog. Nil: the value given before any `listener` line, or no limit.
    public var maxConnectionRate: Int?
    /// `mount_point`: prefix of every topic of this listener's clients (see `ConnectionInfo.mountPoint`).
    public var mountPoint: [UInt8] = []
    /// With `per_listener_settings true`: this listener's own security keys, and the profile number its
    /// connections carry to the core (`ConnectionInfo.securityProfile`); 0 means the broker-wide settings.
    public var security: ListenerSecuritySettings?
    public var securityProfile = 0
    /// The `http_*` keys (Midge): the push gateway's settings on a `protocol http` listener.
    public var http = HTTPListenerSettings()

    public init(port: UInt16, address: IPAddress? = nil) {
        self.port = port
        self.address = address
    }

    /// The numeric addresses bound: one, or the wildcard addresses of `socketDomain` when none was given. Host
    /// names and unix sockets are resolved by `resolvedBindAddresses()`.
    public var bindAddresses: [IPAddress] {
        if let address { return [address] }
        return [IPAddress.anyIPv4, .anyIPv6].filter { (socketDomain?.family ?? $0.family) == $0.family }
    }
}

/// Where a setting was written: `file:line: key`. Not part of the setting's value: two listeners that bind the same
/// way are equal wherever they were declared.
public struct ConfigOrigin: Sendable, Equatable, CustomStringConvertible {
    public var fileName: String
    public var line: Int
    public var key: String

    public var description: String { line > 0 ? "\(fileName):\(line): \(key)" : "" }

    public static func == (lhs: ConfigOrigin, rhs: ConfigOrigin) -> Bool { true }
}
