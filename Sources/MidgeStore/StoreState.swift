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
    /// Deliveries holding each body: queued ones and in-flight ones still at `.publishSent`. Derived from the
    /// sessions, so it compares equal whenever they do.
    private var references: [UInt64: Int] = [:]

    public init() {}

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
            if sessions[clientID] == nil {
                sessions[clientID] = PersistentSession(clientID: clientID, lastSeen: seconds)
            } else {
                sessions[clientID]?.lastSeen = seconds
            }
        case .sessionEnded(let clientID):
            guard let session = sessions.removeValue(forKey: clientID) else { return }
            for delivery in session.queue { release(delivery.messageID) }
            for delivery in session.inFlight.inSendOrder where delivery.state == .publishSent {
                release(delivery.messageID)
            }
        case .sessionSeen(let clientID, let seconds):
            sessions[clientID]?.lastSeen = seconds
        case .subscriptionAdded(let clientID, let filter, let qos):
            sessions[clientID]?.subscriptions[filter] = qos
        case .subscriptionRemoved(let clientID, let filter):
            sessions[clientID]?.subscriptions[filter] = nil
        case .messageStored(let id, let topic, let payload, let qos):
            messages[id] = StoredMessage(topic: topic, payload: payload, qos: qos)
        case .deliveryQueued(let clientID, let messageID, let qos, let retain):
            // A delivery without its body could never be sent again: such a record is ignored.
            guard let index = sessions.index(forKey: clientID), messages[messageID] != nil else { return }
            sessions.values[index].queue.append(QueuedDelivery(messageID: messageID, qos: qos, retain: retain))
            references[messageID, default: 0] += 1
        case .deliveryInFlight(let clientID, let messageID, let packetID, let qos, let retain, let state):
            applyInFlight(
                clientID: clientID,
                InflightDelivery(messageID: messageID, packetID: packetID, qos: qos, retain: retain, state: state))
        case .deliveryCompleted(let clientID, .packet(let packetID)):
            guard let delivery = sessions[clientID]?.inFlight.remove(packetID) else { return }
            if delivery.state == .publishSent { release(delivery.messageID) }
        case .deliveryCompleted(let clientID, .queued(let messageID)):
            guard let delivery = sessions[clientID]?.queue.removeFirst(messageID: messageID) else { return }
            release(delivery.messageID)
        case .inboundReceived(let clientID, let packetID):
            sessions[clientID]?.inboundQoS2.insert(packetID)
        case .inboundReleased(let clientID, let packetID):
            sessions[clientID]?.inboundQoS2.remove(packetID)
        }
    }

    private mutating func applyInFlight(clientID: String, _ delivery: InflightDelivery) {
        // No local copy of the session is kept: it would make every mutation below copy the session's queue.
        // Index-based access borrows the session in place: `sessions[clientID]` as an rvalue copies it (a retain
        // and release of each of its collections), which was ~10% of the writer's time at 180k messages/s.
        guard let index = sessions.index(forKey: clientID) else { return }
        let holdsBody = delivery.state == .publishSent
        // A PUBLISH that cannot be resent for want of its body is not recorded; a PUBREL needs no body.
        guard !holdsBody || messages[delivery.messageID] != nil else { return }
        if holdsBody, let current = sessions.values[index].inFlight[delivery.packetID], current.state == .publishSent,
            current.messageID == delivery.messageID
        {
            // The same PUBLISH recorded again (moved to the end of the resend order): it keeps the reference it
            // has. Taking one from the queue would drop another queued copy of the message, body and all.
            sessions.values[index].inFlight.upsert(delivery)
            return
        }
        // The reference moves from the queued delivery, or is a new one; it is taken before the replaced entry
        // releases its own, so a body both refer to survives.
        if holdsBody && sessions.values[index].queue.removeFirst(messageID: delivery.messageID) == nil {
            references[delivery.messageID, default: 0] += 1
        }
        if let replaced = sessions.values[index].inFlight.remove(delivery.packetID), replaced.state == .publishSent {
            release(replaced.messageID)
        }
        sessions.values[index].inFlight.upsert(delivery)
    }

    private mutating func release(_ messageID: UInt64) {
        guard let count = references[messageID] else { return }
        if count > 1 {
            references[messageID] = count - 1
        } else {
            references[messageID] = nil
            messages[messageID] = nil
        }
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
