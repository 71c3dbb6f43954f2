// The server side of one HTTP/2 connection (RFC 9113) over libnghttp2: bytes in, requests and stream closes out,
// responses and open-ended streams (SSE) back in, and the bytes nghttp2 frames from them.
import CNGHTTP2

/// Something a peer's bytes produced.
public enum HTTP2Event: Equatable, Sendable {
    /// A whole request (headers and body) on its stream; answer it with `respond` or `startStream`.
    case request(stream: Int32, HTTPRequest)
    /// A stream the owner was told about ended: answered in full, reset by the peer (RST_STREAM), or cut by the end
    /// of the connection. Nothing written to it afterwards goes anywhere.
    case closed(stream: Int32)
}

/// Why the connection cannot go on; nghttp2 has queued the GOAWAY that tells the peer when there is one.
public struct HTTP2Error: Error, CustomStringConvertible, Sendable {
    public let description: String
}

/// Framing, HPACK, stream states and flow control are nghttp2's; this class keeps each stream's request as it
/// arrives and each answer's bytes until nghttp2 may send them, which is only as fast as the peer's windows allow.
/// The owner watches `queuedBytes(stream:)` to stop producing for a stream whose reader is slow. Not thread-safe:
/// owned by one connection.
public final class HTTP2Session {
    private final class Stream {
        var method: String?
        var path: String?
        var authority: String?
        var headers = HTTPHeaders()
        var headerBytes = 0
        var body: [UInt8] = []
        /// Set when the request broke a limit: answered with this once it is complete.
        var refusal: HTTPStatus?
        /// Told to the owner as a request; its close is told too.
        var announced = false
        /// Answer bytes nghttp2 has not taken yet: `outgoing[sent...]`.
        var outgoing: [UInt8] = []
        var sent = 0
        /// No more bytes will be written: the data ends once `outgoing` is taken.
        var ended = false
        /// nghttp2 found nothing to send and waits for `resume`.
        var deferred = false
        var queued: Int { outgoing.count - sent }
    }

    private var session: OpaquePointer?
    private let limits: HTTPLimits
    private var streams: [Int32: Stream] = [:]
    private var events: [HTTP2Event] = []
    private var drained: Set<Int32> = []
    /// What the peer did wrong when nghttp2 ended the connection with an error GOAWAY (for the log line).
    public private(set) var protocolError: String?

    /// Starts the session and queues the server's SETTINGS; `takeOutput` has them.
    public init(limits: HTTPLimits = HTTPLimits(), maxConcurrentStreams: UInt32 = 100) throws(HTTP2Error) {
        self.limits = limits
        var callbacks: OpaquePointer?
        guard nghttp2_session_callbacks_new(&callbacks) == 0, let callbacks else {
            throw HTTP2Error(description: "out of memory for an HTTP/2 session")
        }
        defer { nghttp2_session_callbacks_del(callbacks) }
        HTTP2Session.install(callbacks)
        var made: OpaquePointer?
        guard nghttp2_session_server_new(&made, callbacks, Unmanaged.passUnretained(self).toOpaque()) == 0 else {
            throw HTTP2Error(description: "out of memory for an HTTP/2 session")
        }
        session = made
        var settings = [
            nghttp2_settings_entry(
                settings_id: Int32(NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS.rawValue), value: maxConcurrentStreams)
        ]
        nghttp2_submit_settings(made, UInt8(NGHTTP2_FLAG_NONE.rawValue), &settings, settings.count)
    }

    deinit {
        nghttp2_session_del(session)
    }

    /// Feeds the peer's bytes. Throws on a protocol error; nghttp2 has then queued a GOAWAY for `takeOutput`.
    public func receive(_ bytes: UnsafeRawBufferPointer) throws(HTTP2Error) -> [HTTP2Event] {
        guard !bytes.isEmpty, let base = bytes.baseAddress else { return takeEvents() }
        let read = nghttp2_session_mem_recv(session, base.assumingMemoryBound(to: UInt8.self), bytes.count)
        if read < 0 { throw HTTP2Error(description: HTTP2Session.text(Int32(read))) }
        return takeEvents()
    }

    /// Events that happened while nghttp2 wrote (streams that closed once their answer was sent).
    public func takeEvents() -> [HTTP2Event] {
        defer { events.removeAll() }
        return events
    }

    /// Appends what nghttp2 may send now: frames, and answer bytes up to the peer's windows.
    public func takeOutput(into wire: inout [UInt8]) throws(HTTP2Error) {
        while true {
            var chunk: UnsafePointer<UInt8>?
            let count = nghttp2_session_mem_send(session, &chunk)
            if count < 0 { throw HTTP2Error(description: HTTP2Session.text(Int32(count))) }
            guard count > 0, let chunk else { return }
            wire.append(contentsOf: UnsafeBufferPointer(start: chunk, count: count))
        }
    }

    /// Streams whose queued bytes nghttp2 took all of since the last call: their owner may produce again.
    public func takeDrainedStreams() -> Set<Int32> {
        defer { drained.removeAll() }
        return drained
    }

    /// Neither side has anything more to say (after a GOAWAY both ways, or a fatal error): close the connection.
    public var isFinished: Bool {
        nghttp2_session_want_read(session) == 0 && nghttp2_session_want_write(session) == 0
    }

    /// A whole answer: headers, then the body (none for a bodiless status).
    public func respond(stream id: Int32, _ response: HTTPResponse) {
        guard let stream = streams[id] else { return }
        let hasBody = !response.body.isEmpty
        var headers = response.headers
        if hasBody && !headers.contains("Content-Length") {
            headers.append("Content-Length", String(response.body.count))
        }
        stream.outgoing = response.body
        stream.ended = true
        submit(stream: id, status: response.status.code, headers: headers, withData: hasBody)
    }

    /// Headers now, the body as `write` supplies it and without end until `finish`: an SSE stream.
    public func startStream(stream id: Int32, status: HTTPStatus, headers: HTTPHeaders) {
        guard streams[id] != nil else { return }
        submit(stream: id, status: status.code, headers: headers, withData: true)
    }

    /// More of a started stream's body, sent as the peer's windows open.
    public func write(stream id: Int32, _ bytes: [UInt8]) {
        guard let stream = streams[id], !stream.ended, !bytes.isEmpty else { return }
        if stream.sent > 0 && stream.sent >= stream.outgoing.count / 2 {
            stream.outgoing.removeFirst(stream.sent)
            stream.sent = 0
        }
        stream.outgoing.append(contentsOf: bytes)
        resume(id, stream)
    }

    /// Ends a started stream once its queued bytes are sent.
    public func finish(stream id: Int32) {
        guard let stream = streams[id], !stream.ended else { return }
        stream.ended = true
        resume(id, stream)
    }

    /// Abandons a stream (RST_STREAM CANCEL): its request will not be answered.
    public func reset(stream id: Int32) {
        guard streams[id] != nil else { return }
        nghttp2_submit_rst_stream(session, UInt8(NGHTTP2_FLAG_NONE.rawValue), id, NGHTTP2_CANCEL.rawValue)
    }

    /// Answer bytes of `stream` that nghttp2 has not sent yet (the peer's window is shut, or not yet asked).
    public func queuedBytes(stream id: Int32) -> Int {
        streams[id]?.queued ?? 0
    }

    /// GOAWAY (NO_ERROR): the server is going away; streams in progress end with the connection.
    public func goAway() {
        nghttp2_session_terminate_session(session, NGHTTP2_NO_ERROR.rawValue)
    }

    // MARK: - Answers

    /// Hop-by-hop fields mean nothing in HTTP/2 and make a peer treat the answer as malformed (RFC 9113 §8.2.2).
    private static let connectionSpecific: Set<String> = [
        "connection", "keep-alive", "proxy-connection", "transfer-encoding", "upgrade",
    ]

    private func submit(stream id: Int32, status: Int, headers: HTTPHeaders, withData: Bool) {
        var fields: [(name: [UInt8], value: [UInt8])] = [(Array(":status".utf8), Array(String(status).utf8))]
        for field in headers {
            // HTTP/2 field names are lower case (RFC 9113 §8.2.1).
            let name = field.name.lowercased()
            if HTTP2Session.connectionSpecific.contains(name) { continue }
            fields.append((Array(name.utf8), Array(field.value.utf8)))
        }
        var storage = fields.flatMap { $0.name + $0.value }
        storage.withUnsafeMutableBufferPointer { buffer in
            guard let base = buffer.baseAddress else { return }
            var offset = 0
            var nva: [nghttp2_nv] = []
            for field in fields {
                let name = base + offset
                let value = name + field.name.count
                offset += field.name.count + field.value.count
                nva.append(
                    nghttp2_nv(
                        name: name, value: value, namelen: field.name.count, valuelen: field.value.count,
                        flags: UInt8(NGHTTP2_NV_FLAG_NONE.rawValue)))
            }
            // nghttp2 copies the fields and the provider before it returns.
            if withData {
                var provider = nghttp2_data_provider()
                provider.read_callback = HTTP2Session.readCallback
                _ = nghttp2_submit_response(session, id, nva, nva.count, &provider)
            } else {
                _ = nghttp2_submit_response(session, id, nva, nva.count, nil)
            }
        }
    }

    private func resume(_ id: Int32, _ stream: Stream) {
        guard stream.deferred else { return }
        stream.deferred = false
        nghttp2_session_resume_data(session, id)
    }

    /// nghttp2 asks for up to `length` bytes of a stream's body.
    fileprivate func read(
        stream id: Int32, into buffer: UnsafeMutablePointer<UInt8>, length: Int, flags: UnsafeMutablePointer<UInt32>
    ) -> Int {
        guard let stream = streams[id] else { return Int(NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE.rawValue) }
        let count = min(length, stream.queued)
        if count > 0 {
            stream.outgoing.withUnsafeBufferPointer { bytes in
                guard let start = bytes.baseAddress else { return }
                buffer.update(from: start + stream.sent, count: count)
            }
            stream.sent += count
        }
        if stream.queued == 0 {
            if stream.ended {
                flags.pointee |= NGHTTP2_DATA_FLAG_EOF.rawValue
            } else if count == 0 {
                stream.deferred = true
                return Int(NGHTTP2_ERR_DEFERRED.rawValue)
            }
            stream.outgoing.removeAll(keepingCapacity: stream.outgoing.capacity <= 64 * 1024)
            stream.sent = 0
            if stream.announced { drained.insert(id) }
        }
        return count
    }

    // MARK: - Requests

    fileprivate func beginHeaders(stream id: Int32) {
        streams[id] = Stream()
    }

    fileprivate func header(stream id: Int32, name: String, value: String) {
        guard let stream = streams[id], stream.refusal == nil else { return }
        stream.headerBytes += name.utf8.count + value.utf8.count + 4
        if stream.headerBytes > limits.maxHeaderBytes || stream.headers.fields.count >= limits.maxHeaderCount {
            stream.refusal = .requestHeaderFieldsTooLarge
            return
        }
        switch name {
        case ":method": stream.method = value
        case ":path": stream.path = value
        case ":authority": stream.authority = value
        case ":scheme": break
        default: stream.headers.append(name, value)
        }
    }

    fileprivate func data(stream id: Int32, _ bytes: UnsafeBufferPointer<UInt8>) {
        guard let stream = streams[id], stream.refusal == nil else { return }
        if stream.body.count + bytes.count > limits.maxBodyBytes {
            stream.refusal = .contentTooLarge
            stream.body = []
            return
        }
        stream.body.append(contentsOf: bytes)
    }

    /// The peer ended its side of the stream: the request is whole.
    fileprivate func requestComplete(stream id: Int32) {
        guard let stream = streams[id], !stream.announced else { return }
        guard let method = stream.method, let path = stream.path, path.hasPrefix("/") else {
            // nghttp2 already refuses most malformed requests; this is what reaches us without them.
            respond(stream: id, .error(.badRequest, "an HTTP/2 request needs :method and an origin-form :path"))
            return
        }
        if let refusal = stream.refusal {
            respond(stream: id, .error(refusal, "the request is larger than this listener allows"))
            return
        }
        var headers = stream.headers
        // The gateway's code reads Host, as an HTTP/1.1 request has it; :authority carries it in HTTP/2.
        if let authority = stream.authority, !headers.contains("Host") { headers.append("Host", authority) }
        stream.announced = true
        events.append(
            .request(
                stream: id,
                HTTPRequest(
                    method: method, target: path, version: .http11, headers: headers,
                    body: stream.body)))
        stream.body = []
    }

    fileprivate func closed(stream id: Int32) {
        guard let stream = streams.removeValue(forKey: id) else { return }
        drained.remove(id)
        if stream.announced { events.append(.closed(stream: id)) }
    }

    // MARK: - nghttp2 callbacks

    private static func owner(_ userData: UnsafeMutableRawPointer?) -> HTTP2Session? {
        guard let userData else { return nil }
        return Unmanaged<HTTP2Session>.fromOpaque(userData).takeUnretainedValue()
    }

    private static func text(_ code: Int32) -> String {
        String(cString: nghttp2_strerror(code))
    }

    private static let readCallback: nghttp2_data_source_read_callback = {
        _, streamID, buffer, length, flags, _, userData in
        guard let owner = HTTP2Session.owner(userData), let buffer, let flags else {
            return Int(NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE.rawValue)
        }
        return owner.read(stream: streamID, into: buffer, length: length, flags: flags)
    }

    private static func install(_ callbacks: OpaquePointer) {
        nghttp2_session_callbacks_set_on_begin_headers_callback(callbacks) { _, frame, userData in
            guard let frame, let owner = HTTP2Session.owner(userData) else { return 0 }
            if UInt32(frame.pointee.hd.type) == NGHTTP2_HEADERS.rawValue,
                frame.pointee.headers.cat == NGHTTP2_HCAT_REQUEST
            {
                owner.beginHeaders(stream: frame.pointee.hd.stream_id)
            }
            return 0
        }
        nghttp2_session_callbacks_set_on_header_callback(callbacks) {
            _, frame, name, nameLength, value, valueLength, _, userData in
            guard let frame, let name, let value, let owner = HTTP2Session.owner(userData) else { return 0 }
            // nghttp2 has checked the field names and values against RFC 9113 §8.2.1 already.
            owner.header(
                stream: frame.pointee.hd.stream_id,
                name: String(decoding: UnsafeBufferPointer(start: name, count: nameLength), as: UTF8.self),
                value: String(decoding: UnsafeBufferPointer(start: value, count: valueLength), as: UTF8.self))
            return 0
        }
        nghttp2_session_callbacks_set_on_data_chunk_recv_callback(callbacks) {
            _, _, streamID, data, length, userData in
            guard let data, let owner = HTTP2Session.owner(userData) else { return 0 }
            owner.data(stream: streamID, UnsafeBufferPointer(start: data, count: length))
            return 0
        }
        nghttp2_session_callbacks_set_on_frame_recv_callback(callbacks) { _, frame, userData in
            guard let frame, let owner = HTTP2Session.owner(userData) else { return 0 }
            let type = UInt32(frame.pointee.hd.type)
            let endsStream = frame.pointee.hd.flags & UInt8(NGHTTP2_FLAG_END_STREAM.rawValue) != 0
            if endsStream && (type == NGHTTP2_HEADERS.rawValue || type == NGHTTP2_DATA.rawValue) {
                owner.requestComplete(stream: frame.pointee.hd.stream_id)
            }
            return 0
        }
        // Most protocol errors do not make mem_recv fail: nghttp2 answers them with a GOAWAY and stops reading.
        nghttp2_session_callbacks_set_on_frame_send_callback(callbacks) { _, frame, userData in
            guard let frame, let owner = HTTP2Session.owner(userData),
                UInt32(frame.pointee.hd.type) == NGHTTP2_GOAWAY.rawValue, frame.pointee.goaway.error_code != 0
            else { return 0 }
            owner.protocolError =
                owner.protocolError
                ?? String(cString: nghttp2_http2_strerror(frame.pointee.goaway.error_code))
            return 0
        }
        nghttp2_session_callbacks_set_on_invalid_frame_recv_callback(callbacks) { _, _, code, userData in
            guard let owner = HTTP2Session.owner(userData), owner.protocolError == nil else { return 0 }
            owner.protocolError = HTTP2Session.text(code)
            return 0
        }
        nghttp2_session_callbacks_set_on_stream_close_callback(callbacks) { _, streamID, _, userData in
            HTTP2Session.owner(userData)?.closed(stream: streamID)
            return 0
        }
    }
}
