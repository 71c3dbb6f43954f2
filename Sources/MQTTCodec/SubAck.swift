// SUBACK (§3.9): one return code per requested filter, in request order [MQTT-3.9.3-1].

public enum SubAckReturnCode: Sendable, Equatable {
    case granted(QoS)
    case failure

    /// The only legal codes are 0x00, 0x01, 0x02 and 0x80 [MQTT-3.9.3-2].
    public var rawValue: UInt8 {
        switch self {
        case .granted(let qos): qos.rawValue
        case .failure: 0x80
        }
    }

    public init?(rawValue: UInt8) {
        if rawValue == 0x80 {
            self = .failure
        } else if let qos = QoS(rawValue: rawValue) {
            self = .granted(qos)
        } else {
            return nil
        }
    }
}

public struct SubAck: Sendable, Equatable {
    public var packetID: PacketID
    public var returnCodes: [SubAckReturnCode]

    public init(packetID: PacketID, returnCodes: [SubAckReturnCode]) {
        self.packetID = packetID
        self.returnCodes = returnCodes
    }
}
