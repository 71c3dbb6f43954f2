// SUBACK on the wire (§3.9): packet identifier, then one return code per requested filter.

extension SubAck {
    init(wire body: UnsafeRawBufferPointer) throws(DecodeError) {
        var reader = ByteReader(body)
        let packetID = try reader.readPacketID("SUBACK")
        let rawCodes = reader.readRest()
        // A SUBSCRIBE carries at least one filter and gets one code per filter [MQTT-3.9.3-1].
        guard !rawCodes.isEmpty else { throw .malformed("SUBACK without a return code [MQTT-3.9.3-1]") }
        var returnCodes: [SubAckReturnCode] = []
        returnCodes.reserveCapacity(rawCodes.count)
        for raw in rawCodes {
            guard let code = SubAckReturnCode(rawValue: raw) else {
                throw .malformed("SUBACK return code 0x\(String(raw, radix: 16)) is reserved [MQTT-3.9.3-2]")
            }
            returnCodes.append(code)
        }
        self.init(packetID: packetID, returnCodes: returnCodes)
    }

    func encode(into buffer: inout [UInt8]) {
        let remainingLength = 2 + returnCodes.count
        buffer.reserveForAppending(1 + RemainingLength.byteCount(remainingLength) + remainingLength)
        Packet.appendFixedHeader(0x90, remainingLength: remainingLength, into: &buffer)
        buffer.appendUInt16(packetID.rawValue)
        for code in returnCodes { buffer.append(code.rawValue) }
    }
}
