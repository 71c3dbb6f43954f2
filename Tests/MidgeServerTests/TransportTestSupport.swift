// Test clients for the transports: byte channels over TCP, TLS (OpenSSL on the socket) and WebSocket (RFC 6455
// client framing), and an MQTT client over any of them. Every wait is bounded by the socket's receive timeout.
import COpenSSL
import Foundation
import Glibc
import MQTTCodec

/// The TLS test certificates (made by the TLS module's fixture script), next to the TLS tests.
enum TLSFixture {
    static let directory = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("MidgeTLSTests/Fixtures").path

    static func path(_ name: String) -> String { directory + "/" + name }

    /// `listener` lines' TLS settings for the fixture server certificate.
    static func serverSettings(requireCertificate: Bool = false, identity: Bool = false) -> String {
        var text = "cafile \(path("ca.crt"))\ncertfile \(path("server.crt"))\nkeyfile \(path("server.key"))\n"
        if requireCertificate { text += "require_certificate true\n" }
        if identity { text += "use_identity_as_username true\n" }
        return text
    }
}

/// Bytes in and out of a connection, whatever carries them.
protocol ByteChannel: AnyObject {
    func write(_ bytes: [UInt8]) throws
    /// Some bytes, or nil at the end of the stream. Throws on timeout.
    func read() throws -> [UInt8]?
    func close()
}

/// A blocking loopback TCP socket whose reads time out.
final class SocketChannel: ByteChannel {
    let fd: Int32
    private var isClosed = false

    init(port: UInt16, timeoutSeconds: Int = 10) throws {
        fd = try openLoopbackSocket(port: port, timeoutSeconds: timeoutSeconds)
    }

    deinit { close() }

    func close() {
        guard !isClosed else { return }
        isClosed = true
        Glibc.close(fd)
    }

    func write(_ bytes: [UInt8]) throws {
        var offset = 0
        while offset < bytes.count {
            let written = bytes.withUnsafeBytes { raw in
                Glibc.write(fd, raw.baseAddress.map { $0 + offset }, raw.count - offset)
            }
            if written > 0 {
                offset += written
            } else if errno != EINTR {
                throw TestError("write failed: \(String(cString: strerror(errno)))")
            }
        }
    }

    func read() throws -> [UInt8]? {
        var chunk = [UInt8](repeating: 0, count: 64 * 1024)
        for _ in 0..<100 {
            let count = chunk.withUnsafeMutableBytes { Glibc.read(fd, $0.baseAddress, $0.count) }
            if count > 0 { return Array(chunk[0..<count]) }
            if count == 0 { return nil }
            switch errno {
            case EINTR: continue
            case ECONNRESET: return nil
            case EAGAIN: throw TestError("timed out waiting for the broker")
            default: throw TestError("read failed: \(String(cString: strerror(errno)))")
            }
        }
        throw TestError("read interrupted too often")
    }
}

/// What `mosquitto_pub --psk-identity ID --psk HEX` sends; the client callback finds it through the SSL's app data.
final class PSKClientCredential {
    let identity: String
    let key: [UInt8]

    init(identity: String, key: [UInt8]) {
        self.identity = identity
        self.key = key
    }

    static let callback: SSL_psk_client_cb_func = { ssl, _, identity, maxIdentity, key, maxKey in
        guard let ssl, let identity, let key, let raw = SSL_get_ex_data(ssl, 0) else { return 0 }
        let credential = Unmanaged<PSKClientCredential>.fromOpaque(raw).takeUnretainedValue()
        let name = Array(credential.identity.utf8)
        guard name.count < Int(maxIdentity), credential.key.count <= Int(maxKey) else { return 0 }
        for (index, byte) in name.enumerated() { identity[index] = CChar(bitPattern: byte) }
        identity[name.count] = 0
        for (index, byte) in credential.key.enumerated() { key[index] = byte }
        return UInt32(credential.key.count)
    }
}

/// A TLS client on a blocking socket, verifying the broker against the fixture CA and the name "localhost", as
/// mosquitto_pub --cafile does.
final class TLSChannel: ByteChannel {
    let socket: SocketChannel
    private let context: OpaquePointer
    private let ssl: OpaquePointer

    /// Kept alive here: the PSK callback finds it through the SSL's app data, unretained.
    private let psk: PSKClientCredential?

    init(
        port: UInt16, certificate: String? = nil, key: String? = nil, psk: PSKClientCredential? = nil,
        applicationProtocols: [String] = []
    ) throws {
        socket = try SocketChannel(port: port)
        guard let context = SSL_CTX_new(TLS_client_method()) else { throw TestError("SSL_CTX_new") }
        self.context = context
        self.psk = psk
        guard SSL_CTX_load_verify_file(context, TLSFixture.path("ca.crt")) == 1 else { throw TestError("CA file") }
        SSL_CTX_set_verify(context, SSL_VERIFY_PEER, nil)
        if psk != nil { SSL_CTX_set_psk_client_callback(context, PSKClientCredential.callback) }
        if let certificate, let key {
            guard SSL_CTX_use_certificate_chain_file(context, certificate) == 1,
                SSL_CTX_use_PrivateKey_file(context, key, SSL_FILETYPE_PEM) == 1
            else { throw TestError("client certificate \(certificate)") }
        }
        guard let ssl = SSL_new(context) else { throw TestError("SSL_new") }
        self.ssl = ssl
        if let psk { _ = SSL_set_ex_data(ssl, 0, Unmanaged.passUnretained(psk).toOpaque()) }
        _ = midge_SSL_set_tlsext_host_name(ssl, "localhost")
        _ = SSL_set1_host(ssl, "localhost")
        if !applicationProtocols.isEmpty {
            let wire = applicationProtocols.flatMap { [UInt8($0.utf8.count)] + Array($0.utf8) }
            _ = SSL_set_alpn_protos(ssl, wire, UInt32(wire.count))
        }
        SSL_set_fd(ssl, socket.fd)
        guard SSL_connect(ssl) == 1 else {
            throw TestError("TLS handshake failed: \(Self.errors())")
        }
    }

    deinit {
        SSL_free(ssl)
        SSL_CTX_free(context)
    }

    static func errors() -> String {
        var parts: [String] = []
        for _ in 0..<16 {
            let code = ERR_get_error()
            if code == 0 { break }
            var text = [CChar](repeating: 0, count: 256)
            ERR_error_string_n(code, &text, text.count)
            parts.append(String(cString: text))
        }
        return parts.joined(separator: "; ")
    }

    var protocolVersion: String { String(cString: SSL_get_version(ssl)) }

    var selectedApplicationProtocol: String? {
        var data: UnsafePointer<UInt8>?
        var length: UInt32 = 0
        SSL_get0_alpn_selected(ssl, &data, &length)
        guard let data, length > 0 else { return nil }
        return String(decoding: UnsafeBufferPointer(start: data, count: Int(length)), as: UTF8.self)
    }

    func write(_ bytes: [UInt8]) throws {
        guard !bytes.isEmpty else { return }
        let written = bytes.withUnsafeBytes { SSL_write(ssl, $0.baseAddress, Int32($0.count)) }
        guard written == bytes.count else { throw TestError("SSL_write failed: \(Self.errors())") }
    }

    func read() throws -> [UInt8]? {
        var chunk = [UInt8](repeating: 0, count: 64 * 1024)
        let count = chunk.withUnsafeMutableBytes { SSL_read(ssl, $0.baseAddress, Int32($0.count)) }
        if count > 0 { return Array(chunk[0..<Int(count)]) }
        let error = SSL_get_error(ssl, count)
        if error == SSL_ERROR_ZERO_RETURN { return nil }
        if error == SSL_ERROR_SYSCALL && errno == EAGAIN { throw TestError("timed out waiting for the broker") }
        // An alert or a reset: the broker ended the connection.
        ERR_clear_error()
        return nil
    }

    func close() {
        _ = SSL_shutdown(ssl)
        socket.close()
    }
}

/// A WebSocket client (RFC 6455 §5: masked frames from the client) over TCP or TLS.
final class WebSocketChannel: ByteChannel {
    let inner: any ByteChannel
    private var pending: [UInt8] = []
    /// The close code of the broker's Close frame, once one arrived.
    private(set) var closeCode: UInt16?
    /// Whether a Close frame came without a code.
    private(set) var closedWithoutCode = false
    private(set) var pongs: [[UInt8]] = []
    /// The broker's answer to the upgrade request.
    private(set) var response = ""

    init(
        over inner: any ByteChannel, subprotocol: String? = "mqtt", path: String = "/mqtt", extensions: String? = nil
    ) throws {
        self.inner = inner
        var request = "GET \(path) HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        request += "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"
        if let subprotocol { request += "Sec-WebSocket-Protocol: \(subprotocol)\r\n" }
        if let extensions { request += "Sec-WebSocket-Extensions: \(extensions)\r\n" }
        try inner.write(Array((request + "\r\n").utf8))
        let end: [UInt8] = Array("\r\n\r\n".utf8)
        for _ in 0..<100 {
            if let range = pending.firstRange(of: end) {
                response = String(decoding: pending[..<range.upperBound], as: UTF8.self)
                pending.removeFirst(range.upperBound)
                return
            }
            guard let more = try inner.read() else { break }
            pending += more
        }
        response = String(decoding: pending, as: UTF8.self)
        pending = []
    }

    var statusCode: Int? { response.split(separator: " ").dropFirst().first.flatMap { Int($0) } }

    func write(_ bytes: [UInt8]) throws { try sendFrame(opcode: 0x2, bytes) }

    func sendFrame(opcode: UInt8, _ payload: [UInt8], fin: Bool = true) throws {
        var frame: [UInt8] = [(fin ? 0x80 : 0) | opcode]
        if payload.count < 126 {
            frame.append(0x80 | UInt8(payload.count))
        } else if payload.count <= 0xFFFF {
            frame.append(0x80 | 126)
            frame += [UInt8(payload.count >> 8), UInt8(payload.count & 0xFF)]
        } else {
            frame.append(0x80 | 127)
            for shift in stride(from: 56, through: 0, by: -8) { frame.append(UInt8((payload.count >> shift) & 0xFF)) }
        }
        let mask: [UInt8] = [0x37, 0xFA, 0x21, 0x3D]
        frame += mask
        frame += payload.enumerated().map { $0.element ^ mask[$0.offset % 4] }
        try inner.write(frame)
    }

    /// The payload of the next data frame(s); pings are answered by the broker's side only, pongs are kept, and a
    /// Close frame ends the stream (nil).
    func read() throws -> [UInt8]? {
        for _ in 0..<10_000 {
            if let (opcode, payload, length) = Self.frame(in: pending) {
                pending.removeFirst(length)
                switch opcode {
                case 0x0, 0x1, 0x2:
                    return payload
                case 0x8:
                    if payload.count >= 2 {
                        closeCode = UInt16(payload[0]) << 8 | UInt16(payload[1])
                    } else {
                        closedWithoutCode = true
                    }
                    return nil
                case 0xA:
                    pongs.append(payload)
                default:
                    continue
                }
                continue
            }
            guard let more = try inner.read() else { return nil }
            pending += more
        }
        throw TestError("too many frames")
    }

    /// Server frames are never masked (RFC 6455 §5.1).
    private static func frame(in bytes: [UInt8]) -> (UInt8, [UInt8], Int)? {
        guard bytes.count >= 2 else { return nil }
        var length = Int(bytes[1] & 0x7F)
        var offset = 2
        if length == 126 {
            guard bytes.count >= 4 else { return nil }
            length = Int(bytes[2]) << 8 | Int(bytes[3])
            offset = 4
        } else if length == 127 {
            guard bytes.count >= 10 else { return nil }
            length = bytes[2..<10].reduce(0) { $0 << 8 | Int($1) }
            offset = 10
        }
        guard bytes.count >= offset + length else { return nil }
        return (bytes[0] & 0x0F, Array(bytes[offset..<(offset + length)]), offset + length)
    }

    func close() { inner.close() }
}

/// An MQTT client over any byte channel.
final class ChannelClient: PacketClient {
    let channel: any ByteChannel
    private var buffer: [UInt8] = []
    private let decoder = FrameDecoder()

    init(_ channel: any ByteChannel) {
        self.channel = channel
    }

    func send(_ packet: Packet) throws {
        var bytes: [UInt8] = []
        packet.encode(into: &bytes)
        try channel.write(bytes)
    }

    func receive() throws -> Packet {
        for _ in 0..<10_000 {
            let decoded = try buffer.withUnsafeBytes { try decoder.decode($0) }
            if let (packet, consumed) = decoded {
                buffer.removeFirst(consumed)
                return packet
            }
            guard let more = try channel.read() else { throw TestError("connection closed while waiting for a packet") }
            buffer += more
        }
        throw TestError("no packet")
    }

    /// Reads until the broker ends the stream; throws if it does not in time.
    func waitUntilClosed() throws {
        for _ in 0..<10_000 {
            guard try channel.read() != nil else { return }
        }
        throw TestError("still open")
    }

    @discardableResult
    func connect(
        _ clientID: String, username: String? = nil, password: String? = nil, will: Will? = nil
    ) throws -> ConnAck {
        try send(
            .connect(
                Connect(
                    cleanSession: true, keepAlive: 60, clientID: clientID, will: will, username: username,
                    password: password.map { Array($0.utf8) })))
        guard case .connack(let connack) = try receive() else { throw TestError("expected CONNACK") }
        return connack
    }

    func receivePublish() throws -> Publish {
        guard case .publish(let publish) = try receive() else { throw TestError("expected PUBLISH") }
        return publish
    }

    func ping() throws {
        try send(.pingreq)
        guard case .pingresp = try receive() else { throw TestError("expected PINGRESP") }
    }
}
