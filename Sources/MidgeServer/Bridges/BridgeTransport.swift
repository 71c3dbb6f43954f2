// A bridge's connection: one socket to the remote broker, and the bridge's own MQTT session on this broker, joined
// packet for packet. What the core delivers to the session is published to the remote; what the remote delivers is
// published to the core; each acknowledgement crosses back the same way (§4.3), so a message is acknowledged to its
// sender only once the broker on the other side has taken it over.
import MQTTCodec
import MidgeCore
import MidgeTLS

/// The transport of a bridge connection, on loop 0. The socket's bytes are the remote broker's (through TLS when
/// configured); the MQTT stream the loop hands to the core is the bridge's local session.
///
/// Packet ids pass through unchanged, as in mosquitto, where the bridge's local session and its remote connection
/// are one context: the core numbers the messages it delivers to the bridge, and the same numbers go to the remote,
/// whose acknowledgements the core then receives as its own; the remote numbers what it delivers, and the core sees
/// those as the bridge's publishes. Either broker's redelivery after a reconnect (same id, DUP) therefore reaches the
/// other one as the redelivery it is.
final class BridgeTransport: ConnectionTransport {
    enum Role {
        /// The real thing: a socket to the remote.
        case link
        /// No remote: CONNECT, SUBSCRIBE, DISCONNECT, so the local session exists and keeps what it subscribes to
        /// while the remote is unreachable.
        case primer
    }

    private let bridge: Bridge
    private let role: Role
    private let tryPrivate: Bool
    private let remoteDecoder = FrameDecoder()
    private let localDecoder = FrameDecoder()
    private var remoteInput: [UInt8] = []
    private var localInput: [UInt8] = []
    private var tls: TLSConnection?
    private var started = false
    private var remoteAccepted = false
    /// Nanoseconds of the last bytes from and to the remote (keepalive), and of the last message either way
    /// (a lazy bridge's `idle_timeout`).
    private var lastRemoteInput: Int64
    private var lastRemoteOutput: Int64
    private var lastMessage: Int64
    private var pingOutstanding = false
    private var endedIdle = false
    private var nextPacketID: UInt16 = 0
    private var primerSubscription: PacketID?
    /// Where the socket leads, for log lines.
    private let remoteAddress: String

    init(
        bridge: Bridge, role: Role, remoteAddress: String = "", tryPrivate: Bool, tls: TLSConnection?,
        now: MonotonicTime
    ) {
        self.bridge = bridge
        self.remoteAddress = remoteAddress
        self.role = role
        self.tryPrivate = tryPrivate
        self.tls = tls
        lastRemoteInput = now.nanoseconds
        lastRemoteOutput = now.nanoseconds
        lastMessage = now.nanoseconds
    }

    private var configuration: BridgeConfiguration { bridge.configuration }

    var connectIdentity: TransportIdentity { .internalClient(username: configuration.localUsername) }

    // MARK: ConnectionTransport

    func poke(now: MonotonicTime, mqtt: inout [UInt8], wire: inout [UInt8]) -> TransportStatus {
        guard !started else { return .open }
        started = true
        connectLocally(mqtt: &mqtt)
        guard role == .link else { return .open }
        connectRemotely(wire: &wire, now: now)
        return .open
    }

    func received(_ bytes: UnsafeRawBufferPointer, mqtt: inout [UInt8], wire: inout [UInt8], now: MonotonicTime)
        -> TransportStatus
    {
        lastRemoteInput = now.nanoseconds
        if let tls {
            do {
                try tls.feed(bytes)
                while case .plaintext = try tls.readPlaintext(appendingTo: &remoteInput) {}
            } catch {
                flushCiphertext(wire: &wire)
                return .close(.connectionLost("TLS: \(error)"))
            }
            flushCiphertext(wire: &wire)
            if tls.receivedCloseNotify { return .close(.connectionLost("the remote broker closed TLS")) }
        } else {
            remoteInput.append(contentsOf: bytes)
        }
        var offset = 0
        var status = TransportStatus.open
        while offset < remoteInput.count, case .open = status {
            let decoded: (packet: Packet, consumed: Int)?
            do {
                decoded = try remoteInput.withUnsafeBytes { raw throws(DecodeError) in
                    try remoteDecoder.decode(UnsafeRawBufferPointer(rebasing: raw[offset...]))
                }
            } catch {
                return .close(.protocolError("the remote broker sent a malformed packet: \(error)"))
            }
            guard let (packet, consumed) = decoded else { break }
            offset += consumed
            status = fromRemote(packet, mqtt: &mqtt, wire: &wire, now: now)
        }
        remoteInput.removeFirst(offset)
        return status
    }

    func send(_ mqttPackets: UnsafeRawBufferPointer, mqtt: inout [UInt8], wire: inout [UInt8], now: MonotonicTime)
        -> TransportStatus
    {
        localInput.append(contentsOf: mqttPackets)
        var offset = 0
        var status = TransportStatus.open
        while offset < localInput.count, case .open = status {
            let decoded = localInput.withUnsafeBytes { raw in
                try? localDecoder.decode(UnsafeRawBufferPointer(rebasing: raw[offset...]))
            }
            guard let (packet, consumed) = decoded else { break }
            offset += consumed
            status = fromCore(packet, mqtt: &mqtt, wire: &wire, now: now)
        }
        localInput.removeFirst(offset)
        return status
    }

    func tick(now: MonotonicTime, mqtt: inout [UInt8], wire: inout [UInt8]) -> TransportStatus {
        guard role == .link else { return .open }
        let keepalive = Int64(configuration.keepaliveInterval) * 1_000_000_000
        if now.nanoseconds - lastRemoteInput > keepalive * 3 / 2 {
            return .close(.keepaliveTimeout)
        }
        if remoteAccepted && configuration.startType == .lazy
            && now.nanoseconds - lastMessage >= Int64(configuration.idleTimeout) * 1_000_000_000
        {
            bridge.log(.notice, "Bridge \(bridge.name) idle for \(configuration.idleTimeout) s: disconnecting.")
            endedIdle = true
            toRemote(.disconnect, wire: &wire, now: now)
            Packet.disconnect.encode(into: &mqtt)
            return .close(.clientDisconnected)
        }
        if !pingOutstanding && now.nanoseconds - lastRemoteOutput >= keepalive {
            pingOutstanding = true
            toRemote(.pingreq, wire: &wire, now: now)
        }
        return .open
    }

    func closing(_ reason: CloseReason, wire: inout [UInt8]) {
        if let tls, tls.isHandshakeComplete, !tls.sentCloseNotify {
            tls.close()
            flushCiphertext(wire: &wire)
        }
        guard role == .link else { return }
        bridge.log(.notice, "Bridge \(bridge.name) disconnected: \(reason).")
        bridge.connectionEnded(idle: endedIdle)
    }

    // MARK: Connecting

    private func connectLocally(mqtt: inout [UInt8]) {
        // Keepalive 0: the loop, not a timer, knows this session is alive.
        Packet.connect(
            Connect(
                cleanSession: configuration.effectiveLocalCleanSession, keepAlive: 0, clientID: bridge.localClientID,
                isBridge: true)
        ).encode(into: &mqtt)
        let requests = configuration.topics.filter { $0.direction.carriesOut }.map {
            SubscriptionRequest(filter: $0.localFilter, qos: $0.qos)
        }
        guard !requests.isEmpty else { return }
        let id = takePacketID()
        if role == .primer { primerSubscription = id }
        Packet.subscribe(Subscribe(packetID: id, requests: requests)).encode(into: &mqtt)
    }

    private func connectRemotely(wire: inout [UInt8], now: MonotonicTime) {
        var will: Will?
        if let topic = bridge.notificationTopic, !configuration.notificationsLocalOnly {
            // Retained "0" if this broker disappears without a DISCONNECT, as mosquitto's bridge does.
            will = Will(topic: topic, payload: Array("0".utf8), qos: .atLeastOnce, retain: true)
        }
        let connect = Connect(
            protocolVersion: configuration.protocolVersion, cleanSession: configuration.cleanSession,
            keepAlive: UInt16(configuration.keepaliveInterval), clientID: bridge.remoteClientID, will: will,
            username: configuration.remoteUsername,
            password: configuration.remotePassword.map { Array($0.utf8) }, isBridge: tryPrivate)
        toRemote(.connect(connect), wire: &wire, now: now)
    }

    /// After the remote's CONNACK: the subscriptions `in` needs, the unsubscriptions of `out`-only topics a previous
    /// configuration may have left in a persistent remote session, and the remote notification.
    private func remoteSessionReady(wire: inout [UInt8], now: MonotonicTime) {
        let requests = configuration.topics.filter { $0.direction.carriesIn }.map {
            SubscriptionRequest(filter: $0.remoteFilter, qos: $0.qos)
        }
        if !requests.isEmpty {
            toRemote(.subscribe(Subscribe(packetID: takePacketID(), requests: requests)), wire: &wire, now: now)
        }
        if configuration.attemptUnsubscribe {
            let filters = configuration.topics.filter { $0.direction == .out }.map(\.remoteFilter)
            if !filters.isEmpty {
                toRemote(.unsubscribe(Unsubscribe(packetID: takePacketID(), filters: filters)), wire: &wire, now: now)
            }
        }
        if let topic = bridge.notificationTopic, !configuration.notificationsLocalOnly {
            // QoS 0: a QoS 1 id of ours could collide with the ids the core gives the messages it sends through us.
            let notice = Publish(topic: topic, payload: Array("1".utf8), qos: .atMostOnce, retain: true)
            toRemote(.publish(notice), wire: &wire, now: now)
        }
    }

    // MARK: From the remote broker

    private func fromRemote(_ packet: Packet, mqtt: inout [UInt8], wire: inout [UInt8], now: MonotonicTime)
        -> TransportStatus
    {
        switch packet {
        case .connack(let connack):
            guard !remoteAccepted else { return .close(.protocolError("a second CONNACK from the remote broker")) }
            guard connack.returnCode == .accepted else {
                if connack.returnCode == .unacceptableProtocolVersion && tryPrivate {
                    // A broker that does not know the bridge flag: mosquitto tries again without it.
                    bridge.privateRefused.store(true, ordering: .relaxed)
                }
                bridge.log(
                    .warning,
                    "Bridge \(bridge.name): the remote broker refused the connection: \(connack.returnCode) "
                        + "(CONNACK \(connack.returnCode.rawValue)).")
                return .close(.connectRefused(connack.returnCode))
            }
            remoteAccepted = true
            bridge.log(.notice, "Bridge \(bridge.name) connected to \(remoteAddress) as \(bridge.remoteClientID).")
            bridge.remoteAccepted()
            remoteSessionReady(wire: &wire, now: now)
        case .publish(let publish):
            lastMessage = now.nanoseconds
            guard let topic = configuration.topics.localTopic(forRemote: publish.topic) else {
                // Nothing of ours subscribed to it (a subscription a persistent remote session kept): taken and
                // dropped, so the remote does not redeliver it for ever.
                acknowledgeDropped(publish, wire: &wire, now: now)
                return .open
            }
            bridge.counters.messagesIn.add(1, ordering: .relaxed)
            var local = publish
            local.topic = topic
            Packet.publish(local).encode(into: &mqtt)
        case .puback(let id):
            Packet.puback(id).encode(into: &mqtt)
        case .pubrec(let id):
            Packet.pubrec(id).encode(into: &mqtt)
        case .pubrel(let id):
            Packet.pubrel(id).encode(into: &mqtt)
        case .pubcomp(let id):
            Packet.pubcomp(id).encode(into: &mqtt)
        case .suback(let suback):
            if suback.returnCodes.contains(.failure) {
                bridge.log(.warning, "Bridge \(bridge.name): the remote broker refused a subscription.")
            }
        case .unsuback:
            break
        case .pingresp:
            pingOutstanding = false
        case .connect, .subscribe, .unsubscribe, .pingreq, .disconnect:
            return .close(.protocolError("the remote broker sent \(packet.type), which only clients send"))
        }
        return .open
    }

    private func acknowledgeDropped(_ publish: Publish, wire: inout [UInt8], now: MonotonicTime) {
        guard let id = publish.packetID else { return }
        toRemote(publish.qos == .exactlyOnce ? .pubrec(id) : .puback(id), wire: &wire, now: now)
    }

    // MARK: From the core

    private func fromCore(_ packet: Packet, mqtt: inout [UInt8], wire: inout [UInt8], now: MonotonicTime)
        -> TransportStatus
    {
        switch packet {
        case .connack(let connack):
            guard connack.returnCode == .accepted else {
                bridge.log(
                    .error, "Bridge \(bridge.name): this broker refused its local session: \(connack.returnCode).")
                return .close(.connectRefused(connack.returnCode))
            }
        case .suback(let suback):
            if suback.returnCodes.contains(.failure) {
                bridge.log(
                    .warning,
                    "Bridge \(bridge.name): a local subscription was refused (ACL, or local_username needs access).")
            }
            if role == .primer, suback.packetID == primerSubscription {
                Packet.disconnect.encode(into: &mqtt)
                return .close(.clientDisconnected)
            }
        case .publish(let publish):
            // The primer leaves deliveries unacknowledged: the session keeps them for the real connection.
            guard role == .link else { return .open }
            lastMessage = now.nanoseconds
            guard let topic = configuration.topics.remoteTopic(forLocal: publish.topic) else {
                if let id = publish.packetID {
                    (publish.qos == .exactlyOnce ? Packet.pubrec(id) : Packet.puback(id)).encode(into: &mqtt)
                }
                return .open
            }
            bridge.counters.messagesOut.add(1, ordering: .relaxed)
            var remote = publish
            remote.topic = topic
            if !configuration.outgoingRetain { remote.retain = false }
            toRemote(.publish(remote), wire: &wire, now: now)
        case .puback(let id):
            toRemote(.puback(id), wire: &wire, now: now)
        case .pubrec(let id):
            toRemote(.pubrec(id), wire: &wire, now: now)
        case .pubrel(let id):
            // The primer's session keeps the release for the real connection.
            if role == .link { toRemote(.pubrel(id), wire: &wire, now: now) }
        case .pubcomp(let id):
            toRemote(.pubcomp(id), wire: &wire, now: now)
        case .unsuback, .pingresp, .connect, .subscribe, .unsubscribe, .pingreq, .disconnect:
            break
        }
        return .open
    }

    // MARK: Writing to the remote

    private func toRemote(_ packet: Packet, wire: inout [UInt8], now: MonotonicTime) {
        lastRemoteOutput = now.nanoseconds
        guard let tls else {
            packet.encode(into: &wire)
            return
        }
        var plaintext: [UInt8] = []
        packet.encode(into: &plaintext)
        // A TLS failure surfaces at the next read, which closes the connection with its reason.
        try? tls.writePlaintext(plaintext)
        flushCiphertext(wire: &wire)
    }

    private func flushCiphertext(wire: inout [UInt8]) {
        guard let tls, tls.pendingCiphertextCount > 0 else { return }
        wire.append(contentsOf: tls.takeCiphertext())
    }

    private func takePacketID() -> PacketID {
        nextPacketID = nextPacketID == UInt16.max ? 1 : nextPacketID + 1
        guard let id = PacketID(nextPacketID) else { fatalError("BUG: packet id 0 is skipped above") }
        return id
    }
}
