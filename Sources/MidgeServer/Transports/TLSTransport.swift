// TLS on the event loops: a `TLSConnection` over memory BIOs between the socket and MQTT, or between the socket and
// a WebSocket or HTTP transport (mosquitto's per-listener `certfile`/`keyfile`/... settings).
import MidgeCore
import MidgeTLS

/// One client's TLS session. The handshake advances inside `received` as records arrive, so a slow or stalled
/// client costs only its own socket; the connect timeout closes one that never finishes.
final class TLSTransport: ConnectionTransport {
    private let tls: TLSConnection?
    /// Why the session could not even be created (out of memory); the first read closes the connection.
    private let setupFailure: TLSError?
    /// Where the MQTT username comes from (`use_identity_as_username`, `use_subject_as_username`); nil for CONNECT's.
    private let usernameSource: PeerIdentity?
    /// WebSocket or HTTP running inside TLS; nil for MQTT straight over TLS.
    private var inner: (any ConnectionTransport)?
    /// Makes the HTTP/2 transport that replaces `inner` when ALPN agrees on `h2`; nil where h2 is not offered.
    private let http2: ((TransportIdentity) -> any ConnectionTransport)?
    /// ALPN's outcome has been applied (once the handshake completed).
    private var protocolChosen = false
    /// Plaintext for or from `inner`, reused between calls.
    private var scratch: [UInt8] = []
    private var innerWire: [UInt8] = []

    init(
        context: TLSContext, usernameSource: PeerIdentity?, inner: (any ConnectionTransport)?,
        http2: ((TransportIdentity) -> any ConnectionTransport)? = nil
    ) {
        self.http2 = http2
        do {
            tls = try TLSConnection(context: context)
            setupFailure = nil
        } catch {
            tls = nil
            setupFailure = error
        }
        self.usernameSource = usernameSource
        self.inner = inner
    }

    func received(_ bytes: UnsafeRawBufferPointer, mqtt: inout [UInt8], wire: inout [UInt8], now: MonotonicTime)
        -> TransportStatus
    {
        guard let tls else { return .close(Self.reason(setupFailure ?? .closed)) }
        var status = TransportStatus.open
        do throws(TLSError) {
            try tls.feed(bytes)
            let read: TLSReadStatus
            if inner != nil {
                scratch.removeAll(keepingCapacity: true)
                read = try tls.readPlaintext(appendingTo: &scratch)
                applyNegotiatedProtocol()
                if !scratch.isEmpty, let inner {
                    innerWire.removeAll(keepingCapacity: true)
                    status = scratch.withUnsafeBytes { inner.received($0, mqtt: &mqtt, wire: &innerWire, now: now) }
                    try tls.writePlaintext(innerWire)
                }
            } else {
                read = try tls.readPlaintext(appendingTo: &mqtt)
            }
            if read == .closedByPeer {
                // The client's close_notify: answer it, then treat it as the end of the stream.
                tls.close()
                status = .close(.endOfStream)
            }
        } catch {
            // OpenSSL may have queued an alert that tells the client why.
            takeCiphertext(into: &wire)
            return .close(Self.reason(error))
        }
        takeCiphertext(into: &wire)
        return status
    }

    /// The handshake is done: an `h2` client gets the HTTP/2 transport before its first bytes are read.
    private func applyNegotiatedProtocol() {
        guard !protocolChosen, let tls, tls.isHandshakeComplete else { return }
        protocolChosen = true
        if let http2, tls.selectedApplicationProtocol == "h2" { inner = http2(connectIdentity) }
    }

    var awaitsConnect: Bool { inner?.awaitsConnect ?? true }

    func send(_ mqttPackets: UnsafeRawBufferPointer, mqtt: inout [UInt8], wire: inout [UInt8], now: MonotonicTime)
        -> TransportStatus
    {
        guard let tls else { return .close(Self.reason(setupFailure ?? .closed)) }
        var status = TransportStatus.open
        do throws(TLSError) {
            if let inner {
                innerWire.removeAll(keepingCapacity: true)
                status = inner.send(mqttPackets, mqtt: &mqtt, wire: &innerWire, now: now)
                try tls.writePlaintext(innerWire)
            } else {
                try tls.writePlaintext(mqttPackets)
            }
        } catch {
            takeCiphertext(into: &wire)
            return .close(Self.reason(error))
        }
        takeCiphertext(into: &wire)
        return status
    }

    func tick(now: MonotonicTime, mqtt: inout [UInt8], wire: inout [UInt8]) -> TransportStatus {
        passToInner(mqtt: &mqtt, wire: &wire) { inner, mqtt, innerWire in
            inner.tick(now: now, mqtt: &mqtt, wire: &innerWire)
        }
    }

    func poke(now: MonotonicTime, mqtt: inout [UInt8], wire: inout [UInt8]) -> TransportStatus {
        passToInner(mqtt: &mqtt, wire: &wire) { inner, mqtt, innerWire in
            inner.poke(now: now, mqtt: &mqtt, wire: &innerWire)
        }
    }

    /// A call of the inner transport that is not a read: its plaintext goes out encrypted.
    private func passToInner(
        mqtt: inout [UInt8], wire: inout [UInt8],
        _ call: (any ConnectionTransport, inout [UInt8], inout [UInt8]) -> TransportStatus
    ) -> TransportStatus {
        guard let tls, let inner, tls.isHandshakeComplete else { return .open }
        innerWire.removeAll(keepingCapacity: true)
        let status = call(inner, &mqtt, &innerWire)
        do throws(TLSError) {
            try tls.writePlaintext(innerWire)
        } catch {
            takeCiphertext(into: &wire)
            return .close(Self.reason(error))
        }
        takeCiphertext(into: &wire)
        return status
    }

    func closing(_ reason: CloseReason, wire: inout [UInt8]) {
        guard let tls else { return }
        if let inner, tls.isHandshakeComplete, tls.failure == nil, !tls.sentCloseNotify {
            innerWire.removeAll(keepingCapacity: true)
            inner.closing(reason, wire: &innerWire)
            try? tls.writePlaintext(innerWire)
        }
        // close_notify (nothing before the handshake completes or after a failure), as mosquitto: no wait for the
        // client's.
        tls.close()
        takeCiphertext(into: &wire)
    }

    var connectIdentity: TransportIdentity {
        guard let usernameSource else { return inner?.connectIdentity ?? .unchanged }
        guard let name = tls?.peerIdentity(usernameSource) else { return .missing }
        return .authenticated(username: name)
    }

    /// Moves the ciphertext OpenSSL produced to the end of `wire`, decrypting nothing and copying once.
    private func takeCiphertext(into wire: inout [UInt8]) {
        guard let tls else { return }
        let pending = tls.pendingCiphertextCount
        guard pending > 0 else { return }
        let start = wire.count
        wire.append(contentsOf: repeatElement(0, count: pending))
        let taken = wire.withUnsafeMutableBytes { raw in
            tls.takeCiphertext(into: UnsafeMutableRawBufferPointer(rebasing: raw[start...]))
        }
        wire.removeLast(pending - taken)
    }

    private static func reason(_ error: TLSError) -> CloseReason {
        .connectionLost(error.description)
    }
}
