// The broker as a state machine: packets and time in, actions out. No I/O, no clocks, no threads; deterministic
// except for the random ids it assigns to clients. Handlers/ holds one file per packet, as mosquitto's handle_*.c.
import MQTTCodec

public final class Broker {
    let configuration: BrokerConfiguration
    let log: LogSink
    /// Profile 0 is the broker-wide security; the rest are listeners' own (`per_listener_settings`).
    let securityProfiles: [ListenerSecurity]
    /// Whether any profile's ACL, or any client's own (`AdmissionAnswer.accessControl`), checks deliveries, so the
    /// per-delivery check is skipped when none does.
    var checksDeliveries: Bool
    /// Told each granted and each dropped subscription (`log_type subscribe` / `unsubscribe`); set before the first
    /// packet, nil when nothing listens.
    public var subscriptionEvents: SubscriptionEventSink?

    /// CONNECTs waiting for their `AdmissionAnswer`, by connection.
    var pendingAdmissions: [ConnectionID: PendingAdmission] = [:]
    /// Connections that completed CONNECT and have not ended.
    @exclusivity(unchecked) var connections: [ConnectionID: ClientConnection] = [:]
    /// Every session by client id [MQTT-3.1.3-2]: those of connected clients and persistent ones left behind.
    @exclusivity(unchecked) var sessions: [ClientIDKey: Session] = [:]
    let subscriptionTrie = SubscriptionTrie()
    let retained = RetainedStore()
    @exclusivity(unchecked) var keepalive = KeepaliveHeap()
    /// Connections the core has ended, so packets the driver had already decoded from them are ignored.
    var recentlyClosed = RecentlyClosedConnections(capacity: 4096)
    @exclusivity(unchecked) var counters = BrokerStatistics()
    /// Pauses and resumes decided since the driver last took them.
    @exclusivity(unchecked) var readingChanges: [ReadingChange] = []
    /// The latest `now` handed in, for the few decisions made where no `now` is passed (releasing publishers).
    @exclusivity(unchecked) var currentTime = MonotonicTime(nanoseconds: 0)

    var nextSessionSerial: UInt64 = 0
    /// Records and held acknowledgements for the durable store; nil while persistence is off, so the memory-only
    /// broker builds no record (see `Broker+Durability`).
    @exclusivity(unchecked) var journal: Journal?
    /// When offline persistent sessions were last seen; nil unless `persistentClientExpiration` is set.
    var expiry: SessionExpiry?
    /// Routing scratch reused by every PUBLISH, see `route`.
    @exclusivity(unchecked) var routeEpoch: UInt32 = 0
    @exclusivity(unchecked) var routeScratch: [RouteTarget] = []
    /// The shared-group members picked for the message being routed.
    @exclusivity(unchecked) var sharedPicks: [RouteTarget] = []
    /// The latest setter of a retained message, reused while the same client sets more (`check_retain_source`).
    var lastRetainSource: RetainSource?
    /// Answers PUBLISHes to its `$CONTROL/` topic (see `Broker+Control`); nil: `$CONTROL/` is an ordinary topic.
    let controlHandler: (any ControlTopicHandler)?
    let controlResponseTopic: TopicName?

    public init(
        configuration: BrokerConfiguration, asksAdmission: Bool = false,
        accessControl: any AccessControl = AllowAll(), listenerSecurity: [ListenerSecurity] = [],
        controlHandler: (any ControlTopicHandler)? = nil, log: @escaping LogSink = { _, _ in }
    ) {
        self.configuration = configuration
        self.controlHandler = controlHandler
        controlResponseTopic = controlHandler.flatMap { TopicName(bytes: $0.topic.bytes + Array("/response".utf8)) }
        let brokerWide = ListenerSecurity(
            allowAnonymous: configuration.allowAnonymous,
            allowZeroLengthClientID: configuration.allowZeroLengthClientID,
            autoIDPrefix: configuration.autoIDPrefix, accessControl: accessControl,
            asksAdmission: asksAdmission)
        securityProfiles = [brokerWide] + listenerSecurity
        checksDeliveries = securityProfiles.contains { $0.accessControl.checksDeliveries }
        self.log = log
        if configuration.persistentClientExpiration > 0 {
            expiry = SessionExpiry(seconds: configuration.persistentClientExpiration)
        }
    }

    /// A decoded packet from a connection. The first packet of a connection is always CONNECT
    /// (the driver closes connections whose first packet is anything else, without telling the core).
    public func handle(
        _ packet: Packet, from connection: ConnectionID, info: ConnectionInfo, now: MonotonicTime,
        into actions: inout [Action]
    ) {
        currentTime = now
        guard let client = connections[connection] else {
            if pendingAdmissions[connection] != nil {
                holdWhileAdmitting(packet, from: connection, into: &actions)
                return
            }
            // Either a new connection's CONNECT, or a straggler from a connection already ended (refused,
            // taken over, closed for a violation): nothing it sent afterwards is processed [MQTT-3.1.4-5].
            if case .connect(let connect) = packet, !recentlyClosed.contains(connection) {
                handleConnect(connect, from: connection, info: info, now: now, into: &actions)
            }
            return
        }
        client.lastPacketReceived = now
        switch packet {
        case .publish(let publish): handlePublish(publish, from: client, into: &actions)
        case .puback(let id): handlePuback(id, from: client, into: &actions)
        case .pubrec(let id): handlePubrec(id, from: client, into: &actions)
        case .pubrel(let id): handlePubrel(id, from: client, into: &actions)
        case .pubcomp(let id): handlePubcomp(id, from: client, into: &actions)
        case .subscribe(let subscribe): handleSubscribe(subscribe, from: client, into: &actions)
        case .unsubscribe(let unsubscribe): handleUnsubscribe(unsubscribe, from: client, into: &actions)
        case .pingreq: handlePingreq(from: client, into: &actions)
        case .disconnect: handleDisconnect(from: client, into: &actions)
        case .connect: close(client, for: .secondConnect, into: &actions)
        case .connack, .suback, .unsuback, .pingresp: close(client, for: .serverOnlyPacket(packet.type), into: &actions)
        }
    }

    /// The driver closed the connection (EOF, socket error, malformed input, shutdown).
    /// Ignored for connections the core does not know or has already closed itself.
    public func connectionClosed(
        _ connection: ConnectionID, reason: CloseReason, now: MonotonicTime, into actions: inout [Action]
    ) {
        currentTime = now
        // Gone before its admission was answered: the answer will find nothing to admit.
        if pendingAdmissions.removeValue(forKey: connection) != nil { return }
        guard let client = connections[connection] else { return }
        endConnection(client, reason: reason, tellDriver: false, into: &actions)
    }

    /// The connection's unsent output passed the driver's high-water mark: from now on its deliveries wait in the
    /// session queue, where `maxQueuedMessages`, `maxQueuedBytes` and `queueFullPolicy` apply, instead of piling
    /// up in the driver. QoS 0 included, so a subscriber that stops reading costs at most its queue limits.
    public func outputCongested(_ connection: ConnectionID) {
        guard let client = connections[connection] else { return }
        client.session.outputBlocks.insert(.congested)
    }

    /// The connection's unsent output fell back below the driver's low-water mark: queued deliveries go out
    /// again (unless the output window is full).
    public func outputDrained(_ connection: ConnectionID, now: MonotonicTime, into actions: inout [Action]) {
        currentTime = now
        guard let client = connections[connection], client.session.outputBlocks.contains(.congested) else { return }
        client.session.outputBlocks.remove(.congested)
        pump(client.session, into: &actions)
    }

    /// The driver's answer to `ReadingChange.confirmOutput`: every delivery handed over before it has been taken
    /// into the connection's output, so that much of the output window is free again.
    public func outputConfirmed(_ connection: ConnectionID, now: MonotonicTime, into actions: inout [Action]) {
        currentTime = now
        guard let client = connections[connection], let flows = client.session.flows else { return }
        flows.unconfirmedOutputBytes -= min(flows.confirmingOutputBytes, flows.unconfirmedOutputBytes)
        flows.confirmingOutputBytes = 0
        askConfirmationIfDue(flows, connection)
        guard flows.unconfirmedOutputBytes < configuration.outputWindowBytes,
            client.session.outputBlocks.contains(.windowFull)
        else { return }
        client.session.outputBlocks.remove(.windowFull)
        pump(client.session, into: &actions)
    }

    /// Time passed: keepalive expiry and other deadlines. Call at least once a second,
    /// or at `nextDeadline`.
    public func tick(now: MonotonicTime, into actions: inout [Action]) {
        currentTime = now
        while let connection = keepalive.popDue(now) {
            guard let client = connections[connection] else { continue }
            if client.isHeld {
                // Its packets wait unread because of us, so its silence proves nothing: count it as alive.
                client.lastPacketReceived = now
            }
            guard let deadline = client.keepaliveDeadline else { continue }
            if deadline > now {
                keepalive.push(deadline, connection)  // packets arrived since the entry was pushed
            } else {
                endConnection(client, reason: .keepaliveTimeout, tellDriver: true, into: &actions)  // [MQTT-3.1.2-24]
            }
        }
        if expiry != nil { expireSessionsIfDue(now: now) }
    }

    /// The earliest time `tick` has work to do, if any.
    public var nextDeadline: MonotonicTime? {
        guard let scan = expiry?.nextScan, !(expiry?.offlineSince.isEmpty ?? true) else { return keepalive.earliest }
        return min(keepalive.earliest ?? scan, scan)
    }

    /// Publishes a message that originates in the broker itself (`$SYS` topics, pushes from a gateway): no access
    /// checks, `$SYS` allowed. With `retain` it replaces the topic's retained message, and an empty payload deletes
    /// it, as a client's RETAIN=1 PUBLISH does; subscribers get it like any other message.
    public func publish(_ message: Message, retain: Bool, into actions: inout [Action]) {
        let message = withStoreID(message)
        if retain { updateRetained(with: message) }
        route(message, retain: retain, from: nil, origin: nil, into: &actions)
    }

    /// Messages a client's session holds for it, queued or in flight; nil when there is no such session. A lazy
    /// bridge connects once its local session holds more than its threshold.
    public func pendingMessageCount(clientID: String) -> Int? {
        guard let session = sessions[ClientIDKey(clientID)] else { return nil }
        return (session.flows?.queue.count ?? 0) + session.inflightCount
    }

    /// Whether the process is above its memory ceiling (`memory_limit`), as the driver measured it. While it is, the
    /// core refuses what would grow it for new work (CONNECTs, new retained messages, queued deliveries) and keeps
    /// serving the clients it has. Logged once per change.
    public var memoryCeilingReached: Bool = false {
        didSet {
            guard memoryCeilingReached != oldValue else { return }
            if memoryCeilingReached {
                log(.warning, "Memory limit reached: refusing new connections, retained messages and queued messages.")
            } else {
                log(.notice, "Memory use is below the limit again: accepting new connections and messages.")
            }
        }
    }

    /// Hands over the reading changes decided so far (see `ReadingChange`), leaving an empty list. Cheap when
    /// there are none, which is always the case with `QueueFullPolicy.drop`.
    public func takeReadingChanges(into changes: inout [ReadingChange]) {
        guard !readingChanges.isEmpty else { return }
        if changes.isEmpty { swap(&changes, &readingChanges) } else { changes.append(contentsOf: readingChanges) }
        readingChanges.removeAll(keepingCapacity: true)
    }

    /// Whether `takeReadingChanges` has anything.
    public var hasReadingChanges: Bool { !readingChanges.isEmpty }

    /// Deliveries dropped for full queues so far (`statistics.messagesDropped`), cheap enough to read every turn.
    public var messagesDropped: UInt64 { counters.messagesDropped }

    /// The broker's counters now. Totals over sessions are summed on each call: read it once a second or so.
    public var statistics: BrokerStatistics {
        var snapshot = counters
        snapshot.connectedClients = connections.count
        snapshot.sessions = sessions.count
        snapshot.retainedMessages = retained.count
        snapshot.retainedBytes = retained.bytes
        snapshot.sharedSubscriptions = subscriptionTrie.sharedSubscriptionCount
        var inflight = 0
        var queued = 0
        var queuedBytes = 0
        for session in sessions.values {
            inflight += session.inflightCount
            queued += session.flows?.queue.count ?? 0
            queuedBytes += session.flows?.queue.bytes ?? 0
        }
        snapshot.inflightMessages = inflight
        snapshot.queuedMessages = queued
        snapshot.queuedBytes = queuedBytes
        return snapshot
    }
}

// MARK: - Ending connections

/// Protocol violations the core detects itself. Every one closes the connection [MQTT-4.8.0-1], which fires
/// the Will; this is the single place that turns them into a close reason.
enum ProtocolViolation {
    /// [MQTT-3.1.0-2]
    case secondConnect
    /// CONNACK, SUBACK, UNSUBACK and PINGRESP only travel from server to client.
    case serverOnlyPacket(PacketType)
    /// A PUBLISH above `max_qos`: mosquitto 2.0 disconnects such a client.
    case qosAboveMaximum(QoS)
    /// A topic name or filter (PUBLISH, SUBSCRIBE, UNSUBSCRIBE, a Will) deeper than `max_topic_levels`: mosquitto
    /// treats one past its hierarchy limit as a malformed packet and disconnects.
    case topicTooDeep(PacketType, levels: Int)
    /// PUBREC or PUBCOMP for a QoS 1 delivery, PUBACK for a QoS 2 one: mosquitto closes the connection.
    case wrongAcknowledgement(PacketType, deliveryQoS: QoS)
    /// A PUBLISH with RETAIN=1 while `retain_available` is false: mosquitto closes the connection.
    case retainUnavailable
    /// A topic or filter that passes 65,535 bytes once the listener's `mount_point` is put before it.
    case mountedTopicTooLong

    var closeReason: CloseReason {
        switch self {
        case .secondConnect: .protocolError("second CONNECT")
        case .serverOnlyPacket(let type): .protocolError("\(type) sent by a client")
        case .qosAboveMaximum(let qos): .protocolError("PUBLISH with QoS \(qos.rawValue) above max_qos")
        case .topicTooDeep(let type, let levels):
            .protocolError("\(type) topic of \(levels) levels, above max_topic_levels")
        case .wrongAcknowledgement(let type, let qos):
            .protocolError("\(String(describing: type).uppercased()) for a QoS \(qos.rawValue) delivery")
        case .retainUnavailable: .protocolError("retained PUBLISH while retain_available is false")
        case .mountedTopicTooLong: .protocolError("topic longer than 65535 bytes under mount_point")
        }
    }
}

extension Broker {
    func close(_ client: ClientConnection, for violation: ProtocolViolation, into actions: inout [Action]) {
        endConnection(client, reason: violation.closeReason, tellDriver: true, into: &actions)
    }

    /// Forgets the connection, ends a clean session [MQTT-3.1.2-6] (only now, with its connection
    /// [MQTT-4.1.0-2]) and publishes the Will when the reason calls for it [MQTT-3.1.2-8].
    func endConnection(
        _ client: ClientConnection, reason: CloseReason, tellDriver: Bool, into actions: inout [Action]
    ) {
        connections[client.id] = nil
        recentlyClosed.insert(client.id)
        logEnd(of: client, reason: reason)
        if tellDriver { actions.append(.close(client.id, reason)) }
        let session = client.session
        if session.connection == client.id {
            session.connection = nil
            session.outputBlocks = []
            // The queue-full policy protects live subscribers; offline ones drop at their limits.
            releasePublishers(heldBy: session)
            if !session.cleanSession {
                journal?.records.append(
                    .sessionSeen(clientID: session.clientID, unixSeconds: journal?.unixSeconds(at: currentTime) ?? 0))
                expiry?.offlineSince[ClientIDKey(session.clientID)] = currentTime
            }
        }
        if session.cleanSession { discardSession(session) }
        // Taking the Will out first makes it fire at most once [MQTT-3.1.2-10].
        if reason.firesWill, let will = client.will {
            client.will = nil
            publishWill(will, of: client, into: &actions)
        }
    }

    /// Drops a session and everything in it: subscriptions, flows, queue.
    func discardSession(_ session: Session) {
        for filter in session.subscriptions.keys where subscriptionTrie.unsubscribe(filter, session: session) {
            counters.subscriptions -= 1
        }
        session.subscriptions.removeAll()
        session.flows = nil
        let key = ClientIDKey(session.clientID)
        if sessions[key] === session {
            sessions[key] = nil
            if !session.cleanSession {
                journal?.records.append(.sessionEnded(clientID: session.clientID))
                expiry?.offlineSince[key] = nil
            }
        }
    }

    private func logEnd(of client: ClientConnection, reason: CloseReason) {
        let id = client.clientID
        switch reason {
        case .clientDisconnected:
            log(.notice, "Client \(id) disconnected.")
        case .connectionLost(let detail):
            if reason == .endOfStream {
                log(.notice, "Client \(id) closed its connection.")
            } else {
                log(.notice, "Socket error on client \(id), disconnecting.")
                log(.debug, "Client \(id) (\(client.info.remoteAddress)): \(detail).")
            }
        case .protocolError(let why):
            log(.notice, "Client \(id) (\(client.info.remoteAddress)) disconnected due to protocol error: \(why).")
        case .keepaliveTimeout:
            log(.notice, "Client \(id) has exceeded timeout, disconnecting.")
        case .takenOver:
            break  // the CONNECT that took over logged "already connected, closing old connection"
        case .connectRefused(let code):
            log(.notice, "Client \(id) (\(client.info.remoteAddress)) disconnected, connection refused (\(code)).")
        case .limitExceeded(let why):
            log(.notice, "Client \(id) (\(client.info.remoteAddress)) disconnected: \(why).")
        case .serverShutdown:
            log(.info, "Client \(id) disconnected: server shutting down.")
        }
    }
}

/// A bounded memory of ended connections. Ids are never reused, so remembering the last few thousand is
/// enough to ignore packets a driver decoded in the same read as the one that got its connection closed.
struct RecentlyClosedConnections {
    private var members: Set<ConnectionID> = []
    private var ring: [ConnectionID?]
    private var next = 0

    init(capacity: Int) {
        ring = Array(repeating: nil, count: max(1, capacity))
    }

    func contains(_ connection: ConnectionID) -> Bool { members.contains(connection) }

    mutating func insert(_ connection: ConnectionID) {
        guard members.insert(connection).inserted else { return }
        if let evicted = ring[next] { members.remove(evicted) }
        ring[next] = connection
        next = (next + 1) % ring.count
    }
}
