// The 14 control packets of MQTT 3.1.1 (§2.2.1) as values, independent of their wire form.

public enum PacketType: UInt8, Sendable {
    case connect = 1, connack, publish, puback, pubrec, pubrel, pubcomp
    case subscribe, suback, unsubscribe, unsuback, pingreq, pingresp, disconnect
}

public enum Packet: Sendable, Equatable {
    /// Indirect: one per connection, while every PUBLISH is a `Packet` moved at the size of the largest case.
    indirect case connect(Connect)
    case connack(ConnAck)
    case publish(Publish)
    case puback(PacketID)
    case pubrec(PacketID)
    case pubrel(PacketID)
    case pubcomp(PacketID)
    case subscribe(Subscribe)
    case suback(SubAck)
    case unsubscribe(Unsubscribe)
    case unsuback(PacketID)
    case pingreq
    case pingresp
    case disconnect

    public var type: PacketType {
        switch self {
        case .connect: .connect
        case .connack: .connack
        case .publish: .publish
        case .puback: .puback
        case .pubrec: .pubrec
        case .pubrel: .pubrel
        case .pubcomp: .pubcomp
        case .subscribe: .subscribe
        case .suback: .suback
        case .unsubscribe: .unsubscribe
        case .unsuback: .unsuback
        case .pingreq: .pingreq
        case .pingresp: .pingresp
        case .disconnect: .disconnect
        }
    }
}
