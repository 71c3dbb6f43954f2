// PUBLISH on the wire (§3.3): the broker's hot path in both directions.

extension Publish {
    /// Decodes a PUBLISH body. The fixed header already refused QoS 3 and DUP on QoS 0 [MQTT-3.3.1-4]
    /// [MQTT-3.3.1-2]; the topic is validated in place and copied once, the payload copied once.
    init(wire body: UnsafeRawBufferPointer, flags: UInt8) throws(DecodeError) {
        var reader = ByteReader(body)
        let rawTopic = try reader.readLengthPrefixed("PUBLISH topic name")
        let topic = try TopicName(wire: rawTopic, field: "PUBLISH topic name", wildcardRule: "[MQTT-3.3.2-2]")
        guard let qos = QoS(rawValue: (flags >> 1) & 0x03) else {
            throw .malformed("PUBLISH with QoS 3 [MQTT-3.3.1-4]")
        }
        // A packet identifier is present exactly when QoS > 0 (§3.3.2.2) [MQTT-2.3.1-5].
        var packetID: PacketID?
        if qos != .atMostOnce { packetID = try reader.readPacketID("PUBLISH") }
        let payload = [UInt8](copying: reader.readRest())
        self.init(
            topic: topic, payload: payload, qos: qos, retain: flags & 0x01 != 0, dup: flags & 0x08 != 0,
            packetID: packetID)
    }

    /// Encodes a PUBLISH from its parts, so a shared payload is appended without building a `Publish` value.
    /// One capacity check, then two bulk copies (topic, payload) around a handful of header bytes.
    /// `droppingTopicPrefix` bytes are left off the front of the topic: a listener's mount point, which every topic
    /// sent to its clients starts with.
    public static func encode(
        topic: TopicName, payload: [UInt8], qos: QoS, retain: Bool, dup: Bool, packetID: PacketID?,
        droppingTopicPrefix prefix: Int = 0, into buffer: inout [UInt8]
    ) {
        precondition((qos == .atMostOnce) == (packetID == nil), "QoS > 0 needs a packet id, QoS 0 has none")
        precondition(prefix < topic.bytes.count, "a dropped prefix must leave a topic")
        let topicCount = topic.bytes.count &- prefix
        let remainingLength = 2 &+ topicCount &+ (packetID == nil ? 0 : 2) &+ payload.count
        buffer.reserveForAppending(1 &+ RemainingLength.byteCount(remainingLength) &+ remainingLength)
        var typeByte: UInt8 = 0x30 | qos.rawValue << 1
        if dup { typeByte |= 0x08 }
        if retain { typeByte |= 0x01 }
        Packet.appendFixedHeader(typeByte, remainingLength: remainingLength, into: &buffer)
        buffer.appendUInt16(UInt16(truncatingIfNeeded: topicCount))
        // Appending through buffer pointers skips a retain/release pair per array, which dominated the profile:
        // a 116-byte QoS 1 PUBLISH into a reused buffer went from 52-74 ns to 36-39 ns (release build).
        topic.bytes.withUnsafeBufferPointer { buffer.append(contentsOf: UnsafeBufferPointer(rebasing: $0[prefix...])) }
        if let packetID { buffer.appendUInt16(packetID.rawValue) }
        payload.withUnsafeBufferPointer { buffer.append(contentsOf: $0) }
    }
}
