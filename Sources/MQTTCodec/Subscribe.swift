// SUBSCRIBE (§3.8) and UNSUBSCRIBE (§3.10).

public struct SubscriptionRequest: Sendable, Equatable {
    public var filter: TopicFilter
    public var qos: QoS

    public init(filter: TopicFilter, qos: QoS) {
        self.filter = filter
        self.qos = qos
    }
}

public struct Subscribe: Sendable, Equatable {
    public var packetID: PacketID
    /// Never empty [MQTT-3.8.3-3].
    public var requests: [SubscriptionRequest]

    public init(packetID: PacketID, requests: [SubscriptionRequest]) {
        self.packetID = packetID
        self.requests = requests
    }
}

public struct Unsubscribe: Sendable, Equatable {
    public var packetID: PacketID
    /// Never empty [MQTT-3.10.3-2].
    public var filters: [TopicFilter]

    public init(packetID: PacketID, filters: [TopicFilter]) {
        self.packetID = packetID
        self.filters = filters
    }
}
