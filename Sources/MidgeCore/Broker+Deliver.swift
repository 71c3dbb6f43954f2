// Outbound messages (§3.3.5, §4.3–4.6): routing to sessions, the in-flight window, the queue and its full policy.
import MQTTCodec

extension Broker {
    /// In-flight QoS 1/2 deliveries per session; 0 means no limit other than the id space.
    var inflightLimit: Int {
        let configured = configuration.maxInflightMessages
        return configured > 0 ? min(configured, Int(UInt16.max)) : Int(UInt16.max)
    }

    /// A bridge (a broker, not a device) gets at least `bridgeInflightMinimum` in flight: each acknowledgement
    /// crosses the other broker first, and 20 per round trip held a bridged QoS 1 stream to 13,000 msg/s on
    /// loopback (a WAN link would be far worse). 100 is what cloud IoT hubs accept in flight per connection.
    func inflightLimit(for session: Session) -> Int {
        session.isBridge ? max(inflightLimit, Self.bridgeInflightMinimum) : inflightLimit
    }

    public static let bridgeInflightMinimum = 100

    /// `max_inflight_bytes` as a bound that is always compared: no limit is `Int.max`, so the window check costs
    /// one comparison rather than a test of the setting and then one.
    var inflightByteLimit: Int {
        let configured = configuration.maxInflightBytes
        return configured > 0 ? configured : Int.max
    }

    /// Fans a message out to every session with a matching subscription, online or not [MQTT-4.5.0-1].
    /// A session with several matching filters gets one delivery at the highest granted QoS [MQTT-3.3.5-1].
    /// No allocation per message beyond the actions: sessions are de-duplicated by stamping them with the
    /// route's epoch and collected in a list that keeps its capacity between messages. A publisher remembers the
    /// list for its topic: its next PUBLISH to the same topic, with no subscription changed since, skips the walk.
    /// `publisher` is the client it came from, held back if it overfills a queue under `QueueFullPolicy.block`.
    /// `retain` is the RETAIN flag it was published with and `origin` the session that published it (a Will's too),
    /// both for bridge sessions only (`Session.isBridge`).
    func route(
        _ message: Message, retain: Bool, from publisher: ClientConnection?, origin: Session?,
        into actions: inout [Action]
    ) {
        journal?.lastStoredMessage = 0
        let published = Publication(retain: retain, origin: origin.map(ObjectIdentifier.init))
        if let cache = publisher?.routeCache, cache.version == subscriptionTrie.version, cache.topic == message.topic,
            !cache.reachesSharedGroups
        {
            deliver(message, published, to: cache.targets, from: publisher, into: &actions)
            return
        }
        var targets: [RouteTarget] = []
        if let cache = publisher?.routeCache { swap(&targets, &cache.targets) } else { swap(&targets, &routeScratch) }
        targets.removeAll(keepingCapacity: true)
        collectTargets(of: message.topic, into: &targets)
        deliver(message, published, to: targets, from: publisher, into: &actions)
        // One member of each shared group, picked afresh for every message, so a remembered route never holds them.
        let reachesSharedGroups = !sharedPicks.isEmpty
        if reachesSharedGroups {
            var picks: [RouteTarget] = []
            swap(&picks, &sharedPicks)
            deliver(message, published.toSharedGroup, to: picks, from: publisher, into: &actions)
            picks.removeAll(keepingCapacity: true)
            swap(&picks, &sharedPicks)
        }
        if let publisher {
            if let cache = publisher.routeCache {
                cache.topic = message.topic
                cache.version = subscriptionTrie.version
                cache.reachesSharedGroups = reachesSharedGroups
                swap(&targets, &cache.targets)
            } else {
                publisher.routeCache = RouteCache(
                    topic: message.topic, version: subscriptionTrie.version, targets: targets,
                    reachesSharedGroups: reachesSharedGroups)
            }
        } else {
            swap(&targets, &routeScratch)
        }
    }

    /// Walks the trie once, appending each matching session once with the highest QoS its filters grant, and one
    /// member of each matching shared group to `sharedPicks`.
    private func collectTargets(of topic: TopicName, into targets: inout [RouteTarget]) {
        routeEpoch &+= 1
        if routeEpoch == 0 {
            // 32-bit stamps keep sessions small; when they wrap, every stamp is reset so none looks current.
            for session in sessions.values { session.routeEpoch = 0 }
            routeEpoch = 1
        }
        let epoch = routeEpoch
        subscriptionTrie.forEachMatch(
            topic,
            { subscriber in
                subscriber.session._withUnsafeGuaranteedRef { session in
                    if session.routeEpoch != epoch {
                        session.routeEpoch = epoch
                        session.routeQoS = subscriber.qos
                        targets.append(RouteTarget(session: subscriber.session, qos: subscriber.qos))
                    } else if subscriber.qos > session.routeQoS {
                        session.routeQoS = subscriber.qos
                    }
                }
            },
            group: { group in
                if let member = pickMember(of: group) { sharedPicks.append(member) }
            })
        // A session matched by several filters was listed at its first; it gets the highest grant.
        for index in targets.indices {
            targets[index].qos = targets[index].session._withUnsafeGuaranteedRef { $0.routeQoS }
        }
    }

    /// The member of a shared group that gets the next message: round robin over the members, preferring one that
    /// is connected and can send it at once, then one connected with room in its queue, then any member (an offline
    /// persistent member queues it, within its limits). A group's copy is separate from what the same session gets
    /// through ordinary subscriptions, as each group is its own subscriber.
    private func pickMember(of group: SharedGroup) -> RouteTarget? {
        let members = group.members.entries
        guard !members.isEmpty else { return nil }
        let start = group.cursor % members.count
        /// The first member in turn from `start` that passes `test`.
        func first(where test: (Session) -> Bool) -> Int? {
            (0..<members.count).lazy.map { (start + $0) % members.count }.first { index in
                members[index].session._withUnsafeGuaranteedRef { test($0) }
            }
        }
        let index =
            first { $0.connection != nil && $0.queueIsEmpty && !$0.outputBlocked }
            ?? first { $0.connection != nil && !isFull($0.activeFlows.queue, adding: 0) } ?? start
        group.cursor = index + 1
        return RouteTarget(session: members[index].session, qos: members[index].qos)
    }

    private func deliver(
        _ message: Message, _ published: Publication, to targets: [RouteTarget], from publisher: ClientConnection?,
        into actions: inout [Action]
    ) {
        let checksDeliveries = self.checksDeliveries
        // `upgrade_outgoing_qos` is decided once per message, as the ceiling below: the loop pays no branch for it.
        let ceiling = configuration.upgradeOutgoingQoS ? QoS.exactlyOnce : message.qos
        for target in targets {
            target.session._withUnsafeGuaranteedRef { session in
                // Each session is checked by its client's own ACL or that of the listener it last connected through.
                if checksDeliveries
                    && !accessControl(of: session).mayReceive(
                        clientID: session.clientID, username: session.username, topic: message.topic)
                {
                    return
                }
                // Live forwards carry RETAIN=0 [MQTT-3.3.1-9], except to a bridge; QoS is the lower of both
                // [MQTT-3.8.4-6]. Ordinary sessions pay one flag test for bridges.
                var retain = false
                if session.isBridge {
                    if ObjectIdentifier(session) == published.origin { return }
                    retain = published.retain
                }
                deliver(
                    message, qos: min(ceiling, target.qos), retain: retain, to: session, from: publisher,
                    into: &actions)
            }
        }
    }

    /// One delivery to one session: sent now when the client is connected, its output is flowing and the window
    /// allows, else queued.
    func deliver(
        _ message: Message, qos: QoS, retain: Bool, to session: Session, from publisher: ClientConnection?,
        into actions: inout [Action]
    ) {
        guard let connection = session.connection else {
            // Away: persistent sessions keep QoS 1/2 [MQTT-3.1.2-5], QoS 0 only when configured.
            if qos == .atMostOnce && !configuration.queueQoS0Messages { return }
            if enqueue(QueuedMessage(message: message, qos: qos, retain: retain), for: session, from: nil),
                let journal, qos != .atMostOnce, !session.cleanSession
            {
                journal.recordDelivery(message, qos: qos, retain: retain, to: session.clientID, packetID: nil)
            }
            return
        }
        // Behind a non-empty queue every delivery waits its turn, so the subscriber sees messages in arrival
        // order [MQTT-4.6.0-5]; with the output congested, QoS 0 waits too.
        if session.queueIsEmpty && !session.outputBlocked {
            if qos == .atMostOnce {
                // DUP=0, no packet id [MQTT-4.3.1-1][MQTT-3.3.1-2]; QoS 0 needs no window slot.
                sendDelivery(
                    .publish(Delivery(message: message, qos: qos, retain: retain, dup: false, packetID: nil)),
                    qos: .atMostOnce, to: connection, of: session, into: &actions)
                countOutput(message, to: connection, of: session)
                counters.messagesSent += 1
                return
            }
            let flows = session.activeFlows
            // mosquitto's rule: room while fewer bytes than the limit are in flight, so a larger message goes alone.
            if flows.inflight.count < inflightLimit(for: session), flows.inflight.payloadBytes < inflightByteLimit,
                let id = flows.inflight.allocateID()
            {
                let entry = flows.inflight.insert(id, message: message, qos: qos, retain: retain)
                if let journal, !session.cleanSession {
                    journal.recordDelivery(message, qos: qos, retain: retain, to: session.clientID, packetID: id)
                }
                // First send: DUP=0 [MQTT-4.3.2-1].
                sendDelivery(entry.packet(dup: false), qos: entry.qos, to: connection, of: session, into: &actions)
                countOutput(message, to: connection, of: session)
                counters.messagesSent += 1
                return
            }
        }
        if enqueue(QueuedMessage(message: message, qos: qos, retain: retain), for: session, from: publisher),
            let journal, qos != .atMostOnce, !session.cleanSession
        {
            journal.recordDelivery(message, qos: qos, retain: retain, to: session.clientID, packetID: nil)
        }
    }

    /// Appends within `maxQueuedMessages` / `maxQueuedBytes`. At the limits, a connected session under
    /// `QueueFullPolicy.block` takes the delivery anyway and holds its publisher back; otherwise the delivery is
    /// dropped and counted, and the log says so once per episode of drops. Returns whether it was queued.
    @discardableResult
    private func enqueue(_ item: QueuedMessage, for session: Session, from publisher: ClientConnection?) -> Bool {
        let flows = session.activeFlows
        if memoryCeilingReached {
            // Above `memory_limit` nothing new is queued, whatever the policy: holding publishers would not free
            // memory, and the limit is what keeps the broker serving the clients it has.
            counters.messagesDropped += 1
            counters.messagesDroppedForMemory += 1
            flows.droppedInEpisode &+= 1
            if !flows.isDropping {
                flows.isDropping = true
                log(
                    .notice, "Outgoing messages are being dropped for client \(session.clientID): memory_limit reached."
                )
            }
            return false
        }
        if isFull(flows.queue, adding: item.message.payload.count) {
            guard configuration.queueFullPolicy == .block, session.connection != nil else {
                counters.messagesDropped += 1
                flows.droppedInEpisode &+= 1
                if !flows.isDropping {
                    flows.isDropping = true
                    log(.notice, "Outgoing messages are being dropped for client \(session.clientID).")
                }
                return false
            }
            // What is already decoded or on its way from a held publisher still lands here: the overshoot is
            // bounded by the driver's per-connection read and the loops' hand-off backlog, not by this queue.
            if let publisher { hold(publisher, for: session, flows) }
        } else if flows.isDropping {
            endDropEpisode(of: session, flows)
        }
        flows.queue.append(item)
        return true
    }

    /// The queue has room again: the log says how many deliveries the episode cost.
    private func endDropEpisode(of session: Session, _ flows: SessionFlows) {
        flows.isDropping = false
        let dropped = flows.droppedInEpisode
        log(.notice, "Client \(session.clientID) has room again; \(dropped) messages to it were dropped.")
        flows.droppedInEpisode = 0
    }

    func isFull(_ queue: MessageQueue, adding bytes: Int) -> Bool {
        let countLimit = configuration.maxQueuedMessages
        let byteLimit = configuration.maxQueuedBytes
        return (countLimit > 0 && queue.count >= countLimit) || (byteLimit > 0 && queue.bytes + bytes > byteLimit)
    }

    /// Half the limits: holding and releasing around one mark would pause and resume publishers per message.
    private func hasDrainedEnough(_ queue: MessageQueue) -> Bool {
        let countLimit = configuration.maxQueuedMessages
        let byteLimit = configuration.maxQueuedBytes
        return (countLimit == 0 || queue.count <= countLimit / 2) && (byteLimit == 0 || queue.bytes <= byteLimit / 2)
    }

    /// Tells the driver to stop reading the publisher, once however many full queues it feeds.
    private func hold(_ publisher: ClientConnection, for session: Session, _ flows: SessionFlows) {
        guard connections[publisher.id] === publisher, flows.heldPublisherIDs.insert(publisher.id.rawValue).inserted
        else { return }
        if flows.heldPublishers.isEmpty {
            log(.debug, "Queue of client \(session.clientID) is full; holding back the clients publishing to it.")
        }
        flows.heldPublishers.append(publisher)
        publisher.holdCount += 1
        counters.publishersHeld += 1
        if publisher.holdCount == 1 { readingChanges.append(.pause(publisher.id)) }
    }

    /// Lets go of every publisher the session holds; those no other full queue holds are read again.
    func releasePublishers(heldBy session: Session) {
        guard let flows = session.flows, !flows.heldPublishers.isEmpty else { return }
        for publisher in flows.heldPublishers {
            publisher.holdCount -= 1
            // A publisher that has gone meanwhile is skipped: its connection is closed or closing.
            guard publisher.holdCount == 0, connections[publisher.id] === publisher else { continue }
            // Its unread packets were waiting on us, not silence on its part [MQTT-3.1.2-24].
            publisher.lastPacketReceived = max(publisher.lastPacketReceived, currentTime)
            readingChanges.append(.resume(publisher.id))
        }
        flows.heldPublishers = []
        flows.heldPublisherIDs = []
    }

    /// Sends queued deliveries in order while the client is connected, its output flows and the in-flight window
    /// has room. QoS 1/2 deliveries get their packet id here: non-zero and unique among those in flight
    /// [MQTT-2.3.1-4]. Releases held publishers once the queue has drained far enough.
    func pump(_ session: Session, into actions: inout [Action]) {
        guard let connection = session.connection, !session.outputBlocked, let flows = session.flows else { return }
        let limit = inflightLimit(for: session)
        let byteLimit = inflightByteLimit
        while !session.outputBlocked, let next = flows.queue.first {
            if next.qos == .atMostOnce {
                _ = flows.queue.popFirst()
                sendDelivery(
                    .publish(
                        Delivery(message: next.message, qos: next.qos, retain: next.retain, dup: false, packetID: nil)),
                    qos: .atMostOnce, to: connection, of: session, into: &actions)
                counters.messagesSent += 1
                countOutput(next.message, to: connection, of: session)
                continue
            }
            guard flows.inflight.count < limit, flows.inflight.payloadBytes < byteLimit,
                let id = flows.inflight.allocateID()
            else { break }
            _ = flows.queue.popFirst()
            let entry = flows.inflight.insert(id, message: next.message, qos: next.qos, retain: next.retain)
            if let journal, !session.cleanSession {
                journal.recordDelivery(
                    next.message, qos: next.qos, retain: next.retain, to: session.clientID, packetID: id,
                    fromQueue: true)
            }
            // First send: DUP=0 [MQTT-4.3.2-1].
            sendDelivery(entry.packet(dup: false), qos: entry.qos, to: connection, of: session, into: &actions)
            counters.messagesSent += 1
            countOutput(next.message, to: connection, of: session)
        }
        if flows.isDropping && !isFull(flows.queue, adding: 0) { endDropEpisode(of: session, flows) }
        if !flows.heldPublishers.isEmpty && hasDrainedEnough(flows.queue) {
            releasePublishers(heldBy: session)
        }
    }

    /// Counts a delivery handed to the driver against the output window. Confirmation is asked for at half the
    /// window, so a driver that keeps up answers before the window is full and the stream never waits; a full
    /// window blocks the session's output (deliveries queue) until the answer comes.
    @inline(__always)
    func countOutput(_ message: Message, to connection: ConnectionID, of session: Session) {
        guard configuration.outputWindowBytes > 0 else { return }
        let flows = session.activeFlows
        flows.unconfirmedOutputBytes += message.payload.count + message.topic.bytes.count + 8
        askConfirmationIfDue(flows, connection)
        if flows.unconfirmedOutputBytes >= configuration.outputWindowBytes { session.outputBlocks.insert(.windowFull) }
    }

    func askConfirmationIfDue(_ flows: SessionFlows, _ connection: ConnectionID) {
        guard flows.confirmingOutputBytes == 0, flows.unconfirmedOutputBytes * 2 >= configuration.outputWindowBytes
        else { return }
        flows.confirmingOutputBytes = flows.unconfirmedOutputBytes
        readingChanges.append(.confirmOutput(connection))
    }

    /// After a CONNACK resuming a session: unacknowledged PUBLISHes again with DUP=1 and their ids, PUBRELs
    /// for those past PUBREC, in their original order [MQTT-4.4.0-1][MQTT-3.3.1-1][MQTT-4.6.0-1]; then the queue.
    func resume(_ session: Session, into actions: inout [Action]) {
        guard let connection = session.connection, let flows = session.flows else { return }
        for entry in flows.inflight.inResendOrder {
            if entry.state == .awaitingPubcomp {
                // A PUBREL whose record may not be durable yet waits for it, as the first one did.
                sendAcknowledgement(.pubrel(entry.packetID), to: connection, into: &actions)
            } else {
                sendDelivery(entry.packet(dup: true), qos: entry.qos, to: connection, of: session, into: &actions)
                countOutput(entry.message, to: connection, of: session)
                counters.messagesSent += 1
            }
        }
        pump(session, into: &actions)
    }
}

/// What a bridge session's deliveries depend on (mosquitto gives every subscription of a bridge no-local and
/// retain-as-published, `handle__subscribe`): the RETAIN flag as published, so the broker at the other end stores
/// the retained message too, and the publishing session, which is not sent its own message back, or two brokers
/// bridged both ways would pass it between them forever.
struct Publication {
    let retain: Bool
    /// An identity, not a reference: routing a message costs no reference counting for this.
    let origin: ObjectIdentifier?

    /// The same for a shared group's member: no-local does not apply to shared subscriptions (MQTT 5 forbids it
    /// there, and mosquitto's `subs__shared_process` skips no session), retain-as-published does.
    var toSharedGroup: Publication { Publication(retain: retain, origin: nil) }
}

/// One session a topic reaches, with the highest QoS its matching subscriptions grant. Not retained: sessions in
/// the trie are owned by the session table, and a session leaves the trie (changing its version, which voids every
/// `RouteCache`) before it can be released.
struct RouteTarget {
    let session: Unmanaged<Session>
    var qos: QoS
}

/// A publisher's latest topic and the sessions it reached, valid while the trie's version is unchanged.
/// rumqttd memoises topic → filter matches the same way; here it saves one hash per topic level per PUBLISH.
final class RouteCache {
    var topic: TopicName
    var version: UInt64
    var targets: [RouteTarget]
    /// The topic reaches shared groups, whose member is picked per message: the walk cannot be skipped.
    var reachesSharedGroups: Bool

    init(topic: TopicName, version: UInt64, targets: [RouteTarget], reachesSharedGroups: Bool) {
        self.topic = topic
        self.version = version
        self.targets = targets
        self.reachesSharedGroups = reachesSharedGroups
    }
}
