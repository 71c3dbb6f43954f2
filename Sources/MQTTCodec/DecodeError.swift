// Every way a byte stream can fail to be MQTT, each case naming its consequence on the wire (§4.8).

public enum DecodeError: Error, Sendable, Equatable, CustomStringConvertible {
    /// The CONNECT names a protocol level Midge does not speak: answer CONNACK 0x01, then close [MQTT-3.1.2-2].
    case unacceptableProtocolVersion(UInt8)
    /// The declared packet is larger than the configured limit: close without reading the body.
    case packetTooLarge(size: Int, limit: Int)
    /// Anything else that breaks the spec: close the connection [MQTT-4.8.0-1].
    case malformed(String)

    public var description: String {
        switch self {
        case .unacceptableProtocolVersion(let level): "unacceptable protocol level \(level)"
        case .packetTooLarge(let size, let limit): "packet of \(size) bytes exceeds the limit of \(limit)"
        case .malformed(let reason): "malformed packet: \(reason)"
        }
    }
}
