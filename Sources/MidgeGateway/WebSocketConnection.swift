// One MQTT-over-WebSocket connection after the handshake (RFC 6455 §5.5, §7; MQTT §6): bytes in, replies out.

/// The WebSocket side of one connection, with no I/O: the server gives it what it read and writes what it returns.
///
/// Reading: `receive` appends the MQTT bytes to the caller's stream buffer (fed to `FrameDecoder` as for TCP) and
/// returns the bytes to write back (Pongs, Close frames) and whether the connection is over. Writing: `send` frames
/// outgoing MQTT bytes; `close` starts the closing handshake.
public final class WebSocketConnection {
    public enum State: Sendable, Equatable {
        case open
        /// The server sent a Close frame and waits for the client's (§7.1.2); incoming data is dropped.
        case closing
        /// Both Close frames are exchanged or the connection failed: close the socket once the reply is written.
        case closed
    }

    /// How the connection ended, for the log.
    public enum Closure: Sendable, Equatable {
        /// The client sent a Close frame (first, or in answer to ours). Nil code: its frame had none.
        case closedByPeer(code: WebSocketCloseCode?, reason: String)
        /// The client broke the protocol and the server failed the connection with this code (§7.1.7).
        case failed(WebSocketCloseCode, reason: String)
    }

    public struct Receipt: Sendable, Equatable {
        /// Write these bytes to the socket now.
        public var reply: [UInt8] = []
        /// Set when the connection is over: write `reply`, then close the socket. For the broker this is the end
        /// of the network connection (a Will is published unless MQTT DISCONNECT came first).
        public var closure: Closure?
    }

    public private(set) var state = State.open
    public let decoder: WebSocketFrameDecoder
    public let encoder: WebSocketFrameEncoder
    /// Scratch for data frames decoded while closing, which are discarded (`.closing`).
    private var discardedData: [UInt8] = []

    public init(limits: WebSocketLimits = WebSocketLimits(), deflate: PerMessageDeflateParameters? = nil) {
        decoder = WebSocketFrameDecoder(limits: limits, deflate: deflate)
        encoder = WebSocketFrameEncoder(deflate: deflate)
    }

    public func receive(_ bytes: [UInt8], appendingDataTo stream: inout [UInt8]) -> Receipt {
        bytes.withUnsafeBytes { receive($0, appendingDataTo: &stream) }
    }

    /// Consumes bytes read from the socket. Payload of binary messages goes to the end of `stream`.
    public func receive(_ bytes: UnsafeRawBufferPointer, appendingDataTo stream: inout [UInt8]) -> Receipt {
        var receipt = Receipt()
        guard state != .closed else { return receipt }
        let events: [WebSocketFrameDecoder.Event]
        if state == .closing {
            // After its Close frame the server no longer processes data (§1.4); the decoder still reads frames to
            // find the client's Close.
            discardedData.removeAll(keepingCapacity: true)
            events = decoder.decode(bytes, appendingDataTo: &discardedData)
        } else {
            events = decoder.decode(bytes, appendingDataTo: &stream)
        }
        for event in events {
            switch event {
            case .ping(let payload):
                if state == .open { WebSocketFrameEncoder.encodeControl(.pong, payload: payload, into: &receipt.reply) }
            case .pong:
                break  // §5.5.3: an unsolicited Pong is a heartbeat needing no answer.
            case .close(let code, let reason):
                // §5.5.1: answer a Close with a Close echoing the code, unless ours is already sent.
                if state == .open { WebSocketFrameEncoder.encodeClose(code: code, into: &receipt.reply) }
                state = .closed
                receipt.closure = .closedByPeer(code: code, reason: reason)
            case .failure(let code, let reason):
                if state == .open {
                    WebSocketFrameEncoder.encodeClose(code: code, reason: reason, into: &receipt.reply)
                }
                state = .closed
                receipt.closure = .failed(code, reason: reason)
            }
        }
        return receipt
    }

    public func send(_ mqttBytes: [UInt8], into out: inout [UInt8]) {
        mqttBytes.withUnsafeBytes { send($0, into: &out) }
    }

    /// Appends `mqttBytes` (one or several whole or partial MQTT packets) as one binary message. Nothing is
    /// written once the connection is closing: §5.5.1 forbids data after a Close frame.
    public func send(_ mqttBytes: UnsafeRawBufferPointer, into out: inout [UInt8]) {
        guard state == .open, mqttBytes.count > 0 else { return }
        encoder.encodeBinaryMessage(mqttBytes, into: &out)
    }

    /// A Ping, e.g. to keep an idle proxy from dropping the connection.
    public func ping(_ payload: [UInt8] = [], into out: inout [UInt8]) {
        guard state == .open else { return }
        WebSocketFrameEncoder.encodeControl(.ping, payload: payload, into: &out)
    }

    /// Starts the closing handshake (§7.1.2): `.normalClosure` after MQTT DISCONNECT or a broker-side close,
    /// `.protocolError` for an MQTT protocol violation, `.goingAway` at shutdown. The server may close the socket
    /// once the client answers (a receipt with a closure) or after a grace period.
    public func close(_ code: WebSocketCloseCode = .normalClosure, reason: String = "", into out: inout [UInt8]) {
        guard state == .open else { return }
        WebSocketFrameEncoder.encodeClose(code: code, reason: reason, into: &out)
        state = .closing
    }
}
