// GET /subscribe upgraded to a WebSocket (RFC 6455 §4.2.2, §5.6): the handshake, and each message as a text frame.
import MQTTCodec
import MidgeCore
import MidgeGateway

/// Why a WebSocket besides SSE: one connection a page already knows how to open, binary-safe, and no per-request
/// overhead; the events are the same JSON objects as a poll's (`id` first), so resuming works as with SSE, by
/// `last_event_id` or `since` in the URL (browsers send no `Last-Event-ID` here).
extension HTTPTransport {
    /// What a client may send us: nothing but control frames matter, so its messages are capped small.
    static let webSocketLimits = WebSocketLimits(maxFramePayload: 4096, maxMessageSize: 4096)

    /// Checks the upgrade request; nil after answering a refusal.
    func acceptWebSocket(_ request: HTTPRequest, wire: inout [UInt8]) -> HTTPResponse? {
        // A page of any origin can open a WebSocket, and the browser may send credentials it holds for this host:
        // only same-origin pages and those `http_cors_origins` allows get to subscribe.
        if let origin = request.headers["Origin"], !gateway.router.configuration.cors.allows(origin: origin),
            Self.authority(ofOrigin: origin) != request.headers["Host"]?.lowercased()
        {
            write(
                .error(.forbidden, "origin \(origin) may not open a WebSocket here (see http_cors_origins)"),
                to: request, wire: &wire)
            return nil
        }
        switch WebSocketHandshake.respond(to: request) {
        case .accepted(let accepted):
            return accepted.response
        case .rejected(let response):
            write(response, to: request, wire: &wire)
            return nil
        }
    }

    /// `https://example.com:8443` → `example.com:8443`.
    static func authority(ofOrigin origin: String) -> String? {
        guard let separator = origin.range(of: "://") else { return nil }
        return origin[separator.upperBound...].lowercased()
    }

    /// Writes the 101, then the retained messages, each with the id where the subscriber starts.
    func openWebSocket(_ upgrade: HTTPResponse, retained: [GatewayMessage], cursor: UInt64, wire: inout [UInt8]) {
        upgrade.withDate().encode(into: &wire)
        gateway.metrics.gateway.countResponse(status: upgrade.status.code)
        webSocket = WebSocketConnection(limits: Self.webSocketLimits)
        for message in retained { sendFrame(message, id: String(cursor), wire: &wire) }
    }

    /// One message as a text frame: `{"id":…,"topic":…,"payload" or "payload_base64":…,"qos":…,"retain":…}`.
    func sendFrame(_ message: GatewayMessage, id: String, wire: inout [UInt8]) {
        guard let webSocket, webSocket.state == .open, case .stream(let stream) = exchange else { return }
        var shown = message
        shown.qos = min(message.qos, stream.command.qos)
        var json: [UInt8] = []
        shown.appendJSON(id: id, to: &json)
        WebSocketFrameEncoder.encodeHeader(opcode: .text, payloadLength: json.count, into: &wire)
        wire.append(contentsOf: json)
        gateway.metrics.gateway.eventsDelivered.wrappingAdd(1, ordering: .relaxed)
    }
}
