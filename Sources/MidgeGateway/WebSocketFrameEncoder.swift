// Server WebSocket frames (RFC 6455 §5.2-§5.7, RFC 7692 §7.2.1): unmasked, binary for MQTT, control frames.

/// Writes the frames the server sends. Server frames are never masked (§5.1).
///
/// One call to `encodeBinaryMessage` makes one frame: give it every MQTT packet queued for the connection in one
/// buffer, and a burst of deliveries costs one frame header and, with deflate, one compression run.
public final class WebSocketFrameEncoder {
    private let deflate: PerMessageDeflateParameters?
    private var deflater: Deflater?
    private var compressed: [UInt8] = []

    public init(deflate: PerMessageDeflateParameters? = nil) {
        self.deflate = deflate
    }

    public func encodeBinaryMessage(_ payload: [UInt8], into out: inout [UInt8]) {
        payload.withUnsafeBytes { encodeBinaryMessage($0, into: &out) }
    }

    /// Appends `payload` as one binary frame, compressed when deflate was agreed and the payload is large enough.
    public func encodeBinaryMessage(_ payload: UnsafeRawBufferPointer, into out: inout [UInt8]) {
        if let deflate, payload.count >= deflate.minimumMessageSize {
            if deflater == nil { deflater = Deflater(parameters: deflate) }
            // Without a deflater (zlib out of memory) the message goes uncompressed, which §6 allows.
            if let deflater {
                compressed.removeAll(keepingCapacity: true)
                deflater.compress(payload, into: &compressed)
                WebSocketFrameEncoder.encodeHeader(
                    opcode: .binary, compressed: true, payloadLength: compressed.count, into: &out)
                out.append(contentsOf: compressed)
                return
            }
        }
        WebSocketFrameEncoder.encodeHeader(opcode: .binary, payloadLength: payload.count, into: &out)
        out.append(contentsOf: payload)
    }

    /// A frame header with no masking key: 2, 4 or 10 bytes, the length in the fewest bytes (§5.2). Lets a caller
    /// write a header and an uncompressed payload it already holds with one gathered write.
    public static func encodeHeader(
        opcode: WebSocketOpcode, fin: Bool = true, compressed: Bool = false, payloadLength: Int,
        into out: inout [UInt8]
    ) {
        precondition(payloadLength >= 0, "a length is not negative")
        out.append((fin ? 0x80 : 0) | (compressed ? 0x40 : 0) | opcode.rawValue)
        if payloadLength < 126 {
            out.append(UInt8(payloadLength))
        } else if payloadLength <= 0xFFFF {
            out.append(126)
            out.append(UInt8(payloadLength >> 8))
            out.append(UInt8(payloadLength & 0xFF))
        } else {
            out.append(127)
            for shift in stride(from: 56, through: 0, by: -8) {
                out.append(UInt8(truncatingIfNeeded: payloadLength >> shift))
            }
        }
    }

    /// A Ping or Pong (§5.5.2-§5.5.3).
    public static func encodeControl(_ opcode: WebSocketOpcode, payload: [UInt8] = [], into out: inout [UInt8]) {
        precondition(opcode == .ping || opcode == .pong, "Close frames go through encodeClose")
        precondition(payload.count <= 125, "control frames carry at most 125 bytes")
        encodeHeader(opcode: opcode, payloadLength: payload.count, into: &out)
        out.append(contentsOf: payload)
    }

    /// A Close frame (§5.5.1): the code, then as much of the reason as fits in 123 bytes without cutting a
    /// character. Without a code the frame is empty; codes that are for reports only are not sent.
    public static func encodeClose(code: WebSocketCloseCode?, reason: String = "", into out: inout [UInt8]) {
        guard let code, code.isValidOnWire else {
            encodeHeader(opcode: .close, payloadLength: 0, into: &out)
            return
        }
        var reasonBytes: [UInt8] = []
        for scalar in reason.unicodeScalars {
            let encoded = Array(String(scalar).utf8)
            guard reasonBytes.count + encoded.count <= 123 else { break }
            reasonBytes.append(contentsOf: encoded)
        }
        encodeHeader(opcode: .close, payloadLength: 2 + reasonBytes.count, into: &out)
        out.append(UInt8(code.rawValue >> 8))
        out.append(UInt8(code.rawValue & 0xFF))
        out.append(contentsOf: reasonBytes)
    }
}
