// Quality-of-service levels and packet identifiers (MQTT 3.1.1 §2.3.1, §4.3).

/// The delivery guarantee of a PUBLISH or the maximum granted to a subscription.
public enum QoS: UInt8, Sendable, Comparable, CaseIterable {
    case atMostOnce = 0
    case atLeastOnce = 1
    case exactlyOnce = 2

    public static func < (lhs: QoS, rhs: QoS) -> Bool { lhs.rawValue < rhs.rawValue }
}

/// A non-zero 16-bit packet identifier [MQTT-2.3.1-1]. Zero is never a valid id on the wire.
public struct PacketID: Hashable, Sendable, CustomStringConvertible {
    public let rawValue: UInt16

    /// Returns nil for 0, which the protocol reserves.
    public init?(_ rawValue: UInt16) {
        guard rawValue != 0 else { return nil }
        self.rawValue = rawValue
    }

    /// The id after this one, wrapping from 65535 to 1.
    public var next: PacketID {
        PacketID(rawValue &+ 1) ?? PacketID(1)!
    }

    public var description: String { String(rawValue) }
}
