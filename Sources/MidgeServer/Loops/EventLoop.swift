// One epoll event loop on its own thread: accepting, timers and the turn that ties reading (EventLoop+Input),
// the core hand-off (EventLoop+Core) and writing (EventLoop+Output) together; orderly shutdown.
import CLinux
import Glibc
import MQTTCodec
import MidgeCore

/// Touched only under its handle's turn lock: by its own thread for each turn, and while it sleeps by a loop that
/// ran the core and carries out a small batch for it (`deliverWhileAsleep`). Loop 0 creates the `Broker` and runs
/// it every turn; the others run it while they hold it (see `SharedCore`).
final class EventLoop {
    /// Bytes read per `read` call; one buffer per loop, packets are decoded straight out of it.
    static let readBufferSize = 64 * 1024
    /// Reads per connection per wake-up, so one fast sender cannot starve the loop's other connections.
    /// Level-triggered epoll reports the connection again next turn if more is waiting.
    static let maxReadsPerWakeup = 4
    /// Accepts per listener per wake-up, for the same reason.
    static let maxAcceptsPerWakeup = 64
    /// How often loop 0 calls `Broker.tick` when no deadline is earlier.
    static let tickInterval: Int64 = 100_000_000
    /// When accept fails for lack of fds, accepting pauses this long instead of spinning on a ready listener.
    static let acceptPause: Int64 = 1_000_000_000
    /// epoll events taken per `epoll_wait`.
    static let eventBatch = 256

    /// epoll tokens: connections use their `ConnectionID.rawValue` (below 2^63 because threads ≤ 128);
    /// the top bit marks the loop's own fds.
    static let wakeToken: UInt64 = 1 << 63 | 0xFFFF_FFFF
    static let listenerTokenBit: UInt64 = 1 << 63

    let index: Int
    let server: ServerState
    let handle: LoopHandle
    let logger: Logger
    let decoder: FrameDecoder
    let settings: ServerSettings
    let connectTimeout: Int64

    /// Connections by the slot in their id, which is also their epoll token: an event or action whose id is no
    /// longer in the table belongs to a connection closed earlier (its fd may be reused) and is dropped.
    @exclusivity(unchecked) var connections = ConnectionTable()
    let readBuffer = UnsafeMutableRawBufferPointer.allocate(byteCount: EventLoop.readBufferSize, alignment: 16)
    /// Connections with output to write or a close to carry out at the end of this turn.
    @exclusivity(unchecked) var dirty: [Connection] = []
    /// Connections the core released (`ReadingChange.resume`) whose held input is handed on this turn.
    @exclusivity(unchecked) var released: [Connection] = []
    /// Admission answers decided on this loop (a transport's identity, an authenticator without work), waiting for
    /// a point of the turn where the core is not running.
    var admissionsReady: [(ConnectionID, AdmissionAnswer)] = []
    /// Emptied output buffers with their capacity, lent to connections that have something to write this turn,
    /// so busy connections do not allocate per turn and idle ones hold no buffer.
    @exclusivity(unchecked) var outputPool: [[UInt8]] = []
    /// `connect_timeout` of the connections that have not sent CONNECT yet.
    var connectDeadlines = ConnectDeadlines()
    var acceptPausedUntil: Int64?
    @exclusivity(unchecked) var spare = Mailbox()
    /// TLS, WebSocket and HTTP connections' transports (see `ConnectionTransport`); empty on plain MQTT listeners.
    @exclusivity(unchecked) var transports = TransportTable()
    /// Loop 0: each bridge's current connection and last notification.
    var bridgeTable = BridgeTable()
    /// Connection and client rate limits (see `LoopLimits`).
    @exclusivity(unchecked) var limits: LoopLimits
    @exclusivity(unchecked) var now: Int64
    var stopping = false
    var finished = false

    let sharedCore: SharedCore
    /// This loop holds `sharedCore.lock`: for all of loop 0's turns, and for the other loops' runs of the core.
    var runningCore = false
    /// The core, while this loop runs it; nil otherwise.
    var broker: Broker? { runningCore ? sharedCore.broker : nil }
    /// What runs of the core decide, on their way to the loops.
    @exclusivity(unchecked) var output: CoreOutput
    // Loop 0 only.
    var stoppedLoops = 0
    var nextTick: Int64 = 0
    /// When the core next needs `tick`, read at the end of loop 0's last turn (the core can only be read under
    /// its lock); `tickInterval` bounds how late a deadline another loop's run brought forward is seen.
    var coreWakeAt: Int64 = 0

    /// Events on their way to the core, and the connections not read while it is behind.
    @exclusivity(unchecked) var input = CoreInput()

    init(server: ServerState, index: Int) {
        self.index = index
        self.server = server
        self.handle = server.handles[index]
        self.logger = server.logger
        self.settings = server.settings
        self.decoder = FrameDecoder(maxRemainingLength: server.settings.maxRemainingLength)
        self.connectTimeout = Int64(server.settings.connectTimeout) * 1_000_000_000
        self.now = Syscall.monotonicNanoseconds()
        self.output = CoreOutput(loopCount: server.handles.count)
        self.limits = LoopLimits(
            settings: server.settings, listeners: server.listenerOfGroup, now: Syscall.monotonicNanoseconds())
        self.sharedCore = server.core
        // This runs on the loop's own thread: from here on only it, or a holder of its turn lock, touches the loop.
        handle.owner.claim()
        #if DEBUG
            transports.owner = handle.owner
            bridgeTable.owner = handle.owner
        #endif
        if index == 0 {
            let logger = server.logger
            let settings = server.settings
            // Only a server with an HTTP gateway has a recorder to exempt; the others keep their access control as is.
            let hasGateway = server.listenerOfGroup.contains { $0.gateway != nil }
            let accessControl: any AccessControl =
                hasGateway ? GatewayRecorderAccess(inner: settings.accessControl) : settings.accessControl
            let broker = Broker(
                // Every CONNECT is judged by its loop (a transport's identity, the auth gate), even without a
                // password file: a listener may require a certificate.
                configuration: settings.broker, asksAdmission: true,
                accessControl: accessControl,
                listenerSecurity: settings.listenerAuth.map { auth in
                    var security = auth.security
                    security.asksAdmission = true
                    if hasGateway { security.accessControl = GatewayRecorderAccess(inner: security.accessControl) }
                    return security
                },
                controlHandler: settings.controlHandler, log: { level, message in logger.log(level, message) })
            broker.subscriptionEvents = { event in logger.log(event) }
            // Under the lock: the other loops hand their events over until the core is restored.
            sharedCore.lock.withLock {
                server.persistence?.restore(into: broker, now: now, owner: server.handles[0])
                sharedCore.broker = broker
            }
        }
    }

    deinit {
        readBuffer.deallocate()
    }

    // MARK: The turn

    func run() {
        let events = UnsafeMutableBufferPointer<epoll_event>.allocate(capacity: Self.eventBatch)
        defer { events.deallocate() }
        nextTick = now + Self.tickInterval
        coreWakeAt = nextTick
        // Everything but the wait is done under the turn lock: while this thread sleeps, another may deliver to
        // its connections (see `deliverWhileAsleep`), and what it leaves for this loop wakes it.
        var wait = handle.turnLock.withLock { () -> Int32? in
            handle.loop = self
            return timeout()
        }
        while let milliseconds = wait {
            let count = Syscall.epollWait(handle.epollFD, into: events, timeoutMilliseconds: milliseconds)
            wait = handle.turnLock.withLock { () -> Int32? in
                now = Syscall.monotonicNanoseconds()
                settings.metrics.loops[index].countTurn()
                if index == 0 {
                    sharedCore.lock.withLock {
                        startCoreRun()
                        turn(events.prefix(count))
                        runningCore = false
                    }
                } else {
                    turn(events.prefix(count))
                }
                guard !finished else {
                    handle.loop = nil
                    return nil
                }
                return timeout()
            }
        }
        for connection in connections.all { close(connection) }
    }

    private func turn(_ events: UnsafeMutableBufferPointer<epoll_event>.SubSequence) {
        assertOwned()
        let woken = events.contains { $0.data.u64 == Self.wakeToken }
        // The eventfd before the mailbox: anything posted from now on finds an empty mailbox and wakes us again.
        if woken { Syscall.drainEventFD(handle.wakeFD) }
        // Loop 0 looks every turn: another loop may have run the core meanwhile and left actions for this loop's
        // connections, which must go out before anything the core says to them this turn.
        if woken || runningCore { processMailbox() }
        if woken || !admissionsReady.isEmpty { takeAdmissionAnswers() }
        if woken { takeGatewayRequests() }
        for event in events {
            let token = event.data.u64
            if token == Self.wakeToken {
                continue
            } else if token & Self.listenerTokenBit != 0 {
                acceptConnections(listener: Int(token & 0xFFFF))
            } else if let connection = connections[ConnectionID(rawValue: token)] {
                handleIO(connection, events: event.events)
            }
        }
        handReleasedInput()
        handTransportFollowUps()
        expireConnectDeadlines()
        tickTransportsIfDue()
        if now >= limits.windowEnd { startRateWindow() }
        resumeAcceptingIfDue()
        if broker != nil { tickIfDue() }
        endTurn()
    }

    /// Milliseconds until the earliest timer of this loop, rounded up so a deadline is never woken early
    /// into a busy spin; -1 when there is none.
    private func timeout() -> Int32 {
        // Input released during the last turn's writes waits for no event: hand it on at once.
        if !released.isEmpty || !transports.followUps.isEmpty || !admissionsReady.isEmpty { return 0 }
        var wakeAt = Int64.max
        if let deadline = connectDeadlines.next { wakeAt = deadline }
        if let acceptPausedUntil { wakeAt = min(wakeAt, acceptPausedUntil) }
        if !transports.slots.isEmpty { wakeAt = min(wakeAt, transports.nextTick) }
        if limits.holdsAnything { wakeAt = min(wakeAt, limits.windowEnd) }
        if index == 0 && !stopping { wakeAt = min(wakeAt, coreWakeAt) }
        if wakeAt == Int64.max { return -1 }
        let milliseconds = (wakeAt - now + 999_999) / 1_000_000
        return Int32(clamping: max(0, milliseconds))
    }

    // MARK: Accepting

    func acceptConnections(listener: Int) {
        assertOwned()
        guard !stopping, acceptPausedUntil == nil else { return }
        let (listenFD, port) = handle.listeners[listener]
        for _ in 0..<Self.maxAcceptsPerWakeup {
            // Over the listener's max_connection_rate: the rest wait in the backlog until the next second.
            guard mayAccept(listener: listener) else { return }
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
            let limit = settings.maxConnections
            if limit >= 0 && count > limit || !connections.hasRoom {
                server.connectionCount.subtract(1, ordering: .relaxed)
                logger.log(.notice, "Client connection from \(address) denied: max_connections (\(limit)) reached.")
                Syscall.close(fd)
                continue
            }
            let runtime = server.listenerOfGroup[listener]
            guard admit(fd: fd, address: address, on: runtime) else { continue }
            // Small packets (PUBACK, PINGRESP) must not wait for Nagle's algorithm; writes are batched per turn.
            try? Syscall.setOption(fd, Int32(IPPROTO_TCP), TCP_NODELAY)
            let id = connections.nextID(loop: index)
            do {
                try Syscall.epollControl(
                    handle.epollFD, EPOLL_CTL_ADD, fd, events: CLINUX_EPOLLIN | CLINUX_EPOLLRDHUP, token: id.rawValue)
            } catch {
                logger.log(.error, "Unable to watch the connection from \(address): \(error).")
                server.connectionCount.subtract(1, ordering: .relaxed)
                if runtime.countsConnections { runtime.connectionCount.subtract(1, ordering: .relaxed) }
                Syscall.close(fd)
                continue
            }
            let info = ConnectionInfo(
                remoteAddress: address, listenerPort: port, mountPoint: runtime.configuration.mountPoint,
                securityProfile: runtime.configuration.securityProfile)
            let connection = Connection(id: id, fd: fd, info: info, hasTransport: runtime.factory != nil)
            connections.insert(connection)
            adopt(connection, on: runtime)
            addConnectDeadline(now + connectTimeout, id)
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

    // MARK: Connect deadlines

    private func addConnectDeadline(_ deadline: Int64, _ id: ConnectionID) {
        connectDeadlines.add(deadline, id) { connections[$0]?.state == .awaitingConnect }
    }

    private func expireConnectDeadlines() {
        while let id = connectDeadlines.popDue(now: now) {
            guard let connection = connections[id], connection.state == .awaitingConnect,
                transports.slots[id.rawValue]?.transport.awaitsConnect ?? true
            else { continue }
            logger.log(
                .notice,
                "Client <unknown> from \(connection.info.remoteAddress) sent no CONNECT within "
                    + "\(settings.connectTimeout) seconds, disconnecting.")
            beginClose(connection)
        }
    }

    // MARK: Shutdown

    /// Stop accepting; every connection ends with `.serverShutdown` (no Wills); loops 1… tell loop 0 they are
    /// done in the same batch as their last events, and loop 0 finishes once all of them have.
    func beginShutdown() {
        assertOwned()
        stopping = true
        for listener in handle.listeners { Syscall.close(listener.fd) }
        for connection in connections.all where connection.state != .closing {
            if connection.reachedCore { report(.closed(connection.id, .serverShutdown)) }
            // WebSocket clients hear 1001, going away.
            if connection.hasTransport { noteCloseReason(connection, .serverShutdown) }
            beginClose(connection)
        }
    }
}
