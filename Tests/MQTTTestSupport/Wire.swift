// Hand-made MQTT 3.1.1 packet bytes (§2, §3) for tests that speak to a broker, valid and deliberately malformed.
//
// The black-box tests build their own bytes rather than go through the codec under test: a broker must be judged by
// the wire, and the malformed cases cannot be expressed through a validating encoder anyway.

import MQTTCodec

/// A Will as the tests send it: raw topic bytes so invalid topics can be sent too.
public struct WillSpec {
    public var topic: [UInt8]
    public var payload: [UInt8]
    public var qos: UInt8 = 0
    public var retain: Bool = false

    public init(topic: String, payload: [UInt8], qos: UInt8 = 0, retain: Bool = false) {
        self.topic = Array(topic.utf8)
        self.payload = payload
        self.qos = qos
        self.retain = retain
    }

    public init(topicBytes: [UInt8], payload: [UInt8], qos: UInt8 = 0, retain: Bool = false) {
        self.topic = topicBytes
        self.payload = payload
        self.qos = qos
        self.retain = retain
    }
}

public enum Wire {
    /// The Remaining Length field (§2.2.3): 7 bits per byte, continuation bit 0x80.
    public static func remainingLength(_ value: Int) -> [UInt8] {
        precondition(value >= 0 && value <= 268_435_455, "remaining length out of range")
        var bytes: [UInt8] = []
        var rest = value
        repeat {
            var byte = UInt8(rest % 128)
            rest /= 128
            if rest > 0 { byte |= 0x80 }
            bytes.append(byte)
        } while rest > 0
        return bytes
    }

    /// A fixed header byte followed by the remaining length of `body` and `body` itself.
    public static func frame(_ first: UInt8, _ body: [UInt8]) -> [UInt8] {
        [first] + remainingLength(body.count) + body
    }

    public static func u16(_ value: UInt16) -> [UInt8] {
        [UInt8(value >> 8), UInt8(value & 0xFF)]
    }

    /// A length-prefixed string or binary field (§1.5.3, §1.5.2).
    public static func string(_ bytes: [UInt8]) -> [UInt8] {
        u16(UInt16(bytes.count)) + bytes
    }

    public static func string(_ text: String) -> [UInt8] {
        string(Array(text.utf8))
    }

    // MARK: CONNECT (§3.1)

    /// A CONNECT; `flags` replaces the computed connect-flags byte when a test wants it wrong on purpose.
    public static func connect(
        clientID: [UInt8], clean: Bool = true, keepAlive: UInt16 = 60, will: WillSpec? = nil,
        username: [UInt8]? = nil, password: [UInt8]? = nil, protocolName: String = "MQTT", level: UInt8 = 4,
        flags: UInt8? = nil
    ) -> [UInt8] {
        var computed: UInt8 = clean ? 0x02 : 0
        if let will {
            computed |= 0x04 | (will.qos << 3) | (will.retain ? 0x20 : 0)
        }
        if username != nil { computed |= 0x80 }
        if password != nil { computed |= 0x40 }
        var body = string(protocolName) + [level, flags ?? computed] + u16(keepAlive)
        body += string(clientID)
        if let will {
            body += string(will.topic) + string(will.payload)
        }
        if let username { body += string(username) }
        if let password { body += string(password) }
        return frame(0x10, body)
    }

    public static func connect(
        _ clientID: String, clean: Bool = true, keepAlive: UInt16 = 60, will: WillSpec? = nil,
        username: String? = nil, password: String? = nil
    ) -> [UInt8] {
        connect(
            clientID: Array(clientID.utf8), clean: clean, keepAlive: keepAlive, will: will,
            username: username.map { Array($0.utf8) }, password: password.map { Array($0.utf8) })
    }

    // MARK: PUBLISH and its acknowledgements (§3.3 - §3.7)

    public static func publish(
        topic: [UInt8], payload: [UInt8], qos: UInt8 = 0, retain: Bool = false, dup: Bool = false,
        id: UInt16? = nil
    ) -> [UInt8] {
        let first: UInt8 = 0x30 | (dup ? 0x08 : 0) | (qos << 1) | (retain ? 0x01 : 0)
        var body = string(topic)
        if qos > 0 { body += u16(id ?? 1) }
        body += payload
        return frame(first, body)
    }

    public static func publish(
        _ topic: String, _ payload: String, qos: UInt8 = 0, retain: Bool = false, dup: Bool = false,
        id: UInt16? = nil
    ) -> [UInt8] {
        publish(topic: Array(topic.utf8), payload: Array(payload.utf8), qos: qos, retain: retain, dup: dup, id: id)
    }

    public static func puback(_ id: UInt16) -> [UInt8] { frame(0x40, u16(id)) }
    public static func pubrec(_ id: UInt16) -> [UInt8] { frame(0x50, u16(id)) }
    public static func pubrel(_ id: UInt16) -> [UInt8] { frame(0x62, u16(id)) }
    public static func pubcomp(_ id: UInt16) -> [UInt8] { frame(0x70, u16(id)) }

    // MARK: SUBSCRIBE / UNSUBSCRIBE (§3.8, §3.10)

    /// A SUBSCRIBE; the requested-QoS byte is sent as given, so reserved bits can be set on purpose.
    public static func subscribe(id: UInt16, _ requests: [(filter: [UInt8], qos: UInt8)], first: UInt8 = 0x82)
        -> [UInt8]
    {
        var body = u16(id)
        for request in requests {
            body += string(request.filter) + [request.qos]
        }
        return frame(first, body)
    }

    public static func subscribe(id: UInt16, _ filter: String, qos: UInt8) -> [UInt8] {
        subscribe(id: id, [(Array(filter.utf8), qos)])
    }

    public static func unsubscribe(id: UInt16, _ filters: [[UInt8]], first: UInt8 = 0xA2) -> [UInt8] {
        var body = u16(id)
        for filter in filters { body += string(filter) }
        return frame(first, body)
    }

    public static func unsubscribe(id: UInt16, _ filters: String...) -> [UInt8] {
        unsubscribe(id: id, filters.map { Array($0.utf8) })
    }

    public static let pingreq: [UInt8] = [0xC0, 0x00]
    public static let disconnect: [UInt8] = [0xE0, 0x00]
}

/// One whole packet as it arrived from the broker: its exact bytes, split into fixed header and body.
public struct Frame: CustomStringConvertible {
    public let bytes: [UInt8]
    public let bodyStart: Int

    public var first: UInt8 { bytes[0] }
    public var typeCode: UInt8 { bytes[0] >> 4 }
    public var flags: UInt8 { bytes[0] & 0x0F }
    public var body: ArraySlice<UInt8> { bytes[bodyStart...] }

    /// Slices the first whole frame off the front of `buffer`; nil while the frame is incomplete.
    /// Throws when the remaining length would need a fifth byte, which no broker may send (§2.2.3).
    public static func slice(from buffer: [UInt8]) throws(WireError) -> Frame? {
        guard buffer.count >= 2 else { return nil }
        var length = 0
        var multiplier = 1
        var index = 1
        while true {
            guard index < buffer.count else { return nil }
            guard index <= 4 else { throw WireError("remaining length longer than 4 bytes") }
            let byte = buffer[index]
            length += Int(byte & 0x7F) * multiplier
            multiplier *= 128
            index += 1
            if byte & 0x80 == 0 { break }
        }
        guard buffer.count >= index + length else { return nil }
        return Frame(bytes: Array(buffer[0..<(index + length)]), bodyStart: index)
    }

    /// The packet decoded by the codec's strict decoder (Table 2.2 flags, CONNACK reserved bits, SUBACK codes
    /// [MQTT-2.2.2-1] [MQTT-3.9.3-2]); throws if the broker sent bytes it must not send, including packet types
    /// that only clients send.
    public func decode() throws(WireError) -> Packet {
        let decoded: (packet: Packet, consumed: Int)?
        do {
            decoded = try bytes.withUnsafeBytes { raw throws(DecodeError) in try FrameDecoder().decode(raw) }
        } catch {
            throw WireError("\(error)")
        }
        guard let decoded, decoded.consumed == bytes.count else { throw WireError("frame and decoder disagree") }
        switch decoded.packet {
        case .connect, .subscribe, .unsubscribe, .pingreq, .disconnect:
            throw WireError("\(decoded.packet.type) is never sent by a server")
        default:
            return decoded.packet
        }
    }

    public var description: String {
        let hex = bytes.prefix(48).map { byte in
            let digits = String(byte, radix: 16)
            return digits.count == 1 ? "0" + digits : digits
        }.joined(separator: " ")
        let decoded = (try? decode()).map { " \($0)" } ?? ""
        return "[\(hex)\(bytes.count > 48 ? " ..." : "")]\(decoded)"
    }
}

public struct WireError: Error, CustomStringConvertible {
    public let description: String
    public init(_ description: String) { self.description = description }
}

extension Packet {
    /// The PUBLISH inside, or nil for any other packet.
    public var publish: Publish? {
        if case .publish(let publish) = self { return publish }
        return nil
    }
}

extension Publish {
    public var topicString: String { String(decoding: topic.bytes, as: UTF8.self) }
    public var payloadString: String { String(decoding: payload, as: UTF8.self) }
    public var id: UInt16 { packetID?.rawValue ?? 0 }
}
