// One accepted network connection (§3.1.4): who it is, its Will, its keepalive.
import MQTTCodec

/// Kept small (see `Session`): fields are ordered so the small ones share one word.
final class ClientConnection {
    let id: ConnectionID
    let session: Session
    @exclusivity(unchecked) var lastPacketReceived: MonotonicTime
    /// The Will as the message it publishes, built at CONNECT; nil once it fired or was discarded [MQTT-3.1.2-10].
    var will: Message?
    let info: ConnectionInfo
    /// The ACL of this connection's listener (the broker's unless `per_listener_settings`), resolved once.
    let accessControl: any AccessControl
    /// Seconds; 0 disables the check [MQTT-3.1.2-24].
    let keepAlive: UInt16
    let protocolVersion: ProtocolVersion
    /// The Will's retain flag [MQTT-3.1.2-17].
    let willRetain: Bool
    /// Where this client's latest PUBLISH went, for the next one to the same topic.
    var routeCache: RouteCache?
    /// How many full queues hold this publisher back (`QueueFullPolicy.block`); the driver was told to pause
    /// reading it while this is above 0.
    @exclusivity(unchecked) var holdCount: UInt32 = 0

    init(
        id: ConnectionID, info: ConnectionInfo, session: Session, connect: Connect, now: MonotonicTime,
        accessControl: any AccessControl
    ) {
        self.id = id
        self.info = info
        self.session = session
        self.accessControl = accessControl
        self.protocolVersion = connect.protocolVersion
        self.will = connect.will.map {
            Message(topic: Mount.topic($0.topic, under: info.mountPoint) ?? $0.topic, payload: $0.payload, qos: $0.qos)
        }
        self.willRetain = connect.will?.retain ?? false
        self.keepAlive = connect.keepAlive
        self.lastPacketReceived = now
    }

    var clientID: String { session.clientID }

    /// The user name this connection authenticated with (the session keeps the latest connection's).
    var username: String? { session.username }

    var isHeld: Bool { holdCount > 0 }

    /// When the connection has been silent for 1.5 × keepalive [MQTT-3.1.2-24]; nil when keepalive is off.
    var keepaliveDeadline: MonotonicTime? {
        guard keepAlive > 0 else { return nil }
        return MonotonicTime(nanoseconds: lastPacketReceived.nanoseconds + Int64(keepAlive) * 1_500_000_000)
    }
}
