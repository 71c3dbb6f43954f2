// Where the gateway's answers go when the request did not come over HTTP/1.1: one HTTP/2 stream (RFC 9113 §8.1).
import MidgeCore
import MidgeGateway

/// Takes an `HTTPTransport`'s answers in place of the socket. With a sink, the transport serves exactly one
/// request (an HTTP/2 stream carries one), so an answered request ends it.
protocol HTTPResponseSink: AnyObject {
    /// A whole answer (status, header fields, body).
    func respond(_ response: HTTPResponse)
    /// The head of an answer without end (an SSE stream); its body follows through `streamData`.
    func startStream(status: HTTPStatus, headers: HTTPHeaders)
    func streamData(_ bytes: [UInt8])
}

extension HTTPTransport {
    /// One request that arrived already parsed (an HTTP/2 stream's), routed exactly as a parsed HTTP/1.1 one.
    func handleRequest(_ request: HTTPRequest, mqtt: inout [UInt8], wire: inout [UInt8], now: MonotonicTime)
        -> TransportStatus
    {
        lastRequest = now
        gateway.metrics.gateway.requests.wrappingAdd(1, ordering: .relaxed)
        let status = handle(request, mqtt: &mqtt, wire: &wire, now: now)
        if case .close = status { return status }
        if finished { return endSession(mqtt: &mqtt) }
        return .open
    }
}
