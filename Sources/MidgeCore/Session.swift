// Session state keyed by client id (§3.1.2.4, §4.1): subscriptions, QoS flows, the offline queue.
import MQTTCodec

/// Kept small: an idle connected client costs this object, its `ClientConnection` and their table entries.
/// Everything that only matters while messages are in flight lives in `flows`, allocated on first use.
final class Session {
    static let noConnection = UInt64.max

    let clientID: String
    /// Unique for the process; the subscription trie keys its entries on it.
    let serial: UInt64
    /// The user name of the latest connection, for access checks (also while the client is away).
    var username: String?
    /// The security profile of the listener the client last connected through: its ACL checks deliveries.
    var securityProfile = 0
    /// The latest connection's own permissions (a token's claims), which check deliveries instead of the profile's.
    var grantedAccess: GrantedAccess?
    /// Filter → granted QoS, compared byte for byte [MQTT-3.10.4-1].
    var subscriptions: [TopicFilter: QoS] = [:]
    /// The QoS flows and the queue; nil until the session first needs them.
    @exclusivity(unchecked) var flows: SessionFlows?
    /// `connection`'s raw value, or `noConnection` (a ConnectionID never has its top bit set): 8 bytes instead of
    /// the 16 an optional takes.
    @exclusivity(unchecked) private var connectionBits = Session.noConnection
    /// Routing scratch, see `Broker.route`: the route that last matched this session and the highest QoS granted
    /// to it so far.
    @exclusivity(unchecked) var routeEpoch: UInt32 = 0
    @exclusivity(unchecked) var routeQoS: QoS = .atMostOnce
    /// Clean-session sessions end with their connection [MQTT-3.1.2-6]; the others persist [MQTT-3.1.2-4].
    let cleanSession: Bool
    /// The latest connection said it is a broker bridging to this one (`Connect.isBridge`): it is not sent what it
    /// published itself, and gets RETAIN as published. Set by every CONNECT, so it stays while the session waits for
    /// its bridge (queued deliveries keep RETAIN) and is not stored: a session restored after a restart has it again
    /// once its bridge reconnects.
    @exclusivity(unchecked) var isBridge = false
    /// Why every delivery waits in the queue (where the limits and the queue-full policy apply) instead of going
    /// to the driver.
    @exclusivity(unchecked) var outputBlocks: OutputBlocks = []

    var outputBlocked: Bool { !outputBlocks.isEmpty }

    init(clientID: String, serial: UInt64, cleanSession: Bool) {
        self.clientID = clientID
        self.serial = serial
        self.cleanSession = cleanSession
    }

    /// The live connection, nil while a persistent session waits for its client.
    var connection: ConnectionID? {
        get { connectionBits == Session.noConnection ? nil : ConnectionID(rawValue: connectionBits) }
        set { connectionBits = newValue?.rawValue ?? Session.noConnection }
    }

    /// `flows`, created if the session has none yet.
    var activeFlows: SessionFlows {
        if let flows { return flows }
        let created = SessionFlows()
        flows = created
        return created
    }

    var queueIsEmpty: Bool { flows?.queue.isEmpty ?? true }
    var inflightCount: Int { flows?.inflight.count ?? 0 }
}

struct OutputBlocks: OptionSet {
    let rawValue: UInt8
    /// The driver reported the connection's unsent output over its high-water mark, and not yet drained.
    static let congested = OutputBlocks(rawValue: 1)
    /// `BrokerConfiguration.outputWindowBytes` handed over and not yet confirmed by the driver.
    static let windowFull = OutputBlocks(rawValue: 2)
}

/// A session's messages in motion: outbound QoS 1/2 flows, the queue, inbound QoS 2 ids, held publishers.
final class SessionFlows {
    /// Outbound QoS 1/2 deliveries holding a packet id.
    @exclusivity(unchecked) var inflight = InflightWindow()
    /// Deliveries waiting for window space, a congested connection or the client's return, in arrival order
    /// [MQTT-4.6.0-5].
    @exclusivity(unchecked) var queue = MessageQueue()
    /// Inbound QoS 2 packet ids between PUBLISH and PUBREL (method B) [MQTT-4.3.3-2].
    @exclusivity(unchecked) var inboundQoS2: Set<UInt16> = []
    /// Publishers held back because this queue is full (`QueueFullPolicy.block`), in the order they were held,
    /// and their connections' raw ids; released together once the queue has drained to half its limits.
    var heldPublishers: [ClientConnection] = []
    var heldPublisherIDs: Set<UInt64> = []
    /// Set while deliveries are being dropped for a full queue, so the log says so once per episode.
    var isDropping = false
    /// Deliveries dropped in the current episode, logged when the queue has room again.
    var droppedInEpisode: UInt32 = 0
    /// Delivery bytes handed to the driver that it has not confirmed as taken into the connection's output
    /// (see `BrokerConfiguration.outputWindowBytes`).
    @exclusivity(unchecked) var unconfirmedOutputBytes = 0
    /// The part of `unconfirmedOutputBytes` the outstanding `ReadingChange.confirmOutput` covers; 0 when none
    /// is outstanding.
    @exclusivity(unchecked) var confirmingOutputBytes = 0
}

/// A client id as the session table's key: compared and hashed by its UTF-8 bytes. Swift's `String ==` uses
/// canonical equivalence, under which "café" spelt with U+00E9 and with "e" + U+0301 are equal; MQTT client ids
/// are byte strings [MQTT-3.1.3-4] like topics [MQTT-4.7.3-4], so those are two clients with two sessions.
/// Wraps the client's own `String`, so keying costs no extra allocation.
struct ClientIDKey: Hashable {
    let id: String

    init(_ id: String) { self.id = id }

    static func == (lhs: ClientIDKey, rhs: ClientIDKey) -> Bool {
        var left = lhs.id
        var right = rhs.id
        // withUTF8 hands out the native storage of these (decoded, hence native) strings without copying.
        return left.withUTF8 { leftBytes in
            right.withUTF8 { rightBytes in
                leftBytes.count == rightBytes.count
                    && (leftBytes.isEmpty
                        || bytesEqual(leftBytes.baseAddress, rightBytes.baseAddress, leftBytes.count))
            }
        }
    }

    func hash(into hasher: inout Hasher) {
        var bytes = id
        bytes.withUTF8 { hasher.combine(bytes: UnsafeRawBufferPointer($0)) }
    }
}

/// Byte equality of two buffers of `count` bytes (the core imports no C library for memcmp).
@inline(__always)
private func bytesEqual(_ left: UnsafePointer<UInt8>?, _ right: UnsafePointer<UInt8>?, _ count: Int) -> Bool {
    guard let left, let right else { return count == 0 }
    for index in 0..<count where left[index] != right[index] { return false }
    return true
}
