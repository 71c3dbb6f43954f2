// An HTTP/2 client for tests: nghttp2's own client session, in memory, so the server side is held against an
// independent implementation of the framing rather than against bytes written by hand.
// (A target of its own, so the gateway's session tests and the server's loopback tests share one client.)
import CNGHTTP2

public final class HTTP2TestClient {
    public struct Response {
        public var headers: [(name: String, value: String)] = []
        public var body: [UInt8] = []
        /// Closed, with the RST_STREAM or GOAWAY code (0 for a normal end).
        public var closedWith: UInt32?

        public var status: Int? { self[":status"].flatMap { Int($0) } }
        public var text: String { String(decoding: body, as: UTF8.self) }
        public subscript(name: String) -> String? { headers.first { $0.name == name }?.value }
    }

    private var session: OpaquePointer?
    public private(set) var responses: [Int32: Response] = [:]
    private var uploads: [Int32: [UInt8]] = [:]
    public private(set) var goAwayReceived = false

    /// `window` is the initial stream window the client advertises; `autoWindowUpdate` false models a reader that
    /// takes nothing until `consume` is called.
    public init(window: UInt32 = 65_535, autoWindowUpdate: Bool = true) {
        var callbacks: OpaquePointer?
        nghttp2_session_callbacks_new(&callbacks)
        defer { nghttp2_session_callbacks_del(callbacks) }
        nghttp2_session_callbacks_set_on_header_callback(callbacks) {
            _, frame, name, nameLength, value, valueLength, _, userData in
            guard let frame, let name, let value else { return 0 }
            let client = HTTP2TestClient.owner(userData)
            client.responses[frame.pointee.hd.stream_id, default: Response()].headers.append(
                (
                    String(decoding: UnsafeBufferPointer(start: name, count: nameLength), as: UTF8.self),
                    String(decoding: UnsafeBufferPointer(start: value, count: valueLength), as: UTF8.self)
                ))
            return 0
        }
        nghttp2_session_callbacks_set_on_data_chunk_recv_callback(callbacks) { _, _, streamID, data, length, userData in
            guard let data else { return 0 }
            HTTP2TestClient.owner(userData).responses[streamID, default: Response()].body.append(
                contentsOf: UnsafeBufferPointer(start: data, count: length))
            return 0
        }
        nghttp2_session_callbacks_set_on_stream_close_callback(callbacks) { _, streamID, code, userData in
            HTTP2TestClient.owner(userData).responses[streamID, default: Response()].closedWith = code
            return 0
        }
        nghttp2_session_callbacks_set_on_frame_recv_callback(callbacks) { _, frame, userData in
            if let frame, UInt32(frame.pointee.hd.type) == NGHTTP2_GOAWAY.rawValue {
                HTTP2TestClient.owner(userData).goAwayReceived = true
            }
            return 0
        }
        var option: OpaquePointer?
        nghttp2_option_new(&option)
        defer { nghttp2_option_del(option) }
        if !autoWindowUpdate { nghttp2_option_set_no_auto_window_update(option, 1) }
        nghttp2_session_client_new2(&session, callbacks, Unmanaged.passUnretained(self).toOpaque(), option)
        var settings = [
            nghttp2_settings_entry(settings_id: Int32(NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE.rawValue), value: window)
        ]
        nghttp2_submit_settings(session, UInt8(NGHTTP2_FLAG_NONE.rawValue), &settings, settings.count)
    }

    deinit { nghttp2_session_del(session) }

    private static func owner(_ userData: UnsafeMutableRawPointer?) -> HTTP2TestClient {
        guard let userData else { fatalError("BUG: the client session is made with its owner") }
        return Unmanaged<HTTP2TestClient>.fromOpaque(userData).takeUnretainedValue()
    }

    /// Opens a stream; returns its id.
    @discardableResult
    public func request(
        _ method: String, _ path: String, headers: [(String, String)] = [], body: [UInt8]? = nil
    ) -> Int32 {
        let fields =
            [(":method", method), (":path", path), (":scheme", "https"), (":authority", "localhost")]
            + headers
        var storage = fields.flatMap { Array($0.0.utf8) + Array($0.1.utf8) }
        return storage.withUnsafeMutableBufferPointer { buffer -> Int32 in
            guard let base = buffer.baseAddress else { return -1 }
            var offset = 0
            let nva = fields.map { field -> nghttp2_nv in
                let name = base + offset
                let nameLength = field.0.utf8.count
                let valueLength = field.1.utf8.count
                offset += nameLength + valueLength
                return nghttp2_nv(
                    name: name, value: name + nameLength, namelen: nameLength, valuelen: valueLength,
                    flags: UInt8(NGHTTP2_NV_FLAG_NONE.rawValue))
            }
            guard let body else { return nghttp2_submit_request(session, nil, nva, nva.count, nil, nil) }
            var provider = nghttp2_data_provider()
            provider.read_callback = { _, streamID, buffer, length, flags, _, userData in
                let client = HTTP2TestClient.owner(userData)
                let pending = client.uploads[streamID] ?? []
                let count = min(length, pending.count)
                pending.withUnsafeBufferPointer { bytes in
                    if let start = bytes.baseAddress, let buffer { buffer.update(from: start, count: count) }
                }
                client.uploads[streamID] = Array(pending.dropFirst(count))
                if count == pending.count { flags?.pointee |= NGHTTP2_DATA_FLAG_EOF.rawValue }
                return count
            }
            let id = nghttp2_submit_request(session, nil, nva, nva.count, &provider, nil)
            uploads[id] = body
            return id
        }
    }

    public func reset(_ stream: Int32) {
        nghttp2_submit_rst_stream(session, UInt8(NGHTTP2_FLAG_NONE.rawValue), stream, NGHTTP2_CANCEL.rawValue)
    }

    /// Tells the server the client has taken `count` bytes of `stream`, which opens its window again.
    public func consume(_ stream: Int32, _ count: Int) {
        nghttp2_session_consume(session, stream, count)
    }

    public func output() -> [UInt8] {
        var out: [UInt8] = []
        while true {
            var chunk: UnsafePointer<UInt8>?
            let count = nghttp2_session_mem_send(session, &chunk)
            guard count > 0, let chunk else { return out }
            out.append(contentsOf: UnsafeBufferPointer(start: chunk, count: count))
        }
    }

    /// Returns nghttp2's verdict on the server's bytes: 0 when they were all valid.
    @discardableResult
    public func input(_ bytes: [UInt8]) -> Int {
        bytes.withUnsafeBufferPointer { buffer in
            guard let base = buffer.baseAddress else { return 0 }
            let read = nghttp2_session_mem_recv(session, base, buffer.count)
            return read < 0 ? read : 0
        }
    }
}
