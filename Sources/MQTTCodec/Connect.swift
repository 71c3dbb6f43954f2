// CONNECT (§3.1): the first packet of every connection.

public enum ProtocolVersion: UInt8, Sendable {
    /// MQTT 3.1, protocol name `MQIsdp`; accepted as mosquitto does.
    case v3_1 = 3
    /// MQTT 3.1.1, protocol name `MQTT`.
    case v3_1_1 = 4
}

public struct Will: Sendable, Equatable {
    public var topic: TopicName
    public var payload: [UInt8]
    public var qos: QoS
    public var retain: Bool

    public init(topic: TopicName, payload: [UInt8], qos: QoS, retain: Bool) {
        self.topic = topic
        self.payload = payload
        self.qos = qos
        self.retain = retain
    }
}

public struct Connect: Sendable, Equatable {
    public var protocolVersion: ProtocolVersion
    public var cleanSession: Bool
    /// Seconds; 0 turns the keepalive mechanism off [MQTT-3.1.2-24].
    public var keepAlive: UInt16
    /// May be empty; the broker then assigns one or refuses [MQTT-3.1.3-6] [MQTT-3.1.3-8]. Validated UTF-8.
    public var clientID: String
    public var will: Will?
    public var username: String?
    public var password: [UInt8]?
    /// The sender is a broker bridging to this one: mosquitto's `try_private`, the protocol level's top bit (0x83,
    /// 0x84). Such a connection is not sent back what it published, and gets RETAIN as published.
    public var isBridge: Bool

    public init(
        protocolVersion: ProtocolVersion = .v3_1_1, cleanSession: Bool = true, keepAlive: UInt16 = 60,
        clientID: String, will: Will? = nil, username: String? = nil, password: [UInt8]? = nil, isBridge: Bool = false
    ) {
        self.protocolVersion = protocolVersion
        self.isBridge = isBridge
        self.cleanSession = cleanSession
        self.keepAlive = keepAlive
        self.clientID = clientID
        self.will = will
        self.username = username
        self.password = password
    }
}
