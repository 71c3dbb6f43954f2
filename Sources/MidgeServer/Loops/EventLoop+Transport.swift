// The event loop's side of `ConnectionTransport`: the side table of transports, reads through a transport, MQTT
// output turned into socket bytes before anything is written, goodbyes on close, and the once-a-second tick.
import MQTTCodec
import MidgeCore

/// A connection's transport and where its output stops being socket bytes.
final class TransportSlot {
    let transport: any ConnectionTransport
    /// `output[..<wireEnd]` is for the socket; packets encoded after it are MQTT, still to go through `send`.
    var wireEnd = 0
    /// Why the connection ends, once known, for `closing`.
    var closeReason: CloseReason?

    init(_ transport: any ConnectionTransport) {
        self.transport = transport
    }
}

struct TransportFollowUp {
    let connection: ConnectionID
    var mqtt: [UInt8]
    var close: CloseReason?
}

/// One loop's transports, by `ConnectionID.rawValue`. Only connections with `hasTransport` have an entry. Confined to
/// its loop, and the transports with it: every way to a transport goes through `slots`, which debug builds check
/// (see `LoopOwner`).
struct TransportTable {
    var slots: [UInt64: TransportSlot] {
        _read {
            assertOwned()
            yield storedSlots
        }
        _modify {
            assertOwned()
            yield &storedSlots
        }
    }
    private var storedSlots: [UInt64: TransportSlot] = [:]
    #if DEBUG
        /// The loop's owner, set by the loop as it starts; nil (unchecked) for a table no loop holds.
        var owner: LoopOwner?
    #endif
    /// The MQTT bytes a transport produced from one read, reused between reads.
    var scratch: [UInt8] = []
    /// MQTT output taken out of a connection's buffer on its way through `send`, reused.
    var pending: [UInt8] = []
    var nextTick: Int64 = 0
    /// What transports' `send` produced for after this turn's writes: MQTT for the core, or a close once the
    /// connection's answer is written. Handled at the start of the next turn, which then does not wait for events.
    var followUps: [TransportFollowUp] = []
    /// Connections on listeners with their own `max_connections`, for the count to drop when they close.
    var countedBy: [UInt64: ListenerRuntime] = [:]

    static let tickInterval: Int64 = 1_000_000_000

    /// Whether the current thread may touch the table and its transports now; always true in release builds.
    var isOwnedByCurrentThread: Bool {
        #if DEBUG
            owner?.isCurrentThreadAllowed ?? true
        #else
            true
        #endif
    }

    @inline(__always)
    private func assertOwned() {
        assert(isOwnedByCurrentThread, "a loop's transports touched off its thread")
    }
}

extension EventLoop {
    func attachTransport(_ connection: Connection, _ transport: any ConnectionTransport) {
        transports.slots[connection.id.rawValue] = TransportSlot(transport)
        if transports.slots.count == 1 { transports.nextTick = now + TransportTable.tickInterval }
    }

    func detachTransport(_ connection: Connection) {
        transports.slots[connection.id.rawValue] = nil
    }

    /// One read's bytes through the connection's transport: socket replies go out, the MQTT stream goes to the
    /// decoder exactly as a TCP client's bytes would.
    func receivedThroughTransport(_ connection: Connection, _ bytes: UnsafeRawBufferPointer) {
        guard let slot = transports.slots[connection.id.rawValue] else { return }
        if let failure = sealTransportOutput(connection, slot) {
            transportClosed(connection, reason: failure)
            return
        }
        var mqtt: [UInt8] = []
        swap(&mqtt, &transports.scratch)
        prepareOutput(connection)
        let status = slot.transport.received(
            bytes, mqtt: &mqtt, wire: &connection.output, now: MonotonicTime(nanoseconds: now))
        slot.wireEnd = connection.output.count
        if connection.output.count > connection.outputSent { markDirty(connection) }
        if !mqtt.isEmpty && connection.state != .closing {
            mqtt.withUnsafeBytes { receivedMQTT(connection, $0) }
        }
        mqtt.removeAll(keepingCapacity: true)
        if mqtt.capacity <= 64 * 1024 { swap(&mqtt, &transports.scratch) }
        if case .close(let reason) = status { transportClosed(connection, reason: reason) }
    }

    /// Passes the MQTT packets encoded into the connection's output since the last call through the transport, so
    /// the whole buffer is socket bytes. Called before anything is written and before a transport adds its own
    /// bytes. Returns why the transport ended the connection, if it did.
    @discardableResult
    func sealTransportOutput(_ connection: Connection, _ known: TransportSlot? = nil) -> CloseReason? {
        guard let slot = known ?? transports.slots[connection.id.rawValue] else { return nil }
        defer { slot.wireEnd = connection.output.count }
        guard connection.output.count > slot.wireEnd else { return nil }
        var packets = transports.pending
        transports.pending = []
        packets.append(contentsOf: connection.output[slot.wireEnd...])
        connection.output.removeSubrange(slot.wireEnd...)
        var mqtt: [UInt8] = []
        let status = packets.withUnsafeBytes {
            slot.transport.send($0, mqtt: &mqtt, wire: &connection.output, now: MonotonicTime(nanoseconds: now))
        }
        packets.removeAll(keepingCapacity: true)
        if packets.capacity <= 64 * 1024 { transports.pending = packets }
        var close: CloseReason? = nil
        if case .close(let reason) = status { close = reason }
        // Not now: this may run in the middle of the turn's writes, and the answer in `output` must go out first.
        if !mqtt.isEmpty || close != nil {
            transports.followUps.append(TransportFollowUp(connection: connection.id, mqtt: mqtt, close: close))
        }
        return nil
    }

    /// What transports' `send` left for after the last turn's writes: their clients' answers go to the core, and
    /// connections whose transport ended them close now that their output has been written.
    func handTransportFollowUps() {
        guard !transports.followUps.isEmpty else { return }
        let followUps = transports.followUps
        transports.followUps = []
        for followUp in followUps {
            guard let connection = connections[followUp.connection], connection.state != .closing else { continue }
            if !followUp.mqtt.isEmpty { followUp.mqtt.withUnsafeBytes { receivedMQTT(connection, $0) } }
            if let reason = followUp.close { transportClosed(connection, reason: reason) }
        }
    }

    /// The transport's goodbye, once the connection is closing: after any MQTT output still queued (a refusing
    /// CONNACK), before the final flush.
    func closeTransport(_ connection: Connection) {
        guard let slot = transports.slots[connection.id.rawValue] else { return }
        sealTransportOutput(connection, slot)
        prepareOutput(connection)
        slot.transport.closing(slot.closeReason ?? .clientDisconnected, wire: &connection.output)
        slot.wireEnd = connection.output.count
    }

    /// Remembers why a connection with a transport ends, for the goodbye it sends.
    func noteCloseReason(_ connection: Connection, _ reason: CloseReason) {
        guard let slot = transports.slots[connection.id.rawValue], slot.closeReason == nil else { return }
        slot.closeReason = reason
    }

    /// The transport ended the connection: like a network drop (the Will fires unless DISCONNECT came first).
    func transportClosed(_ connection: Connection, reason: CloseReason) {
        guard connection.state != .closing else { return }
        if !connection.reachedCore && reason != .endOfStream {
            logger.log(.notice, "Client <unknown> from \(connection.info.remoteAddress): \(reason), disconnecting.")
            noteCloseReason(connection, reason)
            beginClose(connection)
            return
        }
        connectionLost(connection, reason: reason)
    }

    /// About once a second: heartbeats and timeouts inside transports.
    func tickTransportsIfDue() {
        guard !transports.slots.isEmpty, now >= transports.nextTick else { return }
        transports.nextTick = now + TransportTable.tickInterval
        let time = MonotonicTime(nanoseconds: now)
        for (rawID, slot) in transports.slots {
            guard let connection = connections[ConnectionID(rawValue: rawID)], connection.state != .closing else {
                continue
            }
            if let failure = sealTransportOutput(connection, slot) {
                transportClosed(connection, reason: failure)
                continue
            }
            var mqtt: [UInt8] = []
            prepareOutput(connection)
            let status = slot.transport.tick(now: time, mqtt: &mqtt, wire: &connection.output)
            slot.wireEnd = connection.output.count
            if connection.output.count > connection.outputSent { markDirty(connection) }
            if !mqtt.isEmpty { mqtt.withUnsafeBytes { receivedMQTT(connection, $0) } }
            if case .close(let reason) = status { transportClosed(connection, reason: reason) }
        }
    }
}

extension EventLoop {
    /// Calls the transport of `id` because another thread asked (`GatewayHubHost.wake`); gone connections are
    /// skipped, and so are congested ones: a client that does not read would otherwise make the loop hold every
    /// message of its topics. Its drain (`noteOutputLevel`) wakes it again, and it reads on from its cursor.
    func pokeTransport(_ id: ConnectionID) {
        guard let connection = connections[id], connection.state != .closing, !connection.outputCongested,
            let slot = transports.slots[id.rawValue]
        else { return }
        if let failure = sealTransportOutput(connection, slot) {
            transportClosed(connection, reason: failure)
            return
        }
        var mqtt: [UInt8] = []
        prepareOutput(connection)
        let status = slot.transport.poke(now: MonotonicTime(nanoseconds: now), mqtt: &mqtt, wire: &connection.output)
        slot.wireEnd = connection.output.count
        if connection.output.count > connection.outputSent { markDirty(connection) }
        if !mqtt.isEmpty { mqtt.withUnsafeBytes { receivedMQTT(connection, $0) } }
        if case .close(let reason) = status { transportClosed(connection, reason: reason) }
    }
}

// MARK: Accepting on a listener with a transport or its own limits

extension EventLoop {
    /// The listener's own `max_connections`, after the broker-wide one. False: the socket was refused and closed.
    func admit(fd: Int32, address: String, on runtime: ListenerRuntime) -> Bool {
        guard runtime.countsConnections else { return true }
        let limit = runtime.configuration.maxConnections
        if runtime.connectionCount.add(1, ordering: .relaxed).newValue > limit {
            runtime.connectionCount.subtract(1, ordering: .relaxed)
            server.connectionCount.subtract(1, ordering: .relaxed)
            logger.log(
                .notice,
                "Client connection from \(address) denied: max_connections (\(limit)) reached on port "
                    + "\(runtime.configuration.port).")
            Syscall.close(fd)
            return false
        }
        return true
    }

    /// Gives an accepted connection its transport and remembers which listener counts it.
    func adopt(_ connection: Connection, on runtime: ListenerRuntime) {
        if let factory = runtime.factory {
            let context = TransportContext(
                connection: connection.id, listener: runtime.configuration,
                remoteAddress: connection.info.remoteAddress,
                now: MonotonicTime(nanoseconds: now), host: self)
            attachTransport(connection, factory(context))
        }
        if runtime.countsConnections { transports.countedBy[connection.id.rawValue] = runtime }
    }

    /// The connection's fd is closed: drop its transport and its place in its listener's count.
    func forget(_ connection: Connection) {
        if connection.hasTransport {
            detachTransport(connection)
            forgetBridgeConnection(connection.id)
        }
        if !transports.countedBy.isEmpty,
            let runtime = transports.countedBy.removeValue(forKey: connection.id.rawValue)
        {
            runtime.connectionCount.subtract(1, ordering: .relaxed)
        }
    }
}

extension EventLoop {
    /// After a write: everything left in the output was sealed before it, so all of it is socket bytes.
    func transportOutputWritten(_ connection: Connection) {
        transports.slots[connection.id.rawValue]?.wireEnd = connection.output.count
    }
}
