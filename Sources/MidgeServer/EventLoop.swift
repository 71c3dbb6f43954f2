// One epoll event loop on its own thread: accept, read and frame (§2.2), first-packet rules (§3.1), batched
// hand-off to and from the core's owner (loop 0), one flush per dirty connection per turn.
import CLinux
import Glibc
import MQTTCodec
import MidgeCore

/// Thread-confined: created on its loop's thread and never shared. Loop 0 also owns the `Broker`.
final class EventLoop {
    /// Bytes read per `read` call; one buffer per loop, packets are decoded straight out of it.
    static let readBufferSize = 64 * 1024
    /// Reads per connection per wake-up, so one fast sender cannot starve the loop's other connections.
    /// Level-triggered epoll reports the connection again next turn if more is waiting.
    static let maxReadsPerWakeup = 4
    /// Accepts per listener per wake-up, for the same reason.
    static let maxAcceptsPerWakeup = 64
    /// Above this much unsent output, QoS 0 deliveries to the connection are dropped; QoS 1/2 are bounded
    /// by the core's in-flight window already.
    static let maxUnsentBeforeDroppingQoS0 = 8 * 1024 * 1024
    /// Output buffers at most this large are kept (emptied) after a full flush to save a malloc next time;
    /// larger ones are released so a burst does not pin memory on an idle connection.
    static let retainedOutputCapacity = 4 * 1024
    /// How often loop 0 calls `Broker.tick` when no deadline is earlier.
    static let tickInterval: Int64 = 100_000_000
    /// When accept fails for lack of fds, accepting pauses this long instead of spinning on a ready listener.
    static let acceptPause: Int64 = 1_000_000_000

    /// epoll tokens: connections use their `ConnectionID.rawValue` (below 2^63 because threads ≤ 128);
    /// the top bit marks the loop's own fds.
    static let wakeToken: UInt64 = 1 << 63 | 0xFFFF_FFFF
    static let listenerTokenBit: UInt64 = 1 << 63

    let index: Int
    let server: ServerState
    let handle: LoopHandle
    let logger: Logger
    let decoder: FrameDecoder
    let connectTimeout: Int64
    let backlogHighWater: Int
    let backlogLowWater: Int

    /// Connections by `ConnectionID.rawValue`, which is also their epoll token: an event whose token is
    /// no longer here belongs to a connection closed earlier in the same batch (its fd may be reused) and is
    /// dropped.
    private var connections: [UInt64: Connection] = [:]
    private var nextSerial: UInt64 = 1
    private let readBuffer = UnsafeMutableRawBufferPointer.allocate(
        byteCount: EventLoop.readBufferSize, alignment: 16)
    /// Connections with output to write or a close to carry out at the end of this turn.
    private var dirty: [Connection] = []
    /// Connect deadlines in accept order. `connect_timeout` is the same for all, so the queue is sorted by
    /// construction: expiry pops from the front. Entries whose connection moved on are skipped.
    private var connectDeadlines: [(deadline: Int64, id: UInt64)] = []
    private var connectDeadlinesHead = 0
    private var acceptPausedUntil: Int64?
    private var spare = Mailbox()
    private var now: Int64
    private var stopping = false
    private var finished = false

    // Loop 0 only: the core and the actions it produced for the other loops, one batch per loop per turn.
    private let broker: Broker?
    private var coreActions: [Action] = []
    private var actionsForLoops: [[Action]]
    private var stoppedLoops = 0
    private var nextTick: Int64 = 0

    // Loops 1…: events for the core, handed to loop 0 once per turn, and the connections not being read
    // because the core is behind.
    private var eventsForCore: [CoreEvent] = []
    private var eventsForCoreWeight = 0
    private var pausedConnections: [Connection] = []

    init(server: ServerState, index: Int) {
        self.index = index
        self.server = server
        self.handle = server.handles[index]
        self.logger = server.logger
        self.decoder = FrameDecoder(maxRemainingLength: server.settings.maxRemainingLength)
        self.connectTimeout = Int64(server.settings.connectTimeout) * 1_000_000_000
        self.backlogHighWater = server.settings.coreBacklogHighWater
        self.backlogLowWater = server.settings.coreBacklogLowWater
        self.now = Syscall.monotonicNanoseconds()
        self.actionsForLoops = Array(repeating: [], count: server.handles.count)
        if index == 0 {
            let logger = server.logger
            let settings = server.settings
            broker = Broker(
                configuration: settings.broker, authenticator: settings.authenticator,
                accessControl: settings.accessControl, log: { level, message in logger.log(level, message) })
        } else {
            broker = nil
        }
    }

    deinit {
        readBuffer.deallocate()
    }

    // MARK: The turn

    func run() {
        let events = UnsafeMutableBufferPointer<epoll_event>.allocate(capacity: 256)
        defer { events.deallocate() }
        nextTick = now + Self.tickInterval
        while !finished {
            let count = Syscall.epollWait(handle.epollFD, into: events, timeoutMilliseconds: timeout())
            now = Syscall.monotonicNanoseconds()
            var woken = false
            for event in events.prefix(count) {
                let token = event.data.u64
                if token == Self.wakeToken {
                    Syscall.drainEventFD(handle.wakeFD)
                    woken = true
                } else if token & Self.listenerTokenBit != 0 {
                    acceptConnections(listener: Int(token & 0xFFFF))
                } else if let connection = connections[token] {
                    handleIO(connection, events: event.events)
                }
            }
            // After the eventfd read: anything posted from now on finds an empty mailbox and wakes us again.
            if woken { processMailbox() }
            expireConnectDeadlines()
            resumeAcceptingIfDue()
            if broker != nil { tickIfDue() }
            endTurn()
        }
        for connection in Array(connections.values) { close(connection) }
    }

    /// Milliseconds until the earliest timer of this loop, rounded up so a deadline is never woken early
    /// into a busy spin; -1 when there is none.
    private func timeout() -> Int32 {
        var wakeAt = Int64.max
        if connectDeadlinesHead < connectDeadlines.count { wakeAt = connectDeadlines[connectDeadlinesHead].deadline }
        if let acceptPausedUntil { wakeAt = min(wakeAt, acceptPausedUntil) }
        if let broker, !stopping {
            wakeAt = min(wakeAt, nextTick)
            if let deadline = broker.nextDeadline { wakeAt = min(wakeAt, deadline.nanoseconds) }
        }
        if wakeAt == Int64.max { return -1 }
        let milliseconds = (wakeAt - now + 999_999) / 1_000_000
        return Int32(clamping: max(0, milliseconds))
    }

    private func endTurn() {
        // Index loop: flushing can fail, and reporting that to the core (on loop 0) can dirty more connections.
        var position = 0
        while position < dirty.count {
            let connection = dirty[position]
            position += 1
            connection.isDirty = false
            if let failure = flush(connection), connection.state != .closing {
                connectionLost(connection, reason: .connectionLost(failure))
            }
            if connection.state == .closing { close(connection) }
        }
        dirty.removeAll(keepingCapacity: true)

        if index == 0 {
            for target in 1..<max(1, actionsForLoops.count) where !actionsForLoops[target].isEmpty {
                server.handles[target].post(actions: &actionsForLoops[target])
            }
            if stopping && stoppedLoops == server.handles.count - 1 { finished = true }
        } else if !eventsForCore.isEmpty || stopping {
            server.coreBacklog.add(eventsForCoreWeight, ordering: .sequentiallyConsistent)
            server.handles[0].post(events: &eventsForCore, weight: eventsForCoreWeight, loopStopped: stopping)
            eventsForCoreWeight = 0
            if stopping { finished = true }
        }
        // Dekker-style with loop 0's check in `processMailbox`: the flag is set before the backlog is read here,
        // the backlog is lowered before the flag is read there, so one of the two always sees the drain.
        if !pausedConnections.isEmpty,
            server.coreBacklog.load(ordering: .sequentiallyConsistent) <= backlogLowWater
        {
            resumeReads()
        }
    }

    private func processMailbox() {
        handle.take(into: &spare)
        if broker != nil {
            for event in spare.events { coreReceive(event) }
            stoppedLoops += spare.stoppedLoops
            let backlog = server.coreBacklog.subtract(spare.eventsWeight, ordering: .sequentiallyConsistent).newValue
            if backlog <= backlogLowWater {
                for other in server.handles.dropFirst()
                where other.awaitsCoreDrain.load(ordering: .sequentiallyConsistent) {
                    if other.awaitsCoreDrain.exchange(false, ordering: .sequentiallyConsistent) {
                        other.post { $0.resumeReads = true }
                    }
                }
            }
        } else {
            for action in spare.actions { apply(action) }
            if spare.resumeReads { resumeReads() }
        }
        let stopRequested = spare.stopRequested
        spare.clear()
        if stopRequested && !stopping { beginShutdown() }
    }

    // MARK: Accepting

    private func acceptConnections(listener: Int) {
        guard !stopping, acceptPausedUntil == nil else { return }
        let (listenFD, port) = handle.listeners[listener]
        for _ in 0..<Self.maxAcceptsPerWakeup {
            var peer = sockaddr_storage()
            let accepted: IOResult<Int32>
            do {
                accepted = try Syscall.accept(listenFD, peer: &peer)
            } catch {
                switch error.errno {
                case ECONNABORTED, EPROTO, EPERM:
                    continue  // that one connection failed before we got it; the next may be fine
                case EMFILE, ENFILE, ENOBUFS, ENOMEM:
                    logger.log(.error, "Unable to accept a new connection: \(error); pausing accepts for a second.")
                    pauseAccepting()
                    return
                default:
                    logger.log(.error, "Unable to accept a new connection: \(error).")
                    return
                }
            }
            guard case .done(let fd) = accepted else { return }
            let address = IPAddress.describePeer(peer)

            let count = server.connectionCount.add(1, ordering: .relaxed).newValue
            let limit = server.settings.maxConnections
            if limit >= 0 && count > limit {
                server.connectionCount.subtract(1, ordering: .relaxed)
                logger.log(.notice, "Client connection from \(address) denied: max_connections (\(limit)) reached.")
                Syscall.close(fd)
                continue
            }
            // Small packets (PUBACK, PINGRESP) must not wait for Nagle's algorithm; writes are batched per turn.
            try? Syscall.setOption(fd, Int32(IPPROTO_TCP), TCP_NODELAY)
            let id = ConnectionID(loop: index, serial: nextSerial)
            nextSerial += 1
            do {
                try Syscall.epollControl(
                    handle.epollFD, EPOLL_CTL_ADD, fd, events: CLINUX_EPOLLIN | CLINUX_EPOLLRDHUP, token: id.rawValue)
            } catch {
                logger.log(.error, "Unable to watch the connection from \(address): \(error).")
                server.connectionCount.subtract(1, ordering: .relaxed)
                Syscall.close(fd)
                continue
            }
            let connection = Connection(
                id: id, fd: fd, info: ConnectionInfo(remoteAddress: address, listenerPort: port))
            connections[id.rawValue] = connection
            connectDeadlines.append((now + connectTimeout, id.rawValue))
            logger.log(.notice, "New connection from \(address) on port \(port).")
            logger.log(.debug, "Connection from \(address) is \(id) on event loop \(index).")
        }
    }

    private func pauseAccepting() {
        acceptPausedUntil = now + Self.acceptPause
        for (position, listener) in handle.listeners.enumerated() {
            try? Syscall.epollControl(
                handle.epollFD, EPOLL_CTL_MOD, listener.fd, events: 0,
                token: Self.listenerTokenBit | UInt64(position))
        }
    }

    private func resumeAcceptingIfDue() {
        guard let until = acceptPausedUntil, now >= until else { return }
        acceptPausedUntil = nil
        guard !stopping else { return }
        for (position, listener) in handle.listeners.enumerated() {
            try? Syscall.epollControl(
                handle.epollFD, EPOLL_CTL_MOD, listener.fd, events: CLINUX_EPOLLIN,
                token: Self.listenerTokenBit | UInt64(position))
        }
    }

    private func expireConnectDeadlines() {
        while connectDeadlinesHead < connectDeadlines.count {
            let (deadline, token) = connectDeadlines[connectDeadlinesHead]
            guard deadline <= now else { break }
            connectDeadlinesHead += 1
            guard let connection = connections[token], connection.state == .awaitingConnect else { continue }
            logger.log(
                .notice,
                "Client <unknown> from \(connection.info.remoteAddress) sent no CONNECT within "
                    + "\(server.settings.connectTimeout) seconds, disconnecting.")
            beginClose(connection)
        }
        // Drop the consumed prefix once it dominates, so the queue stays proportional to pending connects.
        if connectDeadlinesHead > 1024 && connectDeadlinesHead * 2 > connectDeadlines.count {
            connectDeadlines.removeFirst(connectDeadlinesHead)
            connectDeadlinesHead = 0
        } else if connectDeadlinesHead == connectDeadlines.count && connectDeadlinesHead > 0 {
            connectDeadlines.removeAll(keepingCapacity: connectDeadlines.capacity <= 1024)
            connectDeadlinesHead = 0
        }
    }

    // MARK: Reading

    private func handleIO(_ connection: Connection, events: UInt32) {
        if events & CLINUX_EPOLLOUT != 0 && connection.state != .closing {
            if let failure = flush(connection) {
                connectionLost(connection, reason: .connectionLost(failure))
                return
            }
        }
        // EOF, hang-up and socket errors all surface through read() (0 or an errno), so one path handles them.
        guard events & (CLINUX_EPOLLIN | CLINUX_EPOLLRDHUP | CLINUX_EPOLLHUP | CLINUX_EPOLLERR) != 0 else { return }
        // A dead socket (HUP/ERR are reported even without EPOLLIN) is read to its end regardless, or it would
        // be reported again on every turn.
        if broker == nil && events & (CLINUX_EPOLLHUP | CLINUX_EPOLLERR) == 0
            && server.coreBacklog.load(ordering: .relaxed) + eventsForCoreWeight > backlogHighWater
        {
            pauseReads(connection)
            return
        }
        readAvailable(connection)
    }

    private func readAvailable(_ connection: Connection) {
        for _ in 0..<Self.maxReadsPerWakeup {
            guard connection.state != .closing else { return }
            let result: IOResult<Int>
            do {
                result = try Syscall.read(connection.fd, into: readBuffer)
            } catch {
                connectionLost(connection, reason: .connectionLost(String(cString: strerror(error.errno))))
                return
            }
            switch result {
            case .wouldBlock:
                return
            case .done(0):
                connectionLost(connection, reason: .endOfStream)
                return
            case .done(let count):
                received(connection, count: count)
                if count < readBuffer.count { return }  // the socket is drained; skip the EAGAIN read
            }
        }
    }

    /// Frames and dispatches what one read brought. Whole packets are decoded straight out of the read
    /// buffer; only an incomplete tail is copied, into the connection's `partial`.
    private func received(_ connection: Connection, count: Int) {
        let fresh = UnsafeRawBufferPointer(rebasing: readBuffer[0..<count])
        if connection.partial.isEmpty {
            let consumed = decodePackets(connection, from: fresh)
            if connection.state != .closing && consumed < count {
                connection.partial = Array(fresh[consumed...])
            }
        } else {
            var pending = connection.partial
            connection.partial = []
            pending.append(contentsOf: fresh)
            let consumed = pending.withUnsafeBytes { decodePackets(connection, from: $0) }
            if connection.state != .closing && consumed < pending.count {
                pending.removeFirst(consumed)
                connection.partial = pending
            }
        }
    }

    private func decodePackets(_ connection: Connection, from bytes: UnsafeRawBufferPointer) -> Int {
        var offset = 0
        while offset < bytes.count && connection.state != .closing {
            do {
                guard let (packet, consumed) = try decoder.decode(UnsafeRawBufferPointer(rebasing: bytes[offset...]))
                else { break }
                offset += consumed
                dispatch(packet, from: connection)
            } catch {
                decodeFailed(connection, error)
                break
            }
        }
        return offset
    }

    private func dispatch(_ packet: Packet, from connection: Connection) {
        switch connection.state {
        case .awaitingConnect:
            guard case .connect(let connect) = packet else {
                // [MQTT-3.1.0-1] the first packet must be CONNECT: close without a reply.
                let name = String(describing: packet.type).uppercased()
                let address = connection.info.remoteAddress
                logger.log(.notice, "Client <unknown> from \(address) sent \(name) before CONNECT, disconnecting.")
                beginClose(connection)
                return
            }
            connection.clientID = connect.clientID
            connection.state = .connected
            connection.reachedCore = true
            report(.packet(connection.id, packet, connection.info))
        case .connected:
            // Everything else, a second CONNECT included [MQTT-3.1.0-2], is the core's to judge.
            report(.packet(connection.id, packet, connection.info))
        case .closing:
            return
        }
    }

    private func decodeFailed(_ connection: Connection, _ error: DecodeError) {
        if case .unacceptableProtocolVersion(let level) = error, connection.state == .awaitingConnect {
            logger.log(
                .notice,
                "Client <unknown> from \(connection.info.remoteAddress) uses unsupported protocol level \(level), "
                    + "disconnecting.")
            // [MQTT-3.1.2-2] CONNACK with return code 0x01, then close.
            let refusal = ConnAck(sessionPresent: false, returnCode: .unacceptableProtocolVersion)
            Packet.connack(refusal).encode(into: &connection.output)
            beginClose(connection)
            return
        }
        if connection.reachedCore {
            // [MQTT-4.8.0-1] a protocol error for the core, which logs it with the client id and publishes the Will.
            let why: String
            if case .malformed(let reason) = error { why = reason } else { why = error.description }
            report(.closed(connection.id, .protocolError(why)))
        } else {
            logger.log(
                .notice, "Client <unknown> from \(connection.info.remoteAddress): \(error), disconnecting.")
        }
        beginClose(connection)
    }

    /// EOF or a socket error. Before CONNECT the core never knew the connection; after, it must be told.
    private func connectionLost(_ connection: Connection, reason: CloseReason) {
        guard connection.state != .closing else { return }
        if connection.reachedCore {
            report(.closed(connection.id, reason))
        } else {
            logger.log(.notice, "Client <unknown> from \(connection.info.remoteAddress) closed its connection.")
        }
        beginClose(connection)
    }

    // MARK: The core

    /// On loop 0 the core is called at once; elsewhere the event joins this turn's batch for loop 0.
    private func report(_ event: CoreEvent) {
        if broker != nil {
            coreReceive(event)
        } else {
            eventsForCoreWeight += event.backlogWeight
            eventsForCore.append(event)
        }
    }

    private func pauseReads(_ connection: Connection) {
        guard !connection.readsPaused else { return }
        connection.readsPaused = true
        pausedConnections.append(connection)
        updateRegistration(connection)
        handle.awaitsCoreDrain.store(true, ordering: .sequentiallyConsistent)
    }

    private func resumeReads() {
        handle.awaitsCoreDrain.store(false, ordering: .sequentiallyConsistent)
        for connection in pausedConnections where connection.readsPaused {
            connection.readsPaused = false
            if connection.state != .closing && connections[connection.id.rawValue] === connection {
                updateRegistration(connection)
            }
        }
        pausedConnections.removeAll()
    }

    /// Loop 0: one event into the core, its actions out to their connections' loops.
    private func coreReceive(_ event: CoreEvent) {
        guard let broker else { return }
        let time = MonotonicTime(nanoseconds: now)
        switch event {
        case .packet(let id, let packet, let info):
            broker.handle(packet, from: id, info: info, now: time, into: &coreActions)
        case .closed(let id, let reason):
            broker.connectionClosed(id, reason: reason, now: time, into: &coreActions)
        }
        routeCoreActions()
    }

    private func tickIfDue() {
        guard let broker, !stopping else { return }
        let deadlineDue = broker.nextDeadline.map { $0.nanoseconds <= now } ?? false
        guard deadlineDue || now >= nextTick else { return }
        broker.tick(now: MonotonicTime(nanoseconds: now), into: &coreActions)
        routeCoreActions()
        nextTick = now + Self.tickInterval
    }

    /// Loop 0's own connections get their actions at once; the rest are batched per loop, in core order,
    /// which keeps every connection's packets FIFO [MQTT-4.6.0-6].
    private func routeCoreActions() {
        for action in coreActions {
            let target: Int
            switch action {
            case .send(let id, _), .close(let id, _): target = id.loop
            }
            if target == index {
                apply(action)
            } else if target < actionsForLoops.count {
                actionsForLoops[target].append(action)
            }
        }
        coreActions.removeAll(keepingCapacity: true)
    }

    private func apply(_ action: Action) {
        switch action {
        case .send(let id, let packet):
            guard let connection = connections[id.rawValue], connection.state != .closing else { return }
            switch packet {
            case .control(let control):
                control.encode(into: &connection.output)
            case .publish(let delivery):
                if delivery.qos == .atMostOnce && connection.unsentCount > Self.maxUnsentBeforeDroppingQoS0 {
                    dropQoS0(to: connection)
                    return
                }
                let message = delivery.message
                Publish.encode(
                    topic: message.topic, payload: message.payload, qos: delivery.qos, retain: delivery.retain,
                    dup: delivery.dup, packetID: delivery.packetID, into: &connection.output)
            }
            markDirty(connection)
        case .close(let id, _):
            // The core has forgotten the connection already: no report back.
            guard let connection = connections[id.rawValue] else { return }
            connection.reachedCore = false
            beginClose(connection)
        }
    }

    private func dropQoS0(to connection: Connection) {
        if connection.droppedQoS0 == 0 {
            logger.log(
                .warning,
                "Outgoing data for client \(connection.logName) exceeds \(Self.maxUnsentBeforeDroppingQoS0) bytes; "
                    + "dropping QoS 0 messages to it until it catches up.")
        }
        connection.droppedQoS0 += 1
        handle.droppedQoS0Messages.add(1, ordering: .relaxed)
    }

    // MARK: Writing and closing

    private func markDirty(_ connection: Connection) {
        guard !connection.isDirty else { return }
        connection.isDirty = true
        dirty.append(connection)
    }

    private func beginClose(_ connection: Connection) {
        guard connection.state != .closing else { return }
        connection.state = .closing
        connection.partial = []
        markDirty(connection)
    }

    /// Writes what is unsent, usually in one `write`. On EAGAIN keeps the rest and asks for EPOLLOUT.
    /// Returns why the socket failed, or nil.
    private func flush(_ connection: Connection) -> String? {
        while connection.outputSent < connection.output.count {
            let sent = connection.outputSent
            let attempt = connection.output.withUnsafeBytes { bytes in
                Result { () throws(SyscallError) in
                    try Syscall.write(connection.fd, from: UnsafeRawBufferPointer(rebasing: bytes[sent...]))
                }
            }
            let result: IOResult<Int>
            switch attempt {
            case .success(let value): result = value
            case .failure(let error): return "write failed: \(String(cString: strerror(error.errno)))"
            }
            switch result {
            case .done(let written):
                connection.outputSent += written
            case .wouldBlock:
                if connection.state != .closing && !connection.watchesWritable {
                    connection.watchesWritable = true
                    updateRegistration(connection)
                }
                // Compact once the written prefix dominates, so appends do not grow the buffer forever.
                if connection.outputSent >= 64 * 1024 && connection.outputSent * 2 >= connection.output.count {
                    connection.output.removeFirst(connection.outputSent)
                    connection.outputSent = 0
                }
                return nil
            }
        }
        if connection.output.capacity > Self.retainedOutputCapacity {
            connection.output = []
        } else {
            connection.output.removeAll(keepingCapacity: true)
        }
        connection.outputSent = 0
        if connection.watchesWritable && connection.state != .closing {
            connection.watchesWritable = false
            updateRegistration(connection)
        }
        if connection.droppedQoS0 > 0 {
            logger.log(
                .notice,
                "Client \(connection.logName) caught up; \(connection.droppedQoS0) QoS 0 messages to it were dropped.")
            connection.droppedQoS0 = 0
        }
        return nil
    }

    private func updateRegistration(_ connection: Connection) {
        var events: UInt32 = connection.readsPaused ? 0 : CLINUX_EPOLLIN | CLINUX_EPOLLRDHUP
        if connection.watchesWritable { events |= CLINUX_EPOLLOUT }
        try? Syscall.epollControl(
            handle.epollFD, EPOLL_CTL_MOD, connection.fd, events: events, token: connection.id.rawValue)
    }

    /// The fd leaves the epoll set by itself when closed (it is never duplicated).
    private func close(_ connection: Connection) {
        guard connections.removeValue(forKey: connection.id.rawValue) != nil else { return }
        if connection.droppedQoS0 > 0 {
            logger.log(
                .notice, "\(connection.droppedQoS0) QoS 0 messages to client \(connection.logName) were dropped.")
        }
        Syscall.close(connection.fd)
        server.connectionCount.subtract(1, ordering: .relaxed)
    }

    // MARK: Shutdown

    /// Stop accepting; every connection ends with `.serverShutdown` (no Wills); loops 1… tell loop 0 they are
    /// done in the same batch as their last events, and loop 0 finishes once all of them have.
    private func beginShutdown() {
        stopping = true
        for listener in handle.listeners { Syscall.close(listener.fd) }
        for connection in Array(connections.values) where connection.state != .closing {
            if connection.reachedCore { report(.closed(connection.id, .serverShutdown)) }
            beginClose(connection)
        }
    }
}
