// Outbound messages (§3.3.5, §4.3–4.6): routing to sessions, the in-flight window, the queue, resending.
import MQTTCodec

extension Broker {
    /// In-flight QoS 1/2 deliveries per session; 0 means no limit other than the id space.
    var inflightLimit: Int {
        let configured = configuration.maxInflightMessages
        return configured > 0 ? min(configured, Int(UInt16.max)) : Int(UInt16.max)
    }

    /// Fans a message out to every session with a matching subscription, online or not [MQTT-4.5.0-1].
    /// A session with several matching filters gets one delivery at the highest granted QoS [MQTT-3.3.5-1].
    /// No allocation per message beyond the actions: sessions are de-duplicated by stamping them with the
    /// route's epoch and collected in a scratch array that keeps its capacity between messages.
    func route(_ message: Message, into actions: inout [Action]) {
        routeEpoch &+= 1
        let epoch = routeEpoch
        var matched = routeScratch
        routeScratch = []
        subscriptionTrie.forEachMatch(message.topic) { subscriber in
            subscriber.session._withUnsafeGuaranteedRef { session in
                if session.routeEpoch != epoch {
                    session.routeEpoch = epoch
                    session.routeQoS = subscriber.qos
                    matched.append(subscriber.session)
                } else if subscriber.qos > session.routeQoS {
                    session.routeQoS = subscriber.qos
                }
            }
        }
        let checksDeliveries = accessControl.checksDeliveries
        for reference in matched {
            reference._withUnsafeGuaranteedRef { session in
                if checksDeliveries
                    && !accessControl.mayReceive(
                        clientID: session.clientID, username: session.username, topic: message.topic)
                {
                    return
                }
                // Live forwards always carry RETAIN=0 [MQTT-3.3.1-9]; QoS is the lower of both [MQTT-3.8.4-6].
                deliver(message, qos: min(message.qos, session.routeQoS), retain: false, to: session, into: &actions)
            }
        }
        matched.removeAll(keepingCapacity: true)
        routeScratch = matched
    }

    /// One delivery to one session: sent now when the client is connected and the window allows, else queued.
    func deliver(_ message: Message, qos: QoS, retain: Bool, to session: Session, into actions: inout [Action]) {
        guard let connection = session.connection else {
            // Away: persistent sessions keep QoS 1/2 [MQTT-3.1.2-5], QoS 0 only when configured.
            if qos == .atMostOnce && !configuration.queueQoS0Messages { return }
            enqueue(QueuedMessage(message: message, qos: qos, retain: retain), for: session)
            return
        }
        if qos == .atMostOnce && session.queue.isEmpty {
            // DUP=0, no packet id [MQTT-4.3.1-1][MQTT-3.3.1-2]; QoS 0 needs no window slot. Behind a non-empty
            // queue it waits its turn, so the subscriber sees messages in arrival order [MQTT-4.6.0-5].
            actions.append(
                .send(
                    connection,
                    .publish(Delivery(message: message, qos: qos, retain: retain, dup: false, packetID: nil))))
            counters.messagesSent += 1
            return
        }
        if session.queue.isEmpty && session.inflight.count < inflightLimit, let id = session.inflight.allocateID() {
            let entry = session.inflight.insert(id, message: message, qos: qos, retain: retain)
            actions.append(.send(connection, entry.packet(dup: false)))  // first send: DUP=0 [MQTT-4.3.2-1]
            counters.messagesSent += 1
            return
        }
        enqueue(QueuedMessage(message: message, qos: qos, retain: retain), for: session)
        pump(session, into: &actions)
    }

    /// Appends within `maxQueuedMessages` / `maxQueuedBytes`; beyond them the delivery is dropped and counted,
    /// and the log says so once per episode of drops.
    private func enqueue(_ item: QueuedMessage, for session: Session) {
        let countLimit = configuration.maxQueuedMessages
        let byteLimit = configuration.maxQueuedBytes
        let full =
            (countLimit > 0 && session.queue.count >= countLimit)
            || (byteLimit > 0 && session.queue.bytes + item.message.payload.count > byteLimit)
        if full {
            counters.messagesDropped += 1
            if !session.isDropping {
                session.isDropping = true
                log(.notice, "Outgoing messages are being dropped for client \(session.clientID).")
            }
            return
        }
        session.isDropping = false
        session.queue.append(item)
    }

    /// Sends queued deliveries in order while the client is connected and the in-flight window has room.
    /// QoS 1/2 deliveries get their packet id here: non-zero and unique among those in flight [MQTT-2.3.1-4].
    func pump(_ session: Session, into actions: inout [Action]) {
        guard let connection = session.connection else { return }
        let limit = inflightLimit
        while let next = session.queue.first {
            if next.qos == .atMostOnce {
                _ = session.queue.popFirst()
                actions.append(
                    .send(
                        connection,
                        .publish(
                            Delivery(
                                message: next.message, qos: next.qos, retain: next.retain, dup: false, packetID: nil))
                    ))
                counters.messagesSent += 1
                continue
            }
            guard session.inflight.count < limit, let id = session.inflight.allocateID() else { return }
            _ = session.queue.popFirst()
            let entry = session.inflight.insert(id, message: next.message, qos: next.qos, retain: next.retain)
            actions.append(.send(connection, entry.packet(dup: false)))  // first send: DUP=0 [MQTT-4.3.2-1]
            counters.messagesSent += 1
        }
    }

    /// After a CONNACK resuming a session: unacknowledged PUBLISHes again with DUP=1 and their ids, PUBRELs
    /// for those past PUBREC, in their original order [MQTT-4.4.0-1][MQTT-3.3.1-1][MQTT-4.6.0-1]; then the queue.
    func resume(_ session: Session, into actions: inout [Action]) {
        guard let connection = session.connection else { return }
        for entry in session.inflight.inResendOrder {
            actions.append(.send(connection, entry.packet(dup: true)))
            if entry.state != .awaitingPubcomp { counters.messagesSent += 1 }
        }
        pump(session, into: &actions)
    }
}
