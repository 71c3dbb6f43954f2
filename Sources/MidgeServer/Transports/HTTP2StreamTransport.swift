// One HTTP/2 stream's request, served by an HTTPTransport on a connection with no socket of its own: the MQTT side
// is the core's as for any client, the answer goes to the stream through the HTTP/2 connection's session.
import MidgeCore
import MidgeGateway

/// The loop calls this connection's transport as any other's (broker packets, ticks, hub wake-ups); nothing is ever
/// read from or written to its socket, since `wire` stays empty: the answer reaches the client as frames of the
/// parent's stream.
final class HTTP2StreamTransport: ConnectionTransport, HTTPResponseSink {
    private weak var parent: HTTP2Transport?
    let stream: Int32
    let connection: ConnectionID
    private let http: HTTPTransport
    /// The request, until the first poke hands it to `http` (the connection exists by then).
    private var request: HTTPRequest?
    private let identity: TransportIdentity
    /// The client reset the stream or the connection ended: the MQTT session ends on the next call.
    private var cancelled = false
    /// A hub wake-up was skipped because the stream's bytes were not sent yet; `windowOpened` repeats it.
    private var waitingForWindow = false
    private var answered = false
    private var streaming = false

    init(parent: HTTP2Transport, stream: Int32, request: HTTPRequest, http: HTTPTransport, connection: ConnectionID) {
        self.parent = parent
        self.stream = stream
        self.request = request
        self.http = http
        self.connection = connection
        identity = parent.identity
        http.responseSink = self
    }

    var connectIdentity: TransportIdentity { identity }

    func received(_ bytes: UnsafeRawBufferPointer, mqtt: inout [UInt8], wire: inout [UInt8], now: MonotonicTime)
        -> TransportStatus
    {
        .open
    }

    func send(_ mqttPackets: UnsafeRawBufferPointer, mqtt: inout [UInt8], wire: inout [UInt8], now: MonotonicTime)
        -> TransportStatus
    {
        if cancelled { return http.endSession(mqtt: &mqtt) }
        return http.send(mqttPackets, mqtt: &mqtt, wire: &wire, now: now)
    }

    func tick(now: MonotonicTime, mqtt: inout [UInt8], wire: inout [UInt8]) -> TransportStatus {
        if cancelled || parent == nil { return http.endSession(mqtt: &mqtt) }
        return http.tick(now: now, mqtt: &mqtt, wire: &wire)
    }

    func poke(now: MonotonicTime, mqtt: inout [UInt8], wire: inout [UInt8]) -> TransportStatus {
        guard !cancelled, let parent else { return http.endSession(mqtt: &mqtt) }
        if let request {
            self.request = nil
            return http.handleRequest(request, mqtt: &mqtt, wire: &wire, now: now)
        }
        if parent.queuedBytes(stream: stream) >= HTTP2Transport.streamQueueLimit {
            // The history keeps the events; this subscriber reads on from its cursor once the client takes these.
            waitingForWindow = true
            return .open
        }
        return http.poke(now: now, mqtt: &mqtt, wire: &wire)
    }

    func closing(_ reason: CloseReason, wire: inout [UInt8]) {
        var ignored: [UInt8] = []
        // May still answer (503 for a request the core cut short) through the sink.
        http.closing(reason, wire: &ignored)
        parent?.streamEnded(stream, answered: answered, streaming: streaming)
    }

    /// The stream is gone (RST_STREAM, GOAWAY, or the connection closed): end its MQTT session soon.
    func cancel() {
        guard !cancelled else { return }
        cancelled = true
        parent?.host?.wakeConnection(connection)
    }

    /// nghttp2 sent everything this stream had queued.
    func windowOpened() {
        guard waitingForWindow else { return }
        waitingForWindow = false
        parent?.host?.wakeConnection(connection)
    }

    // MARK: - HTTPResponseSink

    func respond(_ response: HTTPResponse) {
        guard !answered, !cancelled else { return }
        answered = true
        parent?.respond(stream: stream, response)
    }

    func startStream(status: HTTPStatus, headers: HTTPHeaders) {
        guard !answered, !cancelled else { return }
        answered = true
        streaming = true
        parent?.startStream(stream: stream, status: status, headers: headers)
    }

    func streamData(_ bytes: [UInt8]) {
        guard streaming, !cancelled else { return }
        parent?.write(stream: stream, bytes)
    }
}
