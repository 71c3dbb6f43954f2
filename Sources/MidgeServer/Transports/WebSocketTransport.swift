// MQTT over WebSocket (RFC 6455, MQTT §6) on a `protocol websockets` listener: the HTTP upgrade, then binary frames
// carrying the MQTT byte stream in both directions.
import MidgeCore
import MidgeGateway

/// One client's WebSocket: first an HTTP/1.1 upgrade request, then frames. Frames may split or pack MQTT packets
/// anyhow [MQTT-6.0.0-2]; their payload goes to the usual MQTT frame decoder, so framing rules are checked once.
final class WebSocketTransport: ConnectionTransport {
    private enum Phase {
        /// Reading the upgrade request.
        case handshake(HTTPRequestParser)
        case open(WebSocketConnection)
        /// Refused or closed: anything more from the client is ignored until the socket closes.
        case finished
    }

    private var phase: Phase
    private let limits: WebSocketLimits
    private let handshakeConfiguration: WebSocketHandshakeConfiguration

    init(limits: WebSocketLimits, handshake: WebSocketHandshakeConfiguration, http: HTTPLimits) {
        phase = .handshake(HTTPRequestParser(limits: http))
        self.limits = limits
        handshakeConfiguration = handshake
    }

    /// The factory for a `protocol websockets` listener. A frame can never be larger than the largest MQTT packet
    /// the listener accepts (its remaining length plus a 5-byte fixed header), so larger ones fail with 1009 before
    /// their payload is read.
    static func factory(listener: ListenerConfiguration, settings: ServerSettings) -> TransportFactory {
        let packetLimit = settings.maxRemainingLength + 5
        let limits = WebSocketLimits(maxFramePayload: packetLimit, maxMessageSize: Int.max)
        // permessage-deflate only where the listener asks for it: it costs each connection that agrees ~300 KiB of
        // zlib state, more than a thousand idle plain clients, and MQTT payloads are often small or already
        // compressed. Messages under 64 bytes go out uncompressed either way.
        let handshake = WebSocketHandshakeConfiguration(
            deflate: listener.webSocketCompression ? PerMessageDeflateConfiguration() : nil)
        // An upgrade request has no body; its headers are bounded by `websockets_headers_size`.
        let http = HTTPLimits(maxHeaderBytes: listener.webSocketHeadersSize, maxBodyBytes: 0)
        return { _ in WebSocketTransport(limits: limits, handshake: handshake, http: http) }
    }

    func received(_ bytes: UnsafeRawBufferPointer, mqtt: inout [UInt8], wire: inout [UInt8], now: MonotonicTime)
        -> TransportStatus
    {
        switch phase {
        case .open(let socket):
            return apply(socket.receive(bytes, appendingDataTo: &mqtt), wire: &wire)
        case .handshake(var parser):
            // Out of `phase` while it changes, so appending does not copy its buffer.
            phase = .finished
            parser.append(bytes)
            let event: HTTPRequestParser.Event?
            do throws(HTTPParseError) {
                event = try parser.next()
            } catch {
                phase = .finished
                error.response.encode(into: &wire)
                return .close(.protocolError("WebSocket handshake: \(error)"))
            }
            guard case .request(let request) = event else {
                // Incomplete, or `Expect: 100-continue`, which an upgrade request has no reason to ask: keep reading.
                phase = .handshake(parser)
                return .open
            }
            switch WebSocketHandshake.respond(to: request, configuration: handshakeConfiguration) {
            case .rejected(let response):
                phase = .finished
                response.encode(into: &wire)
                return .close(.protocolError("WebSocket handshake refused: \(response.status)"))
            case .accepted(let accepted):
                accepted.response.encode(into: &wire)
                let socket = WebSocketConnection(limits: limits, deflate: accepted.deflate)
                phase = .open(socket)
                // Frames the client sent right behind its request.
                let rest = parser.takeBufferedBytes()
                guard !rest.isEmpty else { return .open }
                let receipt = rest.withUnsafeBytes { socket.receive($0, appendingDataTo: &mqtt) }
                return apply(receipt, wire: &wire)
            }
        case .finished:
            return .open
        }
    }

    /// Writes a receipt's replies (pongs, close frames) and says what its closure means for the MQTT connection. A
    /// Close frame from the client without MQTT DISCONNECT is the end of the network connection, so the Will fires
    /// (§6, [MQTT-3.1.2-8]).
    private func apply(_ receipt: WebSocketConnection.Receipt, wire: inout [UInt8]) -> TransportStatus {
        wire.append(contentsOf: receipt.reply)
        guard let closure = receipt.closure else { return .open }
        phase = .finished
        switch closure {
        case .closedByPeer:
            return .close(.endOfStream)
        case .failed(let code, let reason):
            return .close(.protocolError("WebSocket close \(code): \(reason)"))
        }
    }

    func send(_ mqttPackets: UnsafeRawBufferPointer, mqtt: inout [UInt8], wire: inout [UInt8], now: MonotonicTime)
        -> TransportStatus
    {
        // One binary frame per turn's packets; MQTT bytes before the upgrade completed cannot exist (no CONNECT yet).
        if case .open(let socket) = phase { socket.send(mqttPackets, into: &wire) }
        return .open
    }

    func tick(now: MonotonicTime, mqtt: inout [UInt8], wire: inout [UInt8]) -> TransportStatus { .open }

    func closing(_ reason: CloseReason, wire: inout [UInt8]) {
        guard case .open(let socket) = phase else { return }
        phase = .finished
        socket.close(Self.closeCode(for: reason), into: &wire)
    }

    /// The close code telling the client why the broker ends its connection (RFC 6455 §7.4.1).
    static func closeCode(for reason: CloseReason) -> WebSocketCloseCode {
        switch reason {
        case .protocolError: .protocolError
        case .limitExceeded: .policyViolation
        case .serverShutdown: .goingAway
        case .clientDisconnected, .connectionLost, .keepaliveTimeout, .takenOver, .connectRefused: .normalClosure
        }
    }
}
