// The fixed header (§2.2): packet type, the flag bits Table 2.2 fixes for each type, and the remaining length.

public struct FixedHeader: Sendable {
    public let type: PacketType
    /// The low nibble of the first byte; meaningful only for PUBLISH (DUP, QoS, RETAIN).
    public let flags: UInt8
    public let remainingLength: Int
    /// 2...5: the type byte plus 1...4 length bytes.
    public let byteCount: Int

    /// Parses the fixed header at the front of `bytes`. Returns nil while it is incomplete, and throws as soon as
    /// the bytes present prove it bad, so an oversized or broken frame is refused before its body is buffered.
    /// Every check depends only on bytes already seen: feeding a bad frame byte by byte raises the same error
    /// as feeding it whole.
    public static func parse(_ bytes: UnsafeRawBufferPointer, limit: Int) throws(DecodeError) -> FixedHeader? {
        guard !bytes.isEmpty else { return nil }
        let first = bytes[0]
        guard let type = PacketType(rawValue: first >> 4) else {
            throw .malformed("packet type \(first >> 4) is reserved (§2.2.1)")
        }
        let flags = first & 0x0F
        try type.checkFlags(flags)

        var length = 0
        var shift = 0
        var index = 1
        while true {
            guard index < bytes.count else { return nil }
            let byte = bytes[index]
            index += 1
            length |= Int(byte & 0x7F) << shift
            // What is known so far is a lower bound: later bytes can only add to it.
            if length > limit { throw .packetTooLarge(size: length, limit: limit) }
            if byte & 0x80 == 0 { break }
            if index == 5 { throw .malformed("remaining length longer than four bytes (§2.2.3)") }
            shift += 7
        }
        if let expected = type.fixedRemainingLength, length != expected {
            throw .malformed("\(type.wireName) with remaining length \(length), not \(expected)")
        }
        return FixedHeader(type: type, flags: flags, remainingLength: length, byteCount: index)
    }
}

extension PacketType {
    /// The name the spec uses, for error messages and logs.
    var wireName: StaticString {
        switch self {
        case .connect: "CONNECT"
        case .connack: "CONNACK"
        case .publish: "PUBLISH"
        case .puback: "PUBACK"
        case .pubrec: "PUBREC"
        case .pubrel: "PUBREL"
        case .pubcomp: "PUBCOMP"
        case .subscribe: "SUBSCRIBE"
        case .suback: "SUBACK"
        case .unsubscribe: "UNSUBSCRIBE"
        case .unsuback: "UNSUBACK"
        case .pingreq: "PINGREQ"
        case .pingresp: "PINGRESP"
        case .disconnect: "DISCONNECT"
        }
    }

    /// Table 2.2: PUBREL, SUBSCRIBE and UNSUBSCRIBE carry 0b0010, PUBLISH its own flags, every other type 0b0000.
    func checkFlags(_ flags: UInt8) throws(DecodeError) {
        switch self {
        case .publish:
            if flags & 0x06 == 0x06 { throw .malformed("PUBLISH with QoS 3 [MQTT-3.3.1-4]") }
            if flags & 0x0E == 0x08 { throw .malformed("QoS 0 PUBLISH with DUP set [MQTT-3.3.1-2]") }
        case .pubrel:
            if flags != 0x02 { throw .badFlags(self, flags, rule: "[MQTT-3.6.1-1]") }
        case .subscribe:
            if flags != 0x02 { throw .badFlags(self, flags, rule: "[MQTT-3.8.1-1]") }
        case .unsubscribe:
            if flags != 0x02 { throw .badFlags(self, flags, rule: "[MQTT-3.10.1-1]") }
        case .disconnect:
            if flags != 0 { throw .badFlags(self, flags, rule: "[MQTT-3.14.1-1]") }
        case .connect, .connack, .puback, .pubrec, .pubcomp, .suback, .unsuback, .pingreq, .pingresp:
            if flags != 0 { throw .badFlags(self, flags, rule: "[MQTT-2.2.2-2]") }
        }
    }

    /// The one remaining length a packet without a payload may have (§3.2, §3.4-3.7, §3.11-3.14).
    var fixedRemainingLength: Int? {
        switch self {
        case .connack, .puback, .pubrec, .pubrel, .pubcomp, .unsuback: 2
        case .pingreq, .pingresp, .disconnect: 0
        case .connect, .publish, .subscribe, .suback, .unsubscribe: nil
        }
    }
}

extension DecodeError {
    static func badFlags(_ type: PacketType, _ flags: UInt8, rule: StaticString) -> DecodeError {
        .malformed("\(type.wireName) with reserved flags 0x\(String(flags, radix: 16, uppercase: true)) \(rule)")
    }
}
