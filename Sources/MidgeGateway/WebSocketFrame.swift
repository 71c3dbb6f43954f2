// The WebSocket framing vocabulary (RFC 6455 §5.2, §7.4): opcodes and close status codes.

/// The opcodes RFC 6455 defines; the others (3-7, 11-15) are reserved and fail the connection.
public enum WebSocketOpcode: UInt8, Sendable {
    case continuation = 0x0
    case text = 0x1
    case binary = 0x2
    case close = 0x8
    case ping = 0x9
    case pong = 0xA

    /// Control frames (§5.5) carry at most 125 bytes and are never fragmented.
    public var isControl: Bool { rawValue & 0x8 != 0 }
}

/// A close status code (§7.4). Unknown codes from a peer are representable; `isValidOnWire` says whether one may
/// appear in a Close frame.
public struct WebSocketCloseCode: RawRepresentable, Hashable, Sendable, CustomStringConvertible {
    public let rawValue: UInt16

    public init(rawValue: UInt16) { self.rawValue = rawValue }

    public static let normalClosure = WebSocketCloseCode(rawValue: 1000)
    public static let goingAway = WebSocketCloseCode(rawValue: 1001)
    public static let protocolError = WebSocketCloseCode(rawValue: 1002)
    /// A text frame: MQTT travels only in binary frames [MQTT-6.0.0-1].
    public static let unsupportedData = WebSocketCloseCode(rawValue: 1003)
    /// Only reported, never sent: the peer's Close frame had no code (§7.4.1).
    public static let noStatusReceived = WebSocketCloseCode(rawValue: 1005)
    public static let invalidPayloadData = WebSocketCloseCode(rawValue: 1007)
    public static let policyViolation = WebSocketCloseCode(rawValue: 1008)
    public static let messageTooBig = WebSocketCloseCode(rawValue: 1009)
    public static let mandatoryExtension = WebSocketCloseCode(rawValue: 1010)
    public static let internalError = WebSocketCloseCode(rawValue: 1011)

    /// §7.4.1-§7.4.2 and the IANA registry: 1000-1003, 1007-1014 and the private ranges 3000-4999. 1004 is
    /// reserved, 1005, 1006 and 1015 are for reports only.
    public var isValidOnWire: Bool {
        switch rawValue {
        case 1000...1003, 1007...1014, 3000...4999: true
        default: false
        }
    }

    public var description: String { String(rawValue) }
}
