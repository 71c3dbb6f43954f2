// What a running listener shares between the loops: its settings, its transport factory, its live TLS context
// (replaced on reload) and its connection count for a per-listener `max_connections`.
import MidgeTLS
import Synchronization

/// One configured listener (both of its address families share it). Created before the loops start.
final class ListenerRuntime: Sendable {
    let configuration: ListenerConfiguration
    /// Nil for plain MQTT over TCP.
    let factory: TransportFactory?
    /// The push gateway's shared state, on a `protocol http` listener.
    let gateway: HTTPGateway?
    /// The certificate, key and CA the next handshakes use; SIGHUP swaps it, connections keep the one they began with.
    let tls: ReloadableTLSContext?
    /// Open connections on this listener, counted only when it has its own `max_connections`.
    let connectionCount = Atomic<Int>(0)

    init(configuration: ListenerConfiguration, settings: ServerSettings, logger: Logger? = nil) throws(ServerError) {
        self.configuration = configuration
        if var tlsConfiguration = configuration.tls {
            // HTTP/2 carries a page's SSE streams on one connection; HTTP/1.1 clients get what they had.
            if configuration.protocol == .http { tlsConfiguration.applicationProtocols = ["h2", "http/1.1"] }
            do {
                tls = try ReloadableTLSContext(configuration: tlsConfiguration)
            } catch {
                throw ServerError(description: "Unable to set up TLS on port \(configuration.port): \(error).")
            }
        } else {
            tls = nil
        }
        gateway =
            configuration.protocol == .http
            ? HTTPGateway(listener: configuration, settings: settings, logger: logger) : nil
        factory = try TransportFactories.make(for: configuration, settings: settings, tls: tls, gateway: gateway)
    }

    /// Whether connections on this listener are counted against its own limit.
    var countsConnections: Bool { configuration.maxConnections >= 0 }

    /// Re-reads the certificate, key and CA files. On failure the listener keeps its previous context and the
    /// error says why.
    func reloadTLS() throws(TLSError) {
        guard let tls else { return }
        _ = try tls.reload()
    }
}
