// CONNECT on the wire (§3.1): protocol name and level, connect flags, keep alive, then the payload fields the
// flags announce, in order [MQTT-3.1.3-1]. MQTT 3.1 (`MQIsdp`, level 3) is accepted with mosquitto 2.0's leniency.
// A level with the top bit set (0x83, 0x84) is mosquitto's bridge marker (`try_private`): the level is the low seven
// bits, and the connection is a bridge.

extension Connect {
    init(wire body: UnsafeRawBufferPointer) throws(DecodeError) {
        var reader = ByteReader(body)
        let protocolName = try reader.readLengthPrefixed("CONNECT protocol name")
        let rawLevel = try reader.readUInt8("CONNECT protocol level")
        let isBridge = rawLevel & Connect.bridgeBit != 0
        let level = rawLevel & ~Connect.bridgeBit
        let protocolVersion: ProtocolVersion
        if protocolName.elementsEqual([0x4D, 0x51, 0x54, 0x54]) {  // "MQTT"
            guard level == ProtocolVersion.v3_1_1.rawValue else { throw .unacceptableProtocolVersion(rawLevel) }
            protocolVersion = .v3_1_1
        } else if protocolName.elementsEqual([0x4D, 0x51, 0x49, 0x73, 0x64, 0x70]) {  // "MQIsdp"
            guard level == ProtocolVersion.v3_1.rawValue else { throw .unacceptableProtocolVersion(rawLevel) }
            protocolVersion = .v3_1
        } else {
            // Not MQTT at all: close without a CONNACK [MQTT-3.1.2-1].
            throw .malformed("CONNECT protocol name is neither MQTT nor MQIsdp [MQTT-3.1.2-1]")
        }
        // The 3.1.1 flag rules below are new in 3.1.1; like mosquitto 2.0, a 3.1 client is not held to them.
        let strict = protocolVersion == .v3_1_1

        let flags = try reader.readUInt8("CONNECT flags")
        if strict && flags & 0x01 != 0 { throw .malformed("CONNECT reserved flag set [MQTT-3.1.2-3]") }
        let cleanSession = flags & 0x02 != 0
        let hasWill = flags & 0x04 != 0
        guard let willQoS = QoS(rawValue: (flags >> 3) & 0x03) else {
            throw .malformed("CONNECT will QoS 3 [MQTT-3.1.2-14]")
        }
        let willRetain = flags & 0x20 != 0
        let hasPassword = flags & 0x40 != 0
        let hasUsername = flags & 0x80 != 0
        if strict && !hasWill {
            if willQoS != .atMostOnce {
                throw .malformed("CONNECT will QoS without will flag [MQTT-3.1.2-11] [MQTT-3.1.2-13]")
            }
            if willRetain { throw .malformed("CONNECT will retain without will flag [MQTT-3.1.2-11] [MQTT-3.1.2-15]") }
        }
        // mosquitto 2.0 refuses this for 3.1 too ("password without username"), so both versions do here.
        if hasPassword && !hasUsername {
            throw .malformed("CONNECT password flag without user name flag [MQTT-3.1.2-22]")
        }
        let keepAlive = try reader.readUInt16("CONNECT keep alive")

        let rawClientID = try reader.readLengthPrefixed("CONNECT client identifier [MQTT-3.1.3-3]")
        guard UTF8Validation.scan(rawClientID, rejectingWildcards: false) else {
            throw .malformed("CONNECT client identifier \(UTF8Validation.violation(rawClientID)) [MQTT-3.1.3-4]")
        }
        let clientID = String(decoding: rawClientID, as: UTF8.self)

        var will: Will?
        if hasWill {
            let rawTopic = try reader.readLengthPrefixed("CONNECT will topic [MQTT-3.1.2-9]")
            let topic = try TopicName(wire: rawTopic, field: "CONNECT will topic", wildcardRule: "[MQTT-4.7.1-1]")
            let payload = try reader.readLengthPrefixed("CONNECT will message [MQTT-3.1.2-9]")
            will = Will(topic: topic, payload: [UInt8](copying: payload), qos: willQoS, retain: willRetain)
        }

        var username: String?
        // 3.1: a user name flag with nothing left to read is ignored, as mosquitto does.
        if hasUsername && (strict || !reader.isAtEnd) {
            let rawUsername = try reader.readLengthPrefixed("CONNECT user name [MQTT-3.1.2-19]")
            guard UTF8Validation.scan(rawUsername, rejectingWildcards: false) else {
                throw .malformed("CONNECT user name \(UTF8Validation.violation(rawUsername)) [MQTT-3.1.3-11]")
            }
            username = String(decoding: rawUsername, as: UTF8.self)
        }
        var password: [UInt8]?
        if hasPassword && (strict || !reader.isAtEnd) {
            password = [UInt8](copying: try reader.readLengthPrefixed("CONNECT password [MQTT-3.1.2-21]"))
        }
        guard reader.isAtEnd else {
            throw .malformed(
                "CONNECT has \(reader.remainingCount) bytes after its last field [MQTT-3.1.2-18] [MQTT-3.1.2-20]")
        }
        self.init(
            protocolVersion: protocolVersion, cleanSession: cleanSession, keepAlive: keepAlive, clientID: clientID,
            will: will, username: username, password: password, isBridge: isBridge)
    }

    /// The protocol level's top bit: set by a bridge (mosquitto's `try_private`), never by a client.
    static let bridgeBit: UInt8 = 0x80

    func encode(into buffer: inout [UInt8]) {
        let protocolNameCount = protocolVersion == .v3_1_1 ? 4 : 6
        var remainingLength = 2 + protocolNameCount + 1 + 1 + 2 + 2 + clientID.utf8.count
        var flags: UInt8 = cleanSession ? 0x02 : 0
        if let will {
            remainingLength += 2 + will.topic.bytes.count + 2 + will.payload.count
            flags |= 0x04 | will.qos.rawValue << 3
            if will.retain { flags |= 0x20 }
        }
        if let username {
            remainingLength += 2 + username.utf8.count
            flags |= 0x80
        }
        if let password {
            remainingLength += 2 + password.count
            flags |= 0x40
        }
        buffer.reserveForAppending(1 + RemainingLength.byteCount(remainingLength) + remainingLength)
        Packet.appendFixedHeader(0x10, remainingLength: remainingLength, into: &buffer)
        switch protocolVersion {
        case .v3_1_1: buffer.appendLengthPrefixed("MQTT".utf8)
        case .v3_1: buffer.appendLengthPrefixed("MQIsdp".utf8)
        }
        buffer.append(isBridge ? protocolVersion.rawValue | Connect.bridgeBit : protocolVersion.rawValue)
        buffer.append(flags)
        buffer.appendUInt16(keepAlive)
        buffer.appendLengthPrefixed(clientID.utf8)
        if let will {
            buffer.appendLengthPrefixed(will.topic.bytes)
            buffer.appendLengthPrefixed(will.payload)
        }
        if let username { buffer.appendLengthPrefixed(username.utf8) }
        if let password { buffer.appendLengthPrefixed(password) }
    }
}
