// RFC 6455 for tests: client frames (masked, §5.3) and server frames parsed back (§5.2), and a WebSocket client over
// any byte channel, TCP or TLS.

/// The masking key of the RFC 6455 §5.7 examples.
public let rfcMask: [UInt8] = [0x37, 0xFA, 0x21, 0x3D]

/// A client frame: masked with `mask` unless `masked` is false. `flags` adds RSV bits (0x40 = RSV1).
public func clientFrame(
    _ opcode: UInt8, _ payload: [UInt8], fin: Bool = true, flags: UInt8 = 0, masked: Bool = true,
    mask: [UInt8] = rfcMask
) -> [UInt8] {
    var frame: [UInt8] = [(fin ? 0x80 : 0) | flags | opcode]
    let maskBit: UInt8 = masked ? 0x80 : 0
    if payload.count < 126 {
        frame.append(maskBit | UInt8(payload.count))
    } else if payload.count <= 0xFFFF {
        frame += [maskBit | 126, UInt8(payload.count >> 8), UInt8(payload.count & 0xFF)]
    } else {
        frame.append(maskBit | 127)
        frame += (0..<8).reversed().map { UInt8(truncatingIfNeeded: payload.count >> ($0 * 8)) }
    }
    guard masked else { return frame + payload }
    frame += mask
    frame += payload.enumerated().map { $0.element ^ mask[$0.offset % 4] }
    return frame
}

/// Server frames parsed back off a byte stream.
public enum WebSocketFrames {
    /// One frame parsed off the front of a byte stream.
    public struct Parsed: Equatable {
        public var fin: Bool
        public var rsv1: Bool
        /// The mask bit, which a server must never set (RFC 6455 §5.1).
        public var masked: Bool
        public var opcode: UInt8
        /// As sent: a masked frame's payload is not unmasked here.
        public var payload: [UInt8]
        /// Header and payload: the bytes this frame took.
        public var length: Int
    }

    /// The first whole frame of `bytes`, nil while it is incomplete.
    public static func server<Bytes: RandomAccessCollection>(in bytes: Bytes) -> Parsed?
    where Bytes.Element == UInt8, Bytes.Index == Int {
        let start = bytes.startIndex
        guard bytes.count >= 2 else { return nil }
        var length = Int(bytes[start + 1] & 0x7F)
        var offset = 2
        if length == 126 {
            guard bytes.count >= 4 else { return nil }
            length = Int(bytes[start + 2]) << 8 | Int(bytes[start + 3])
            offset = 4
        } else if length == 127 {
            guard bytes.count >= 10 else { return nil }
            length = bytes[(start + 2)..<(start + 10)].reduce(0) { $0 << 8 | Int($1) }
            offset = 10
        }
        let masked = bytes[start + 1] & 0x80 != 0
        if masked { offset += 4 }
        guard bytes.count >= offset + length else { return nil }
        return Parsed(
            fin: bytes[start] & 0x80 != 0, rsv1: bytes[start] & 0x40 != 0, masked: masked, opcode: bytes[start] & 0x0F,
            payload: Array(bytes[(start + offset)..<(start + offset + length)]), length: offset + length)
    }
}

/// A WebSocket client (RFC 6455 §5: masked frames from the client) over TCP or TLS.
public final class WebSocketChannel: ByteChannel {
    public let inner: any ByteChannel
    private var pending: [UInt8] = []
    /// The close code of the broker's Close frame, once one arrived.
    public private(set) var closeCode: UInt16?
    /// Whether a Close frame came without a code.
    public private(set) var closedWithoutCode = false
    public private(set) var pongs: [[UInt8]] = []
    /// The broker's answer to the upgrade request.
    public private(set) var response = ""

    public init(
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

    public var statusCode: Int? { response.split(separator: " ").dropFirst().first.flatMap { Int($0) } }

    public func write(_ bytes: [UInt8]) throws { try sendFrame(opcode: 0x2, bytes) }

    public func sendFrame(opcode: UInt8, _ payload: [UInt8], fin: Bool = true) throws {
        try inner.write(clientFrame(opcode, payload, fin: fin))
    }

    /// The payload of the next data frame(s); pings are answered by the broker's side only, pongs are kept, and a
    /// Close frame ends the stream (nil).
    public func read() throws -> [UInt8]? {
        for _ in 0..<10_000 {
            if let frame = WebSocketFrames.server(in: pending) {
                pending.removeFirst(frame.length)
                let payload = frame.payload
                switch frame.opcode {
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

    public func close() { inner.close() }
}
