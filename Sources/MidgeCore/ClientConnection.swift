// One accepted network connection (§3.1.4): who it is, its Will, its keepalive.
import MQTTCodec

final class ClientConnection {
    let id: ConnectionID
    let info: ConnectionInfo
    let session: Session
    let protocolVersion: ProtocolVersion
    let username: String?
    /// Published when the connection ends for a reason that fires it, then forgotten [MQTT-3.1.2-10].
    var will: Will?
    /// Seconds; 0 disables the check [MQTT-3.1.2-24].
    let keepAlive: UInt16
    var lastPacketReceived: MonotonicTime
    /// Serials of the sessions whose full queue holds this publisher back (`QueueFullPolicy.block`); the driver
    /// was told to pause reading while this is non-empty.
    var heldBy: [UInt64] = []

    init(
        id: ConnectionID, info: ConnectionInfo, session: Session, connect: Connect, now: MonotonicTime
    ) {
        self.id = id
        self.info = info
        self.session = session
        self.protocolVersion = connect.protocolVersion
        self.username = connect.username
        self.will = connect.will
        self.keepAlive = connect.keepAlive
        self.lastPacketReceived = now
    }

    var clientID: String { session.clientID }

    var isHeld: Bool { !heldBy.isEmpty }

    /// When the connection has been silent for 1.5 × keepalive [MQTT-3.1.2-24]; nil when keepalive is off.
    var keepaliveDeadline: MonotonicTime? {
        guard keepAlive > 0 else { return nil }
        return MonotonicTime(nanoseconds: lastPacketReceived.nanoseconds + Int64(keepAlive) * 1_500_000_000)
    }
}
