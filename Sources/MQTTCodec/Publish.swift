// PUBLISH (§3.3): an application message in either direction.

public struct Publish: Sendable, Equatable {
    public var topic: TopicName
    public var payload: [UInt8]
    public var qos: QoS
    public var retain: Bool
    public var dup: Bool
    /// Present exactly when `qos` is above 0 [MQTT-2.3.1-5].
    public var packetID: PacketID?

    public init(
        topic: TopicName, payload: [UInt8], qos: QoS = .atMostOnce, retain: Bool = false, dup: Bool = false,
        packetID: PacketID? = nil
    ) {
        precondition((qos == .atMostOnce) == (packetID == nil), "QoS > 0 needs a packet id, QoS 0 has none")
        self.topic = topic
        self.payload = payload
        self.qos = qos
        self.retain = retain
        self.dup = dup
        self.packetID = packetID
    }
}
