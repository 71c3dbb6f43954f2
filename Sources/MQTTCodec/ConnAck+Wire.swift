// CONNACK on the wire (§3.2): acknowledge flags, then the return code; remaining length 2 checked with the header.

extension ConnAck {
    init(wire body: UnsafeRawBufferPointer) throws(DecodeError) {
        var reader = ByteReader(body)
        let acknowledgeFlags = try reader.readUInt8("CONNACK acknowledge flags")
        // Bits 7-1 are reserved and must be 0 (§3.2.2.1).
        guard acknowledgeFlags & 0xFE == 0 else {
            throw .malformed("CONNACK acknowledge flags 0x\(String(acknowledgeFlags, radix: 16)) set reserved bits")
        }
        let rawCode = try reader.readUInt8("CONNACK return code")
        guard let returnCode = ConnectReturnCode(rawValue: rawCode) else {
            throw .malformed("CONNACK return code \(rawCode) is reserved (§3.2.2.3)")
        }
        let sessionPresent = acknowledgeFlags & 0x01 != 0
        guard !sessionPresent || returnCode == .accepted else {
            throw .malformed("CONNACK refusal with session present set [MQTT-3.2.2-4]")
        }
        self.init(sessionPresent: sessionPresent, returnCode: returnCode)
    }

    func encode(into buffer: inout [UInt8]) {
        buffer.reserveForAppending(4)
        buffer.append(0x20)
        buffer.append(2)
        buffer.append(sessionPresent ? 1 : 0)
        buffer.append(returnCode.rawValue)
    }
}
