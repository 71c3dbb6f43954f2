// Persistence seen from the core (§3.1.2.4, §4.3): rebuilding the broker from the durable store's state, appending
// records to the record log and releasing held acknowledgements when it confirms them, the store's health, and
// `persistent_client_expiration`.
import MQTTCodec
import MidgeRecords

/// What `Broker.enableDurability` rebuilt, for the start-up log.
public struct RestoreSummary: Sendable, Equatable, CustomStringConvertible {
    public var retainedMessages = 0
    public var sessions = 0
    public var subscriptions = 0
    public var queuedMessages = 0
    public var inflightMessages = 0
    /// Sessions past `persistent_client_expiration` at start-up, ended instead of restored.
    public var expiredSessions = 0

    public var description: String {
        "Restored \(retainedMessages) retained messages and \(sessions) persistent sessions "
            + "(\(subscriptions) subscriptions, \(queuedMessages) queued and \(inflightMessages) in-flight messages)"
            + (expiredSessions > 0 ? "; \(expiredSessions) expired sessions removed." : ".")
    }
}

extension Broker {
    /// Turns persistence on, rebuilding retained messages and persistent sessions from what the store recovered:
    /// one shared `Message` per body, queues in order, in-flight windows in their resend order, inbound QoS 2 ids
    /// [MQTT-4.4.0-1]. Call once, on the thread that drives the broker, before any other call. From then on the
    /// core writes records for every durable change to `recordLog` and holds the acknowledgements that depend on them
    /// until the log confirms them (see `RecordLog`). `unixSeconds` is the wall clock at `now`, for session
    /// last-seen times.
    @discardableResult
    public func enableDurability(
        restoring state: StoreState, log recordLog: any RecordLog, unixSeconds: Int64, now: MonotonicTime
    ) -> RestoreSummary {
        precondition(journal == nil && connections.isEmpty && sessions.isEmpty, "enableDurability on a used broker")
        currentTime = now
        let journal = Journal(log: recordLog, nextMessageID: state.nextMessageID, unixSeconds: unixSeconds, now: now)
        self.journal = journal
        var summary = RestoreSummary()

        for (topic, stored) in state.retained {
            // An id of its own, as for any message: a persistent subscriber may queue it.
            retained.store(
                Message(topic: topic, payload: stored.payload, qos: stored.qos, storeID: journal.allocateMessageID()))
        }
        summary.retainedMessages = retained.count

        var bodies: [UInt64: Message] = [:]
        bodies.reserveCapacity(state.messages.count)
        for (id, stored) in state.messages {
            bodies[id] = Message(topic: stored.topic, payload: stored.payload, qos: stored.qos, storeID: id)
        }
        // A PUBREL needs no body; the store keeps none for it once no other delivery refers to the message.
        guard let releasedTopic = TopicName(bytes: Array("$released".utf8)) else { fatalError("BUG: topic name") }

        let limit = configuration.persistentClientExpiration
        let expired = limit > 0 ? Set(state.expiredSessions(now: unixSeconds, olderThan: limit)) : []
        for stored in state.sessions.values {
            if expired.contains(stored.clientID) {
                journal.records.append(.sessionEnded(clientID: stored.clientID))
                log(.notice, "Expiring client \(stored.clientID), its session has not been used for \(limit) seconds.")
                summary.expiredSessions += 1
                continue
            }
            nextSessionSerial += 1
            let session = Session(clientID: stored.clientID, serial: nextSessionSerial, cleanSession: false)
            let key = ClientIDKey(stored.clientID)
            sessions[key] = session
            for (filter, qos) in stored.subscriptions {
                if subscriptionTrie.subscribe(filter, session: session, qos: qos) { counters.subscriptions += 1 }
                session.subscriptions[filter] = qos
            }
            summary.subscriptions += stored.subscriptions.count
            if !stored.inFlight.isEmpty || !stored.queue.isEmpty || !stored.inboundQoS2.isEmpty {
                let flows = session.activeFlows
                for delivery in stored.inFlight.inSendOrder {
                    let message: Message
                    let flowState: OutboundFlowState
                    switch delivery.state {
                    case .publishSent:
                        // The store keeps the body of every PUBLISH it may have to resend.
                        guard let body = bodies[delivery.messageID] else { continue }
                        message = body
                        flowState = delivery.qos == .exactlyOnce ? .awaitingPubrec : .awaitingPuback
                    case .pubrelSent:
                        let placeholder = Message(
                            topic: releasedTopic, payload: [], qos: delivery.qos, storeID: delivery.messageID)
                        message = bodies[delivery.messageID] ?? placeholder
                        flowState = .awaitingPubcomp
                    }
                    flows.inflight.insert(
                        delivery.packetID, message: message, qos: delivery.qos, retain: delivery.retain,
                        state: flowState)
                }
                for delivery in stored.queue {
                    guard let body = bodies[delivery.messageID] else { continue }
                    flows.queue.append(QueuedMessage(message: body, qos: delivery.qos, retain: delivery.retain))
                }
                for packetID in stored.inboundQoS2 { flows.inboundQoS2.insert(packetID.rawValue) }
                summary.inflightMessages += flows.inflight.count
                summary.queuedMessages += flows.queue.count
            }
            if expiry != nil {
                // Away since its last-seen time, counted on the monotonic clock from here on.
                let away = max(0, unixSeconds.subtractingReportingOverflow(stored.lastSeen).partialValue)
                let awayNanoseconds = away.multipliedReportingOverflow(by: 1_000_000_000)
                let since = awayNanoseconds.overflow ? Int64.min / 2 : now.nanoseconds - awayNanoseconds.partialValue
                expiry?.offlineSince[key] = MonotonicTime(nanoseconds: since)
            }
        }
        summary.sessions = sessions.count
        return summary
    }

    /// Whether `enableDurability` was called.
    public var isDurable: Bool { journal != nil }

    /// Ends a run of events: the run's records go to the log in one append, and the sends held during the run
    /// wait for its confirmation (`CoreEvent.recordsDurable`). Does nothing when the run recorded and held nothing.
    /// One call per run, not per event: the log's group commit is per append.
    public func appendRecords() {
        guard let journal, !(journal.records.isEmpty && journal.held.isEmpty) else { return }
        journal.lastAppend += 1
        var records: [StoreRecord] = []
        swap(&records, &journal.records)
        let confirm = !journal.held.isEmpty
        if confirm {
            var held: [Action] = []
            swap(&held, &journal.held)
            journal.awaiting.append((journal.lastAppend, held))
        }
        journal.lastStoredMessage = 0
        journal.log.append(records, sequence: journal.lastAppend, confirm: confirm)
    }

    /// Sends held since the last `appendRecords`, in order: what its confirmation will release. For checkers.
    public var sendsHeldForNextAppend: [Action] { journal?.held ?? [] }

    /// The log confirmed every append up to `sequence`: the sends held behind them go out now, in order.
    @usableFromInline
    func recordsDurable(through sequence: UInt64, into actions: inout [Action]) {
        guard let journal else { return }
        while journal.awaitingStart < journal.awaiting.count
            && journal.awaiting[journal.awaitingStart].sequence <= sequence
        {
            var held: [Action] = []
            swap(&held, &journal.awaiting[journal.awaitingStart].held)
            journal.awaitingStart += 1
            release(&held, journal: journal, into: &actions)
        }
        if journal.awaitingStart == journal.awaiting.count {
            journal.awaiting.removeAll(keepingCapacity: true)
            journal.awaitingStart = 0
        }
    }

    private func release(_ held: inout [Action], journal: Journal, into actions: inout [Action]) {
        // One count update per run of sends to the same connection (a publisher's PUBACKs come in runs), and the
        // sends handed over whole: moving them one by one (reversed, then popped) was ~5% of loop 0's time.
        var start = 0
        while start < held.count {
            let connection = held[start].connection
            var end = start + 1
            while end < held.count && held[end].connection == connection { end += 1 }
            if let count = journal.outstanding[connection], count > end - start {
                journal.outstanding[connection] = count - (end - start)
            } else {
                journal.outstanding[connection] = nil
            }
            start = end
        }
        if actions.isEmpty {
            swap(&actions, &held)
        } else {
            actions.append(contentsOf: held)
        }
    }

    /// Tells the core whether the store can write. While it cannot, QoS 1/2 publishes are neither routed nor
    /// acknowledged (their acknowledgement could not be held for a write that does not happen); QoS 0 goes on.
    /// Cheap to call every turn: only a change does anything.
    public func setStoreWritable(_ writable: Bool) {
        guard let journal, journal.writable != writable else { return }
        journal.writable = writable
        if writable {
            log(
                .warning,
                "Persistence store is writable again; \(journal.refusedInEpisode) QoS 1/2 publishes were refused "
                    + "meanwhile.")
            journal.refusedInEpisode = 0
        } else {
            log(.error, "Persistence store cannot write: QoS 1/2 publishes are not acknowledged until it can.")
        }
    }

    /// Whether the store can write, as last told by `setStoreWritable`.
    public var storeWritable: Bool { journal?.writable ?? true }

    /// The message itself, or with persistence on and no body id yet (built outside the core, or a Will built at
    /// CONNECT) a copy with one, in case a persistent session queues it.
    func withStoreID(_ message: Message) -> Message {
        guard let journal, message.storeID == 0 else { return message }
        return Message(
            topic: message.topic, payload: message.payload, qos: message.qos, storeID: journal.allocateMessageID())
    }

    /// Sends an acknowledgement (or CONNACK), or holds it until the records before it are durable (see
    /// `RecordLog`).
    @inline(__always)
    func sendAcknowledgement(_ packet: Packet, to connection: ConnectionID, into actions: inout [Action]) {
        if let journal, journal.mustHold(connection) {
            journal.hold(.send(connection, .control(packet)), for: connection)
        } else {
            actions.append(.send(connection, .control(packet)))
        }
    }

    /// Sends a PUBLISH to a session's connection, or holds it. A persistent session's QoS 2 delivery waits while
    /// records are pending: a client must never hold a QoS 2 packet id the broker could forget in a crash, or after
    /// the restart it would take the next message sent with that id for a repeat and drop it. QoS 0 and 1 go at
    /// once (a forgotten QoS 1 delivery is sent again, which QoS 1 allows), so a persistent subscriber's throughput
    /// is not one in-flight window per fsync. Any delivery waits behind sends already held for its connection, so
    /// nothing overtakes them.
    @inline(__always)
    func sendDelivery(
        _ packet: consuming OutboundPacket, qos: QoS, to connection: ConnectionID, of session: Session,
        into actions: inout [Action]
    ) {
        if let journal,
            journal.outstanding[connection] != nil
                || (qos == .exactlyOnce && !session.cleanSession && !journal.records.isEmpty)
        {
            journal.hold(.send(connection, packet), for: connection)
        } else {
            actions.append(.send(connection, packet))
        }
    }

    /// `persistent_client_expiration`: removes persistent sessions whose client has been away that long. Checked
    /// from `tick`, at most once a minute.
    func expireSessionsIfDue(now: MonotonicTime) {
        guard let scan = expiry, now >= scan.nextScan else { return }
        expiry?.nextScan = now + scan.scanInterval
        let limit = scan.limit.multipliedReportingOverflow(by: 1_000_000_000)
        guard !limit.overflow else { return }
        var due: [ClientIDKey] = []
        for (key, since) in scan.offlineSince where now.nanoseconds - since.nanoseconds >= limit.partialValue {
            due.append(key)
        }
        for key in due {
            expiry?.offlineSince[key] = nil
            guard let session = sessions[key], session.connection == nil, !session.cleanSession else { continue }
            log(
                .notice,
                "Expiring client \(session.clientID), its session has not been used for \(scan.limit) seconds.")
            discardSession(session)
            counters.clientsExpired += 1
        }
    }
}
