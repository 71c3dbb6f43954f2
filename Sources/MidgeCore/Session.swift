// Session state keyed by client id (§3.1.2.4, §4.1): subscriptions, QoS flows, the offline queue.
import MQTTCodec

final class Session {
    let clientID: String
    /// Unique for the process; the subscription trie keys its entries on it.
    let serial: UInt64
    /// Clean-session sessions end with their connection [MQTT-3.1.2-6]; the others persist [MQTT-3.1.2-4].
    let cleanSession: Bool
    /// The user name of the latest connection, for access checks while the client is away.
    var username: String?
    /// The live connection, nil while a persistent session waits for its client.
    var connection: ConnectionID?

    /// Filter → granted QoS, compared byte for byte [MQTT-3.10.4-1].
    var subscriptions: [TopicFilter: QoS] = [:]
    /// Outbound QoS 1/2 deliveries holding a packet id.
    var inflight = InflightWindow()
    /// Deliveries waiting for window space or for the client to reconnect, in arrival order [MQTT-4.6.0-5].
    var queue = MessageQueue()
    /// Inbound QoS 2 packet ids between PUBLISH and PUBREL (method B) [MQTT-4.3.3-2].
    var inboundQoS2: Set<UInt16> = []
    /// Set while deliveries are being dropped for a full queue, so the log says so once per episode.
    var isDropping = false

    // Routing scratch, see `Broker.route`: the publish being routed and the highest QoS granted to it so far.
    var routeEpoch: UInt64 = 0
    var routeQoS: QoS = .atMostOnce

    init(clientID: String, serial: UInt64, cleanSession: Bool) {
        self.clientID = clientID
        self.serial = serial
        self.cleanSession = cleanSession
    }
}
