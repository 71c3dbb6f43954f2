// SUBSCRIBE (§3.8) and UNSUBSCRIBE (§3.10) on the wire: a packet identifier, then a non-empty list of filters.

extension Subscribe {
    init(wire body: UnsafeRawBufferPointer) throws(DecodeError) {
        var reader = ByteReader(body)
        let packetID = try reader.readPacketID("SUBSCRIBE")
        var requests: [SubscriptionRequest] = []
        while !reader.isAtEnd {
            let rawFilter = try reader.readLengthPrefixed("SUBSCRIBE topic filter")
            let filter = try TopicFilter(wire: rawFilter, field: "SUBSCRIBE topic filter")
            let requested = try reader.readUInt8("SUBSCRIBE requested QoS")
            // Bits 7-2 are reserved, and QoS 3 does not exist [MQTT-3.8.3-4].
            guard requested & 0xFC == 0, let qos = QoS(rawValue: requested) else {
                throw .malformed("SUBSCRIBE requested QoS byte 0x\(String(requested, radix: 16)) [MQTT-3.8.3-4]")
            }
            requests.append(SubscriptionRequest(filter: filter, qos: qos))
        }
        guard !requests.isEmpty else { throw .malformed("SUBSCRIBE without a topic filter [MQTT-3.8.3-3]") }
        self.init(packetID: packetID, requests: requests)
    }

    func encode(into buffer: inout [UInt8]) {
        var remainingLength = 2
        for request in requests { remainingLength += 2 + request.filter.bytes.count + 1 }
        buffer.reserveForAppending(1 + RemainingLength.byteCount(remainingLength) + remainingLength)
        Packet.appendFixedHeader(0x82, remainingLength: remainingLength, into: &buffer)  // [MQTT-3.8.1-1]
        buffer.appendUInt16(packetID.rawValue)
        for request in requests {
            buffer.appendLengthPrefixed(request.filter.bytes)
            buffer.append(request.qos.rawValue)
        }
    }
}

extension Unsubscribe {
    init(wire body: UnsafeRawBufferPointer) throws(DecodeError) {
        var reader = ByteReader(body)
        let packetID = try reader.readPacketID("UNSUBSCRIBE")
        var filters: [TopicFilter] = []
        while !reader.isAtEnd {
            let rawFilter = try reader.readLengthPrefixed("UNSUBSCRIBE topic filter")
            filters.append(try TopicFilter(wire: rawFilter, field: "UNSUBSCRIBE topic filter"))
        }
        guard !filters.isEmpty else { throw .malformed("UNSUBSCRIBE without a topic filter [MQTT-3.10.3-2]") }
        self.init(packetID: packetID, filters: filters)
    }

    func encode(into buffer: inout [UInt8]) {
        var remainingLength = 2
        for filter in filters { remainingLength += 2 + filter.bytes.count }
        buffer.reserveForAppending(1 + RemainingLength.byteCount(remainingLength) + remainingLength)
        Packet.appendFixedHeader(0xA2, remainingLength: remainingLength, into: &buffer)  // [MQTT-3.10.1-1]
        buffer.appendUInt16(packetID.rawValue)
        for filter in filters { buffer.appendLengthPrefixed(filter.bytes) }
    }
}
