// One HTTP/2 connection of the push gateway (RFC 9113, ALPN `h2` on a TLS listener): the nghttp2 session and its
// table of streams, each served by an `HTTPTransport` on a connection of its own (`HTTP2StreamTransport`).
import MidgeCore
import MidgeGateway

/// What an HTTP/2 connection asks of its event loop.
protocol StreamConnectionHost: AnyObject {
    /// A connection on this loop with no socket behind it, the same listener settings as `parent`, and the transport
    /// `make` builds for its id; its transport is poked on the next turn. Nil when the loop has no room.
    func openStreamConnection(parent: ConnectionID, _ make: (ConnectionID) -> any ConnectionTransport)
        -> ConnectionID?
    /// Pokes the connection's transport on its loop's next turn (safe from any transport call).
    func wakeConnection(_ id: ConnectionID)
}

/// Each stream's request is an MQTT client of the core exactly as an HTTP/1.1 connection's is, on a connection of its
/// own: a request's CONNECT, SUBSCRIBE and acknowledgements cannot share one MQTT session with other streams'
/// (each has its own credentials and client id, and the core answers per session). So this transport owns only the
/// framing; the gateway's routing, authentication, ACL checks and SSE formatting are the HTTP/1.1 ones, unchanged.
///
/// Flow control: nghttp2 sends a stream's bytes only as the peer's windows allow, and a stream whose unsent bytes
/// pass `streamQueueLimit` stops reading the topic history until they drain, as a congested HTTP/1.1 connection
/// does; this connection itself is not poked while its socket is congested, so nghttp2 stops taking bytes too.
final class HTTP2Transport: ConnectionTransport {
    let gateway: HTTPGateway
    private let session: HTTP2Session?
    private let setupFailure: String?
    private(set) weak var host: (any StreamConnectionHost)?
    let connection: ConnectionID
    let remoteAddress: String
    /// Who TLS says the client is (`use_identity_as_username`); every stream's CONNECT carries it.
    let identity: TransportIdentity
    private var streams: [Int32: HTTP2StreamTransport] = [:]
    /// Set while this connection is being flushed, so a stream that writes meanwhile needs no wake-up.
    private var flushing = false
    /// The last time the client sent something or a stream was open: `http_idle_timeout` runs from here.
    private var lastActivity: MonotonicTime

    /// Unsent bytes of one stream above which it stops reading events: a few batches of SSE events.
    static let streamQueueLimit = 32 * 1024
    static let maxConcurrentStreams: UInt32 = 100

    init(
        gateway: HTTPGateway, connection: ConnectionID, remoteAddress: String, identity: TransportIdentity,
        host: (any StreamConnectionHost)?, now: MonotonicTime
    ) {
        self.gateway = gateway
        self.connection = connection
        self.remoteAddress = remoteAddress
        self.identity = identity
        self.host = host
        lastActivity = now
        do {
            session = try HTTP2Session(
                limits: gateway.settings.limits, maxConcurrentStreams: HTTP2Transport.maxConcurrentStreams)
            setupFailure = nil
        } catch {
            session = nil
            setupFailure = error.description
        }
    }

    /// Never an MQTT client itself (its streams are), so no CONNECT is awaited from it.
    var awaitsConnect: Bool { false }

    func received(_ bytes: UnsafeRawBufferPointer, mqtt: inout [UInt8], wire: inout [UInt8], now: MonotonicTime)
        -> TransportStatus
    {
        guard let session else { return .close(.connectionLost(setupFailure ?? "no HTTP/2 session")) }
        lastActivity = now
        do {
            handle(try session.receive(bytes), now: now)
        } catch {
            gateway.logger?.log(
                .notice, "HTTP/2 client \(remoteAddress): \(error.description), closing the connection.")
            try? session.takeOutput(into: &wire)
            return .close(.protocolError("HTTP/2: \(error.description)"))
        }
        return flush(wire: &wire, now: now)
    }

    func send(_ mqttPackets: UnsafeRawBufferPointer, mqtt: inout [UInt8], wire: inout [UInt8], now: MonotonicTime)
        -> TransportStatus
    {
        .open
    }

    func tick(now: MonotonicTime, mqtt: inout [UInt8], wire: inout [UInt8]) -> TransportStatus {
        if !streams.isEmpty { lastActivity = now }
        if now.nanoseconds - lastActivity.nanoseconds >= gateway.settings.idleSeconds * 1_000_000_000 {
            // As an idle HTTP/1.1 connection: a connection without streams is not kept forever.
            session?.goAway()
            _ = flush(wire: &wire, now: now)
            return .close(.clientDisconnected)
        }
        return flush(wire: &wire, now: now)
    }

    /// A stream wrote, or the socket drained: what nghttp2 may send now goes out.
    func poke(now: MonotonicTime, mqtt: inout [UInt8], wire: inout [UInt8]) -> TransportStatus {
        flush(wire: &wire, now: now)
    }

    func closing(_ reason: CloseReason, wire: inout [UInt8]) {
        if let session {
            session.goAway()
            try? session.takeOutput(into: &wire)
        }
        for stream in streams.values { stream.cancel() }
        streams = [:]
    }

    private func flush(wire: inout [UInt8], now: MonotonicTime) -> TransportStatus {
        guard let session else { return .open }
        flushing = true
        defer { flushing = false }
        do {
            try session.takeOutput(into: &wire)
        } catch {
            gateway.logger?.log(
                .notice, "HTTP/2 client \(remoteAddress): \(error.description), closing the connection.")
            return .close(.protocolError("HTTP/2: \(error.description)"))
        }
        handle(session.takeEvents(), now: now)
        for id in session.takeDrainedStreams() { streams[id]?.windowOpened() }
        if session.isFinished {
            if let problem = session.protocolError {
                gateway.logger?.log(
                    .notice, "HTTP/2 client \(remoteAddress): \(problem), closing the connection.")
                return .close(.protocolError("HTTP/2: \(problem)"))
            }
            return .close(.clientDisconnected)
        }
        return .open
    }

    private func handle(_ events: [HTTP2Event], now: MonotonicTime) {
        for event in events {
            switch event {
            case .request(let id, let request):
                open(id, request, now: now)
            case .closed(let id):
                // RST_STREAM from the client, or the stream's answer is complete: only this request ends.
                streams.removeValue(forKey: id)?.cancel()
            }
        }
    }

    private func open(_ id: Int32, _ request: HTTPRequest, now: MonotonicTime) {
        var made: HTTP2StreamTransport?
        let opened = host?.openStreamConnection(parent: connection) { streamConnection in
            let http = HTTPTransport(
                gateway: gateway, now: now, remoteAddress: remoteAddress, connection: streamConnection)
            let stream = HTTP2StreamTransport(
                parent: self, stream: id, request: request, http: http, connection: streamConnection)
            made = stream
            return stream
        }
        guard opened != nil, let made else {
            gateway.metrics.gateway.countResponse(status: 503)
            session?.respond(
                stream: id, .error(.serviceUnavailable, "the broker has no room for another connection now"))
            return
        }
        streams[id] = made
    }

    // MARK: - For the streams

    /// Something was written to the session outside this connection's own calls: flush it on the next turn.
    func streamWrote() {
        if !flushing { host?.wakeConnection(connection) }
    }

    func queuedBytes(stream id: Int32) -> Int { session?.queuedBytes(stream: id) ?? 0 }

    func respond(stream id: Int32, _ response: HTTPResponse) {
        session?.respond(stream: id, response)
        streamWrote()
    }

    func startStream(stream id: Int32, status: HTTPStatus, headers: HTTPHeaders) {
        session?.startStream(stream: id, status: status, headers: headers)
        streamWrote()
    }

    func write(stream id: Int32, _ bytes: [UInt8]) {
        session?.write(stream: id, bytes)
        streamWrote()
    }

    /// The stream's connection closed: an open-ended answer ends, an unanswered request is reset.
    func streamEnded(_ id: Int32, answered: Bool, streaming: Bool) {
        guard streams.removeValue(forKey: id) != nil else { return }
        if streaming {
            session?.finish(stream: id)
        } else if !answered {
            session?.reset(stream: id)
        }
        streamWrote()
    }
}
