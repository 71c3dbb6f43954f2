// The layer between a socket and MQTT for every connection that is not plain MQTT over TCP: TLS, WebSocket (over
// TCP or TLS) and HTTP; the listener `protocol` values and the per-listener factories that make transports.
import MidgeCore
import MidgeTLS

/// Sits between a socket and MQTT: TLS, WebSocket (over TCP or TLS), or HTTP (which speaks MQTT to the core on the
/// client's behalf). Confined to the connection's loop. Plain MQTT over TCP has no transport at all, so it pays
/// nothing for this layer.
///
/// The loop calls `received` with what each `read` brought, `send` at the end of the turn (or before it writes
/// anything else) with the MQTT packets the broker queued for the client, `tick` about once a second, and
/// `closing` once when the connection is about to close for any reason. Bytes appended to `wire` are written to
/// the socket in order; bytes appended to `mqtt` go to the same frame decoder as a TCP client's bytes.
protocol ConnectionTransport: AnyObject {
    /// Bytes read from the socket. Append the MQTT byte stream for the core's decoder to `mqtt`, and bytes that
    /// must go back on the socket (handshakes, pongs, HTTP responses) to `wire`. Return `.close(reason)` to end the
    /// connection: the MQTT bytes already appended are processed first (a DISCONNECT among them still counts),
    /// then `wire` is flushed and the socket closed.
    func received(_ bytes: UnsafeRawBufferPointer, mqtt: inout [UInt8], wire: inout [UInt8], now: MonotonicTime)
        -> TransportStatus
    /// MQTT packets the broker sends to this client (whole packets, possibly several); append the socket bytes to
    /// `wire`, and anything the client answers at once (the HTTP gateway acknowledges deliveries it has written) to
    /// `mqtt`: the loop hands it to the core at the start of its next turn. `.close(reason)` closes the connection
    /// once `wire` is written, so an answer that ends the connection is not lost.
    func send(_ mqttPackets: UnsafeRawBufferPointer, mqtt: inout [UInt8], wire: inout [UInt8], now: MonotonicTime)
        -> TransportStatus
    /// Called about once a second (heartbeats, long-poll timeouts, handshake deadlines).
    func tick(now: MonotonicTime, mqtt: inout [UInt8], wire: inout [UInt8]) -> TransportStatus
    /// Called on the connection's loop after another thread asked for it (`GatewayHubHost.wake`): the HTTP gateway's
    /// subscribers read what was recorded for them.
    func poke(now: MonotonicTime, mqtt: inout [UInt8], wire: inout [UInt8]) -> TransportStatus
    /// The connection is closing for `reason`; append any goodbye (close_notify, WebSocket close frame, HTTP error).
    /// Called once; nothing is sent or received afterwards.
    func closing(_ reason: CloseReason, wire: inout [UInt8])
    /// Who the transport says the client is, applied to its CONNECT before the password check (TLS
    /// `use_identity_as_username`). `.unchanged` for everything else.
    var connectIdentity: TransportIdentity { get }
    /// False for a transport that never CONNECTs on its own socket (an HTTP/2 connection: its streams are the MQTT
    /// clients), so `connect_timeout` does not close it.
    var awaitsConnect: Bool { get }
}

extension ConnectionTransport {
    var connectIdentity: TransportIdentity { .unchanged }
    var awaitsConnect: Bool { true }
    func poke(now: MonotonicTime, mqtt: inout [UInt8], wire: inout [UInt8]) -> TransportStatus { .open }
}

enum TransportStatus {
    case open
    case close(CloseReason)
}

/// What a transport knows about the client's identity when its CONNECT arrives.
enum TransportIdentity: Equatable {
    /// Use the CONNECT's own user name and password.
    case unchanged
    /// The transport authenticated the client (a verified client certificate): this is its user name, and the
    /// CONNECT's user name and password are ignored, as in mosquitto.
    case authenticated(username: String)
    /// The transport requires an identity the client did not present: CONNACK 4 (bad user name or password).
    case missing
    /// A client inside the broker (a bridge's local side), which proves nothing: this user name (nil: anonymous) is
    /// what the ACL checks. Its connection's `ConnectionInfo.isInternal` exempts it from the CONNECT checks.
    case internalClient(username: String?)
}

/// A listener's `protocol` (mosquitto's key, plus `http` for the push gateway).
public enum ListenerProtocol: String, Sendable, Equatable, CaseIterable {
    case mqtt
    case websockets
    case http
}

/// What a factory is told about one accepted socket.
struct TransportContext {
    let connection: ConnectionID
    let listener: ListenerConfiguration
    let remoteAddress: String
    let now: MonotonicTime
    /// The accepting loop, for transports that open connections of their own (HTTP/2 streams).
    var host: (any StreamConnectionHost)? = nil
}

/// Makes the transport of one accepted socket. Built once per listener when the server starts; called on the
/// accepting loop's thread.
typealias TransportFactory = @Sendable (TransportContext) -> any ConnectionTransport

enum TransportFactories {
    /// The factory for a listener's sockets, or nil for plain MQTT over TCP. TLS wraps whatever the `protocol`
    /// makes, so WebSocket and HTTP run over TLS when the listener has a certificate.
    static func make(
        for listener: ListenerConfiguration, settings: ServerSettings, tls: ReloadableTLSContext?,
        gateway: HTTPGateway? = nil
    ) throws(ServerError) -> TransportFactory? {
        let inner: TransportFactory?
        let httpGateway =
            listener.protocol == .http
            ? gateway ?? HTTPGateway(listener: listener, settings: settings, logger: nil) : nil
        switch listener.protocol {
        case .mqtt:
            inner = nil
        case .websockets:
            inner = WebSocketTransport.factory(listener: listener, settings: settings)
        case .http:
            guard let gateway = httpGateway else { fatalError("BUG: an HTTP listener has its gateway") }
            inner = { context in
                HTTPTransport(
                    gateway: gateway, now: context.now, remoteAddress: context.remoteAddress,
                    connection: context.connection)
            }
        }
        guard let tls else { return inner }
        let usernameSource = listener.tls?.usernameSource
        // ALPN `h2` (offered on HTTP listeners only, see ListenerRuntime) switches the connection to HTTP/2.
        let http2: (@Sendable (TransportContext, TransportIdentity) -> any ConnectionTransport)?
        if let gateway = httpGateway {
            http2 = { context, identity in
                HTTP2Transport(
                    gateway: gateway, connection: context.connection, remoteAddress: context.remoteAddress,
                    identity: identity, host: context.host, now: context.now)
            }
        } else {
            http2 = nil
        }
        return { context in
            TLSTransport(
                context: tls.current, usernameSource: usernameSource, inner: inner?(context),
                http2: http2.map { make in { identity in make(context, identity) } })
        }
    }
}
