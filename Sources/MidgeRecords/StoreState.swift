// The durable state a sequence of records describes; `apply` is the one place record semantics live.
import MQTTCodec

/// Retained messages, persistent sessions and the message bodies their deliveries refer to.
///
/// Recovery rebuilds it from a snapshot and the log; the store's writer keeps its own copy current to write
/// snapshots from. Equal states mean equal durable content, whatever history produced them.
public struct StoreState: Sendable, Equatable {
    public private(set) var retained: [TopicName: RetainedMessage] = [:]
    public private(set) var sessions: [String: PersistentSession] = [:]
    /// Bodies by message id. A body goes when its last queued or unacknowledged-PUBLISH delivery does.
    public private(set) var messages: [UInt64: StoredMessage] = [:]
    /// The session the last record named and where it is in `sessions`: most records name the same session as the
    /// one before, and comparing the same String storage costs less than hashing it (hashing was a fifth of
    /// `apply` in the writer). Dropped whenever a session is added or removed, which moves indices. Not state.
    private var lastSession: (clientID: String, index: Dictionary<String, PersistentSession>.Index)?

    public init() {}

    public static func == (lhs: StoreState, rhs: StoreState) -> Bool {
        lhs.retained == rhs.retained && lhs.sessions == rhs.sessions && lhs.messages == rhs.messages
    }

    public init(records: some Sequence<StoreRecord>) {
        for record in records { apply(record) }
    }

    public mutating func apply(_ record: StoreRecord) {
        switch record {
        case .retainedSet(let topic, let payload, let qos):
            // An empty retained payload is a deletion and is never stored itself [MQTT-3.3.1-10][MQTT-3.3.1-11].
            retained[topic] = payload.isEmpty ? nil : RetainedMessage(payload: payload, qos: qos)
        case .retainedCleared(let topic):
            retained[topic] = nil
        case .sessionCreated(let clientID, let seconds):
            if let index = sessionIndex(clientID) {
                sessions.values[index].lastSeen = seconds
            } else {
                lastSession = nil
                sessions[clientID] = PersistentSession(clientID: clientID, lastSeen: seconds)
            }
        case .sessionEnded(let clientID):
            lastSession = nil
            guard let session = sessions.removeValue(forKey: clientID) else { return }
            for delivery in session.queue { release(delivery.messageID) }
            for delivery in session.inFlight.inSendOrder where delivery.state == .publishSent {
                release(delivery.messageID)
            }
        case .sessionSeen(let clientID, let seconds):
            guard let index = sessionIndex(clientID) else { return }
            sessions.values[index].lastSeen = seconds
        case .subscriptionAdded(let clientID, let filter, let qos):
            guard let index = sessionIndex(clientID) else { return }
            sessions.values[index].subscriptions[filter] = qos
        case .subscriptionRemoved(let clientID, let filter):
            guard let index = sessionIndex(clientID) else { return }
            sessions.values[index].subscriptions[filter] = nil
        case .messageStored(let id, let topic, let payload, let qos):
            // Stored again (a retained body for a later subscriber): the deliveries holding it keep holding it.
            let references = messages.index(forKey: id).map { messages.values[$0].references } ?? 0
            messages[id] = StoredMessage(topic: topic, payload: payload, qos: qos, references: references)
        case .deliveryQueued(let clientID, let messageID, let qos, let retain):
            // A delivery without its body could never be sent again: such a record is ignored.
            guard let body = messages.index(forKey: messageID), let index = sessionIndex(clientID) else { return }
            sessions.values[index].queue.append(QueuedDelivery(messageID: messageID, qos: qos, retain: retain))
            messages.values[body].references += 1
        case .deliveryInFlight(let clientID, let messageID, let packetID, let qos, let retain, let state):
            applyInFlight(
                clientID: clientID,
                InflightDelivery(messageID: messageID, packetID: packetID, qos: qos, retain: retain, state: state))
        case .deliveryCompleted(let clientID, .packet(let packetID)):
            guard let index = sessionIndex(clientID), let delivery = sessions.values[index].inFlight.remove(packetID)
            else { return }
            if delivery.state == .publishSent { release(delivery.messageID) }
        case .deliveryCompleted(let clientID, .queued(let messageID)):
            guard let index = sessionIndex(clientID),
                let delivery = sessions.values[index].queue.removeFirst(messageID: messageID)
            else { return }
            release(delivery.messageID)
        case .inboundReceived(let clientID, let packetID):
            guard let index = sessionIndex(clientID) else { return }
            sessions.values[index].inboundQoS2.insert(packetID)
        case .inboundReleased(let clientID, let packetID):
            guard let index = sessionIndex(clientID) else { return }
            sessions.values[index].inboundQoS2.remove(packetID)
        }
    }

    private mutating func sessionIndex(_ clientID: String) -> Dictionary<String, PersistentSession>.Index? {
        if let lastSession, lastSession.clientID == clientID { return lastSession.index }
        guard let index = sessions.index(forKey: clientID) else { return nil }
        lastSession = (clientID, index)
        return index
    }

    private mutating func applyInFlight(clientID: String, _ delivery: InflightDelivery) {
        guard let index = sessionIndex(clientID) else { return }
        // A PUBLISH that cannot be resent for want of its body is not recorded; a PUBREL needs no body.
        let body = messages.index(forKey: delivery.messageID)
        guard delivery.state != .publishSent || body != nil else { return }
        // The session is changed in place through `values[index]`: read through the getter it would be copied,
        // collections and all (~10% of the writer's time at 180k messages/s).
        let (takesReference, released) = Self.applyInFlight(delivery, to: &sessions.values[index])
        // The new reference is taken before the replaced entry releases its own, so a body both refer to survives.
        if takesReference, let body { messages.values[body].references += 1 }
        if let released { release(released) }
    }

    /// Whether the delivery takes a new reference to its body, and the body the entry it replaces let go of.
    private static func applyInFlight(_ delivery: InflightDelivery, to session: inout PersistentSession)
        -> (takesReference: Bool, released: UInt64?)
    {
        let holdsBody = delivery.state == .publishSent
        if holdsBody, let current = session.inFlight[delivery.packetID], current.state == .publishSent,
            current.messageID == delivery.messageID
        {
            // The same PUBLISH recorded again (moved to the end of the resend order): it keeps the reference it
            // has. Taking one from the queue would drop another queued copy of the message, body and all.
            session.inFlight.upsert(delivery)
            return (false, nil)
        }
        // The reference moves from the queued delivery, or is a new one.
        let takesReference = holdsBody && session.queue.removeFirst(messageID: delivery.messageID) == nil
        var released: UInt64?
        if let replaced = session.inFlight.remove(delivery.packetID), replaced.state == .publishSent {
            released = replaced.messageID
        }
        session.inFlight.upsert(delivery)
        return (takesReference, released)
    }

    private mutating func release(_ messageID: UInt64) {
        guard let index = messages.index(forKey: messageID) else { return }
        if Self.dropReference(&messages.values[index]) { messages.remove(at: index) }
    }

    /// Whether that was the last reference. In place: the getter would copy the body's arrays.
    private static func dropReference(_ message: inout StoredMessage) -> Bool {
        guard message.references > 0 else { return false }
        message.references -= 1
        return message.references == 0
    }

    /// Whether the session at `index` of `sessions` has a delivery in flight with this packet id. Mutating only to
    /// read the session in place: through the dictionary's getter it would be copied, collections and all.
    package mutating func hasInFlight(at index: Dictionary<String, PersistentSession>.Index, packetID: UInt16) -> Bool {
        Self.holds(&sessions.values[index], packetID)
    }

    private static func holds(_ session: inout PersistentSession, _ packetID: UInt16) -> Bool {
        session.inFlight.holds(packetID)
    }

    /// The first message id that no body or delivery in this state uses: where the caller's allocator
    /// continues after a restart.
    public var nextMessageID: UInt64 {
        var highest = messages.keys.max() ?? 0
        for session in sessions.values {
            for delivery in session.queue { highest = max(highest, delivery.messageID) }
            for delivery in session.inFlight.inSendOrder { highest = max(highest, delivery.messageID) }
        }
        return highest &+ 1
    }

    /// Client ids of sessions not seen for `olderThan` seconds at `now` (both Unix seconds), sorted. The caller
    /// leaves out clients that are connected and writes `sessionEnded` for the rest.
    public func expiredSessions(now: Int64, olderThan seconds: Int64) -> [String] {
        sessions.values.filter { session in
            // `lastSeen` comes from disk: an age too large for Int64 is older than any limit when `lastSeen` is
            // in the past, and younger than any when it is in the future.
            let (age, overflow) = now.subtractingReportingOverflow(session.lastSeen)
            return overflow ? now > session.lastSeen : age >= seconds
        }.map(\.clientID).sorted()
    }

    /// Records that rebuild exactly this state when applied to an empty one: the snapshot's contents.
    /// Bodies come first so that the deliveries referring to them find them.
    public func forEachRecord<E: Error>(_ body: (StoreRecord) throws(E) -> Void) throws(E) {
        for (id, message) in messages {
            try body(.messageStored(id: id, topic: message.topic, payload: message.payload, qos: message.qos))
        }
        for (topic, message) in retained {
            try body(.retainedSet(topic: topic, payload: message.payload, qos: message.qos))
        }
        for session in sessions.values {
            let clientID = session.clientID
            try body(.sessionCreated(clientID: clientID, unixSeconds: session.lastSeen))
            for (filter, qos) in session.subscriptions {
                try body(.subscriptionAdded(clientID: clientID, filter: filter, qos: qos))
            }
            for packetID in session.inboundQoS2 {
                try body(.inboundReceived(clientID: clientID, packetID: packetID))
            }
            // In flight before queued: an in-flight PUBLISH replayed first takes no queued delivery with it.
            for delivery in session.inFlight.inSendOrder {
                try body(
                    .deliveryInFlight(
                        clientID: clientID, messageID: delivery.messageID, packetID: delivery.packetID,
                        qos: delivery.qos, retain: delivery.retain, state: delivery.state))
            }
            for delivery in session.queue {
                try body(
                    .deliveryQueued(
                        clientID: clientID, messageID: delivery.messageID, qos: delivery.qos, retain: delivery.retain))
            }
        }
    }

    /// `forEachRecord` collected into an array.
    public var records: [StoreRecord] {
        var records: [StoreRecord] = []
        forEachRecord { records.append($0) }
        return records
    }
}
