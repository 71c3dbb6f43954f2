// What a persistent session keeps across restarts (MQTT 3.1.1 §3.1.2.4): subscriptions, queue, in-flight flows.
import MQTTCodec

/// A message body shared by every delivery that refers to it.
public struct StoredMessage: Sendable, Equatable {
    public let topic: TopicName
    public let payload: [UInt8]
    public let qos: QoS
    /// Deliveries holding the body: queued ones and in-flight ones still at `.publishSent`. Derived from the
    /// sessions, so it compares equal whenever they do; kept here rather than in a table of its own, which cost a
    /// second hash lookup per delivery record.
    var references = 0
}

/// The retained message of one topic [MQTT-3.3.1-5].
public struct RetainedMessage: Sendable, Equatable {
    public let payload: [UInt8]
    public let qos: QoS
}

/// A delivery waiting in a session's queue: it gets a packet id only when it is sent.
public struct QueuedDelivery: Sendable, Equatable {
    public let messageID: UInt64
    public let qos: QoS
    public let retain: Bool
}

/// A delivery holding a packet id.
public struct InflightDelivery: Sendable, Equatable {
    public let messageID: UInt64
    public let packetID: PacketID
    public let qos: QoS
    public let retain: Bool
    public let state: DeliveryState
}

/// A FIFO of deliveries: O(1) at the front, where deliveries leave it almost every time.
public struct DeliveryQueue: RandomAccessCollection, Sendable, Equatable {
    private var storage: [QueuedDelivery] = []
    private var head = 0

    public init() {}

    public var startIndex: Int { 0 }
    public var endIndex: Int { storage.count - head }
    public subscript(position: Int) -> QueuedDelivery { storage[head + position] }

    mutating func append(_ delivery: QueuedDelivery) {
        storage.append(delivery)
    }

    /// Removes the first delivery of this message; nil when none is queued.
    mutating func removeFirst(messageID: UInt64) -> QueuedDelivery? {
        guard let index = storage[head...].firstIndex(where: { $0.messageID == messageID }) else { return nil }
        let delivery = storage[index]
        if index == head {
            head += 1
            // Reclaim the consumed prefix once it is most of the storage: amortised O(1) per removal.
            if head == storage.count {
                storage.removeAll(keepingCapacity: true)
                head = 0
            } else if head >= 64 && head * 2 >= storage.count {
                storage.removeFirst(head)
                head = 0
            }
        } else {
            storage.remove(at: index)
        }
        return delivery
    }

    public static func == (lhs: DeliveryQueue, rhs: DeliveryQueue) -> Bool {
        lhs.elementsEqual(rhs)
    }
}

/// The in-flight deliveries of a session by packet id, remembering the order they must be resent in
/// [MQTT-4.6.0-1]: a PUBLISH in the order it was first sent, a PUBREL in the order its PUBREC arrived.
public struct InflightDeliveries: Sendable, Equatable {
    private var entries: [UInt16: (delivery: InflightDelivery, order: UInt64)] = [:]
    private var nextOrder: UInt64 = 0

    public init() {}

    public var count: Int { entries.count }
    public var isEmpty: Bool { entries.isEmpty }

    public subscript(packetID: PacketID) -> InflightDelivery? { entries[packetID.rawValue]?.delivery }

    func holds(_ packetID: UInt16) -> Bool { entries[packetID] != nil }

    /// Every in-flight delivery, oldest first: the order to resend them on reconnect.
    public var inSendOrder: [InflightDelivery] {
        entries.values.sorted { $0.order < $1.order }.map(\.delivery)
    }

    /// Inserts or replaces the delivery of this packet id as the newest one.
    mutating func upsert(_ delivery: InflightDelivery) {
        nextOrder += 1
        entries[delivery.packetID.rawValue] = (delivery, nextOrder)
    }

    mutating func remove(_ packetID: PacketID) -> InflightDelivery? {
        entries.removeValue(forKey: packetID.rawValue)?.delivery
    }

    /// Equal when the same deliveries are in flight in the same order; the order counters themselves differ
    /// between a live state and one rebuilt from a snapshot.
    public static func == (lhs: InflightDeliveries, rhs: InflightDeliveries) -> Bool {
        lhs.count == rhs.count && lhs.inSendOrder == rhs.inSendOrder
    }
}

/// One persistent session (CleanSession=0) [MQTT-3.1.2-4].
public struct PersistentSession: Sendable, Equatable {
    public let clientID: String
    /// Unix seconds when the client was last connected, for `persistent_client_expiration`.
    public internal(set) var lastSeen: Int64
    /// Granted QoS by filter [MQTT-3.8.4-3].
    public internal(set) var subscriptions: [TopicFilter: QoS] = [:]
    public internal(set) var queue = DeliveryQueue()
    public internal(set) var inFlight = InflightDeliveries()
    /// Inbound QoS 2 packet ids whose PUBREL has not arrived [MQTT-4.3.3-2].
    public internal(set) var inboundQoS2: Set<PacketID> = []

    init(clientID: String, lastSeen: Int64) {
        self.clientID = clientID
        self.lastSeen = lastSeen
    }
}
