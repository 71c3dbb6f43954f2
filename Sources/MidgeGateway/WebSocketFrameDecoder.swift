// Incremental decoding of client WebSocket frames (RFC 6455 §5, RFC 7692 §6) into the MQTT byte stream (MQTT §6).

/// Sizes a client may send. MQTT data is streamed through as it arrives, so these bound policy, not buffering:
/// only a control frame (≤ 125 bytes) and a frame header (≤ 14 bytes) are ever held.
public struct WebSocketLimits: Sendable, Equatable {
    /// The largest frame payload; larger fails the connection with 1009.
    public var maxFramePayload: Int
    /// The largest message (all fragments, after inflating); larger fails the connection with 1009.
    public var maxMessageSize: Int

    /// The defaults allow the largest MQTT packet (5-byte fixed header + 268,435,455): set both from
    /// `message_size_limit` to refuse sooner.
    public init(maxFramePayload: Int = 268_435_460, maxMessageSize: Int = 268_435_460) {
        self.maxFramePayload = maxFramePayload
        self.maxMessageSize = maxMessageSize
    }
}

/// Turns the bytes a client sends into MQTT bytes plus control events.
///
/// Binary messages may be fragmented and frames may split or pack MQTT packets anyhow [MQTT-6.0.0-2]: the payload
/// of every binary and continuation frame is appended, unmasked (and inflated), to one stream that the caller feeds
/// to the MQTT `FrameDecoder`. Anything that breaks RFC 6455 ends decoding with a `.failure` naming the close code.
public final class WebSocketFrameDecoder {
    public enum Event: Sendable, Equatable {
        /// Answer with a Pong carrying the same bytes (§5.5.2).
        case ping([UInt8])
        case pong([UInt8])
        /// The client's Close frame (§5.5.1); code nil when it carried none. Decoding stops.
        case close(code: WebSocketCloseCode?, reason: String)
        /// The client broke the protocol: fail the connection with this code (§7.1.7). Decoding stops.
        case failure(WebSocketCloseCode, reason: String)
    }

    private struct Frame {
        var opcode: WebSocketOpcode
        var fin: Bool
        var compressed: Bool
        var mask: (UInt8, UInt8, UInt8, UInt8)
        var remaining: Int
        var maskOffset: Int
    }

    private struct Message {
        var compressed: Bool
        /// Bytes so far: wire bytes when uncompressed, inflated bytes when compressed.
        var size: Int
        /// Compressed payload bytes so far: the tail is fed to zlib only after some (RFC 7692 §7.2.3.6).
        var compressedBytes: Int
    }

    public let limits: WebSocketLimits
    private let deflate: PerMessageDeflateParameters?
    private var header: [UInt8] = []
    private var frame: Frame?
    private var message: Message?
    private var controlPayload: [UInt8] = []
    private var compressedScratch: [UInt8] = []
    private var inflater: Inflater?
    /// Set by a Close frame or a failure: later bytes are ignored.
    public private(set) var isFinished = false

    public init(limits: WebSocketLimits = WebSocketLimits(), deflate: PerMessageDeflateParameters? = nil) {
        self.limits = limits
        self.deflate = deflate
        header.reserveCapacity(14)
    }

    public func decode(_ bytes: [UInt8], appendingDataTo data: inout [UInt8]) -> [Event] {
        bytes.withUnsafeBytes { decode($0, appendingDataTo: &data) }
    }

    /// Consumes all of `bytes`; MQTT bytes go to the end of `data`, control events are returned in order.
    public func decode(_ bytes: UnsafeRawBufferPointer, appendingDataTo data: inout [UInt8]) -> [Event] {
        var events: [Event] = []
        var index = 0
        // Each pass consumes at least one byte or finishes a frame whose header was just completed.
        while !isFinished && (index < bytes.count || frame?.remaining == 0) {
            guard var current = frame else {
                index += readHeader(bytes, from: index, events: &events)
                continue
            }
            let count = min(current.remaining, bytes.count - index)
            let chunk = UnsafeRawBufferPointer(rebasing: bytes[index..<(index + count)])
            index += count
            if current.opcode.isControl {
                unmask(chunk, frame: current, appendingTo: &controlPayload)
            } else if current.compressed {
                compressedScratch.removeAll(keepingCapacity: true)
                unmask(chunk, frame: current, appendingTo: &compressedScratch)
                let inflated = compressedScratch.withUnsafeBytes { inflate($0, into: &data, events: &events) }
                guard inflated else { return events }
            } else {
                unmask(chunk, frame: current, appendingTo: &data)
            }
            current.remaining -= count
            current.maskOffset += count
            frame = current
            if current.remaining == 0 { endFrame(current, data: &data, events: &events) }
        }
        return events
    }

    // MARK: - Header

    /// Copies header bytes until the header is whole, validating as early as the bytes allow; returns how many
    /// bytes it took.
    private func readHeader(_ bytes: UnsafeRawBufferPointer, from start: Int, events: inout [Event]) -> Int {
        var index = start
        while index < bytes.count {
            header.append(bytes[index])
            index += 1
            if header.count == 2 {
                if let (code, reason) = checkFirstTwoBytes() {
                    fail(code, reason, events: &events)
                    return index - start
                }
            }
            if header.count >= 2 && header.count == headerLength() { break }
        }
        guard header.count >= 2, header.count == headerLength() else { return index - start }
        let lengthCode = Int(header[1] & 0x7F)
        var length = lengthCode
        var offset = 2
        if lengthCode == 126 {
            length = Int(header[2]) << 8 | Int(header[3])
            offset = 4
        } else if lengthCode == 127 {
            // §5.2: the most significant bit of a 64-bit length must be 0.
            guard header[2] & 0x80 == 0 else {
                fail(.protocolError, "frame length has its most significant bit set", events: &events)
                return index - start
            }
            var wide: UInt64 = 0
            for byte in header[2..<10] { wide = wide << 8 | UInt64(byte) }
            length = wide > UInt64(Int.max) ? Int.max : Int(wide)
            offset = 10
        }
        let opcode = WebSocketOpcode(rawValue: header[0] & 0x0F) ?? .binary
        if length > limits.maxFramePayload {
            fail(
                .messageTooBig, "frame of \(length) bytes exceeds the limit of \(limits.maxFramePayload)",
                events: &events)
            return index - start
        }
        var compressed = false
        if !opcode.isControl {
            if opcode == .binary { message = Message(compressed: header[0] & 0x40 != 0, size: 0, compressedBytes: 0) }
            // checkFirstTwoBytes refused a continuation outside a message.
            guard var current = message else { fatalError("BUG: data frame without a message") }
            compressed = current.compressed
            if compressed {
                current.compressedBytes += length
            } else {
                guard length <= limits.maxMessageSize - current.size else {
                    fail(.messageTooBig, "message exceeds the limit of \(limits.maxMessageSize) bytes", events: &events)
                    return index - start
                }
                current.size += length
            }
            message = current
        }
        frame = Frame(
            opcode: opcode, fin: header[0] & 0x80 != 0, compressed: compressed,
            mask: (header[offset], header[offset + 1], header[offset + 2], header[offset + 3]),
            remaining: length, maskOffset: 0)
        controlPayload.removeAll(keepingCapacity: true)
        header.removeAll(keepingCapacity: true)
        return index - start
    }

    /// 2, plus 2 or 8 for an extended length, plus 4 for the masking key (always present once validated).
    private func headerLength() -> Int {
        guard header.count >= 2 else { return 2 }
        let lengthCode = header[1] & 0x7F
        return 2 + (lengthCode == 126 ? 2 : lengthCode == 127 ? 8 : 0) + 4
    }

    /// The rules the first two bytes settle; nil when they pass.
    private func checkFirstTwoBytes() -> (WebSocketCloseCode, String)? {
        let first = header[0]
        let second = header[1]
        let fin = first & 0x80 != 0
        let rsv1 = first & 0x40 != 0
        if first & 0x30 != 0 { return (.protocolError, "reserved bits RSV2/RSV3 set") }
        guard let opcode = WebSocketOpcode(rawValue: first & 0x0F) else {
            return (.protocolError, "reserved opcode \(first & 0x0F)")
        }
        if opcode == .text { return (.unsupportedData, "text frames do not carry MQTT") }  // [MQTT-6.0.0-1]
        if second & 0x80 == 0 { return (.protocolError, "client frames must be masked") }  // RFC 6455 §5.1
        if rsv1 {
            // RFC 7692 §6: RSV1 marks the first frame of a compressed message, only when deflate was agreed.
            if deflate == nil { return (.protocolError, "RSV1 set without permessage-deflate") }
            if opcode != .binary { return (.protocolError, "RSV1 set on a frame that does not start a message") }
        }
        if opcode.isControl {
            if !fin { return (.protocolError, "fragmented control frame") }
            if second & 0x7F > 125 { return (.protocolError, "control frame longer than 125 bytes") }
        } else if opcode == .continuation && message == nil {
            return (.protocolError, "continuation frame outside a message")
        } else if opcode == .binary && message != nil {
            return (.protocolError, "new message before the last one ended")
        }
        return nil
    }

    // MARK: - Payload

    private func unmask(_ chunk: UnsafeRawBufferPointer, frame: Frame, appendingTo out: inout [UInt8]) {
        let start = out.count
        out.append(contentsOf: chunk)
        let mask = [frame.mask.0, frame.mask.1, frame.mask.2, frame.mask.3]
        out.withUnsafeMutableBufferPointer { buffer in
            var key = frame.maskOffset & 3
            for index in start..<buffer.count {
                buffer[index] ^= mask[key]
                key = (key + 1) & 3
            }
        }
    }

    /// Inflates compressed payload bytes into `data`; false when that failed the connection.
    private func inflate(_ compressed: UnsafeRawBufferPointer, into data: inout [UInt8], events: inout [Event]) -> Bool
    {
        guard compressed.count > 0, var current = message else { return true }
        if inflater == nil { inflater = Inflater() }
        guard let inflater else {
            fail(.internalError, "zlib could not allocate an inflater", events: &events)
            return false
        }
        do {
            current.size += try inflater.inflate(compressed, into: &data, limit: limits.maxMessageSize - current.size)
            message = current
            return true
        } catch {
            failInflate(error, events: &events)
            return false
        }
    }

    private func endFrame(_ finished: Frame, data: inout [UInt8], events: inout [Event]) {
        frame = nil
        switch finished.opcode {
        case .ping:
            events.append(.ping(controlPayload))
        case .pong:
            events.append(.pong(controlPayload))
        case .close:
            endCloseFrame(events: &events)
        case .binary, .continuation, .text:
            guard finished.fin, let current = message else { return }
            message = nil
            // §7.2.2 of RFC 7692: a compressed message is read with the stripped 0x00 0x00 0xFF 0xFF put back.
            // An empty compressed payload has nothing to finish: the tail alone would leave zlib inside a
            // stored block.
            guard current.compressed, current.compressedBytes > 0, let inflater else { return }
            do {
                _ = try inflater.finishMessage(into: &data, limit: limits.maxMessageSize - current.size)
            } catch {
                failInflate(error, events: &events)
            }
        }
    }

    private func endCloseFrame(events: inout [Event]) {
        let payload = controlPayload
        isFinished = true
        guard payload.count >= 2 else {
            if payload.count == 1 {
                fail(.protocolError, "close frame with a 1-byte payload", events: &events)
            } else {
                events.append(.close(code: nil, reason: ""))
            }
            return
        }
        let code = WebSocketCloseCode(rawValue: UInt16(payload[0]) << 8 | UInt16(payload[1]))
        guard code.isValidOnWire else {
            fail(.protocolError, "close code \(code.rawValue) may not be sent", events: &events)
            return
        }
        guard let reason = String(validating: payload[2...], as: UTF8.self) else {
            fail(.invalidPayloadData, "close reason is not UTF-8", events: &events)  // §5.5.1
            return
        }
        events.append(.close(code: code, reason: reason))
    }

    private func failInflate(_ error: InflateError, events: inout [Event]) {
        switch error {
        case .tooLarge:
            fail(.messageTooBig, "message inflates beyond \(limits.maxMessageSize) bytes", events: &events)
        case .corrupt(let reason):
            fail(.invalidPayloadData, "compressed data is corrupt: \(reason)", events: &events)
        }
    }

    private func fail(_ code: WebSocketCloseCode, _ reason: String, events: inout [Event]) {
        isFinished = true
        frame = nil
        events.append(.failure(code, reason: reason))
    }
}
