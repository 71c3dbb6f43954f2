// Starting and stopping the broker: listeners, one event loop thread per core, orderly shutdown.
import CLinux
import Glibc
import MidgeCore
import MidgeStore
import Synchronization

/// The version printed in start-up and shutdown lines.
public let midgeVersion = "0.1.0"

/// What the server needs to run, resolved from the configuration file and the command line.
public struct ServerSettings: Sendable {
    public var listeners: [ListenerConfiguration]
    /// Event loops, 1...128.
    public var threads: Int
    /// Seconds a new connection may take to send CONNECT.
    public var connectTimeout: Int
    /// -1 means no limit.
    public var maxConnections: Int
    /// PUBLISH packets and bytes per second one client may send before its socket is not read for the rest of the
    /// second (`max_client_message_rate`, `max_client_byte_rate`); 0 means no limit.
    public var maxClientMessageRate: Int
    public var maxClientByteRate: Int
    public var maxRemainingLength: Int
    /// `memory_limit`: resident bytes above which the core takes no new work; 0 means no limit.
    public var memoryLimit: Int { metrics.memory.limit }
    public var broker: BrokerConfiguration
    public var authenticator: any Authenticator
    public var accessControl: any AccessControl
    /// With `per_listener_settings true`: each listener's authenticator and security, for the profile numbers
    /// 1, 2, … that `ListenerConfiguration.securityProfile` gives its connections.
    public var listenerAuth: [ListenerAuth] = []
    /// Answers PUBLISHes to a `$CONTROL/` topic (the dynamic security plugin's commands); nil: none.
    public var controlHandler: (any ControlTopicHandler)?
    /// `persistence true`: where the durable store lives and how it syncs; nil runs in memory only.
    public var persistence: PersistenceSettings?
    /// `connection` sections: bridges to other brokers, started with the loops.
    public var bridges: [BridgeConfiguration]
    /// Traffic counters per loop, the core's latest statistics, `$SYS` state: shared by the loops and `/metrics`.
    let metrics: ServerMetrics
    /// Inbound flow control, in `CoreEvent.backlogWeight` units (about bytes). The core runs on one thread; the
    /// other loops could read, and queue for it, far faster than it routes, without bound. Above the high-water
    /// mark they stop reading the connections that have more (TCP then slows those senders down, as a
    /// single-threaded broker would) and resume once the core has worked the backlog down to the low-water mark.
    /// Not configuration keys: internal so tests can make every read cross them.
    var coreBacklogHighWater = 4 * 1024 * 1024
    var coreBacklogLowWater = 1024 * 1024
    /// Output congestion, in unsent bytes of one connection. Above the high-water mark the core is told, and
    /// keeps further deliveries in the session queue, where `max_queued_messages`/`max_queued_bytes` and
    /// `queue_full_policy` apply; at the low-water mark it is told the output drained. Between the two, the
    /// kernel's socket buffer and this much of ours keep a fast subscriber's pipe full.
    var congestionHighWater = 512 * 1024
    var congestionLowWater = 64 * 1024
    /// Bytes a held connection may have waiting (see `ReadingChange.pause`) before its socket is not read any
    /// more; acknowledgements and PINGREQ behind this much are not seen until the release.
    var heldInputLimit = 256 * 1024
    /// Output buffers up to this capacity go back to the loop's pool after a full write; larger ones are freed
    /// so a burst does not pin memory.
    var pooledOutputCapacity = 64 * 1024
    /// Buffers kept in each loop's output pool.
    var outputPoolSize = 64

    public init(
        configuration: Configuration, commandLinePort: UInt16? = nil, commandLinePorts: [UInt16] = [],
        authenticator: any Authenticator = AllowAll(), accessControl: any AccessControl = AllowAll()
    ) {
        listeners = configuration.effectiveListeners(
            commandLinePorts: commandLinePorts + (commandLinePort.map { [$0] } ?? []))
        threads = configuration.threads ?? ServerSettings.onlineCores
        connectTimeout = configuration.connectTimeout
        maxConnections = configuration.maxConnections
        maxClientMessageRate = configuration.maxClientMessageRate
        maxClientByteRate = configuration.maxClientByteRate
        maxRemainingLength = configuration.maxRemainingLength
        broker = configuration.broker
        if broker.outputWindowBytes == 0 { broker.outputWindowBytes = ServerSettings.outputWindowBytes }
        self.authenticator = authenticator
        self.accessControl = accessControl
        persistence = PersistenceSettings(configuration: configuration)
        bridges = configuration.bridges
        metrics = ServerMetrics(
            loopCount: 128, sysInterval: configuration.sysInterval, startedAt: Syscall.monotonicNanoseconds(),
            memoryLimit: configuration.memoryLimit)
    }

    /// See `BrokerConfiguration.outputWindowBytes`. One turn of the core can route a whole `coreBacklogHighWater`
    /// of input to every subscriber at once: half the window must hold that burst, or a subscriber that keeps up
    /// would still wait (and drop, with `queue_full_policy drop`) for the answer. 4 MiB did, in the fan-out bench.
    static let outputWindowBytes = 16 * 1024 * 1024

    public static var onlineCores: Int { min(128, max(1, sysconf(Int32(_SC_NPROCESSORS_ONLN)))) }
}

/// A listening address as actually bound (the real port, also when 0 was configured).
public struct BoundListener: Sendable, Equatable {
    public let address: IPAddress
    public let port: UInt16
}

public struct ServerError: Error, CustomStringConvertible {
    public let description: String
}

/// What every loop shares: settings, logger, every loop's handle, the connection count.
final class ServerState: Sendable {
    let settings: ServerSettings
    let logger: Logger
    let handles: [LoopHandle]
    /// Open client connections across all loops, for `max_connections`.
    let connectionCount = Atomic<Int>(0)
    /// The weight of events handed to loop 0 and not yet through the core (see `CoreEvent.backlogWeight`).
    let coreBacklog = Atomic<Int>(0)
    /// The core's count of deliveries dropped for full queues, published by loop 0 at the end of each turn.
    let droppedMessages = Atomic<Int>(0)
    /// The durable store, when `persistence` is on; loop 0 restores the core from it and appends to it.
    let persistence: Persistence?

    /// The listener of each listen socket group, by the group's position (the loops' listener tokens).
    let listenerOfGroup: [ListenerRuntime]
    /// Where CONNECTs are authenticated, off the core's thread.
    let authGate: AuthGate
    /// The gates of listeners with their own security (`per_listener_settings`), by profile number minus one.
    let listenerGates: [AuthGate]

    /// The gate for a connection's security profile.
    func authGate(for profile: Int) -> AuthGate {
        profile > 0 && profile <= listenerGates.count ? listenerGates[profile - 1] : authGate
    }
    /// The broker core, run by whichever loop holds its lock.
    let core = SharedCore()
    /// `log_dest topic`: log lines waiting for loop 0 to publish them on `$SYS/broker/log/…` (see `SysTopics`).
    let pendingLogMessages = LoopLocked<[(topic: String, line: String)]>([])
    /// Lines beyond this wait are dropped: a log storm must not grow memory while loop 0 is busy.
    static let pendingLogLimit = 10_000
    /// Wake-ups and recorder starts for the HTTP gateways' hubs, and the bridges' connections for loop 0.
    let gatewayHost: LoopGatewayHost
    /// The configured bridges; loop 0 serves their connections.
    let bridges: [Bridge]

    init(
        settings: ServerSettings, logger: Logger, handles: [LoopHandle], persistence: Persistence? = nil,
        listeners: [ListenerRuntime] = [], bridges: [Bridge] = []
    ) {
        self.bridges = bridges
        self.settings = settings
        self.logger = logger
        self.handles = handles
        self.persistence = persistence
        listenerOfGroup = listeners
        authGate = AuthGate(authenticator: settings.authenticator, handles: handles, logger: logger)
        listenerGates = settings.listenerAuth.map {
            AuthGate(authenticator: $0.authenticator, handles: handles, logger: logger)
        }
        gatewayHost = LoopGatewayHost(handles: handles)
        // A listener on both address families appears twice.
        var seen: Set<ObjectIdentifier> = []
        for runtime in listeners where seen.insert(ObjectIdentifier(runtime)).inserted {
            runtime.gateway?.hub.attach(gatewayHost)
            runtime.gateway?.startSavingHistory()
        }
    }
}

/// A running broker. `start` returns once every listener is bound; `stop` asks the loops to shut down and
/// `wait` joins them.
public final class Server: Sendable {
    public let listeners: [BoundListener]
    private let state: ServerState
    private let threads = LoopLocked<[pthread_t]>([])

    private init(listeners: [BoundListener], state: ServerState) {
        self.listeners = listeners
        self.state = state
    }

    /// Binds every listener, then starts one thread per event loop.
    public static func start(settings: ServerSettings, logger: Logger) throws(ServerError) -> Server {
        precondition((1...128).contains(settings.threads), "threads must be 1...128")
        settings.metrics.runningLoops.store(settings.threads, ordering: .relaxed)
        // A write to a socket the peer has reset must fail with EPIPE, not kill the process.
        signal(SIGPIPE, SIG_IGN)

        var groups: [ListenSocketGroup] = []
        /// `groupListeners[i]` is the listener `groups[i]` belongs to.
        var groupListeners: [ListenerRuntime] = []
        var handles: [LoopHandle] = []
        func closeAll() {
            for group in groups { for fd in group.fds { Syscall.close(fd) } }
            for handle in handles {
                Syscall.close(handle.epollFD)
                Syscall.close(handle.wakeFD)
            }
        }
        do throws(ServerError) {
            for listener in settings.listeners {
                // TLS files are read before anything is bound, so a broken certificate stops the start-up.
                let runtime = try ListenerRuntime(configuration: listener, settings: settings, logger: logger)
                // With port 0 the first address picks the port and the listener's other address reuses it.
                var port = listener.port
                let place = listener.origin.line > 0 ? "\(listener.origin): " : ""
                let addresses: [IPAddress]
                do {
                    addresses = try listener.resolvedBindAddresses()
                } catch {
                    throw ServerError(description: place + error.description)
                }
                for address in addresses {
                    do {
                        let group = try ListenSocketGroup.open(
                            address: address, port: port, count: settings.threads, interface: listener.bindInterface)
                        groups.append(group)
                        groupListeners.append(runtime)
                        port = group.port
                        if case .unix(let path) = address {
                            logger.log(.notice, "Opening unix listen socket on path \(path).")
                        } else {
                            logger.log(.notice, "Opening \(address.familyName) listen socket on port \(port).")
                        }
                    } catch {
                        throw ServerError(description: place + Server.explain(error, address: address, port: port))
                    }
                }
            }
            for index in 0..<settings.threads {
                handles.append(try makeLoopHandle(index: index, groups: groups))
            }
        } catch {
            closeAll()
            throw error
        }

        // Recovery runs before any loop starts, so nothing is accepted before the state is back.
        var persistence: Persistence?
        if let persistenceSettings = settings.persistence {
            do throws(ServerError) {
                persistence = try Persistence.open(persistenceSettings, logger: logger)
            } catch {
                closeAll()
                throw error
            }
        }
        let bridges: [Bridge]
        do throws(ServerError) {
            bridges = try Bridge.make(settings.bridges, logger: logger)
        } catch {
            closeAll()
            persistence?.close()
            throw error
        }
        let state = ServerState(
            settings: settings, logger: logger, handles: handles, persistence: persistence, listeners: groupListeners,
            bridges: bridges)
        let server = Server(
            listeners: groups.map { BoundListener(address: $0.address, port: $0.port) }, state: state)
        if logger.publishesToTopic {
            logger.attachTopicSink { [weak state] topic, line in
                state?.pendingLogMessages.withLock { pending in
                    if pending.count < ServerState.pendingLogLimit { pending.append((topic, line)) }
                }
            }
        }
        let threads = (0..<settings.threads).map { index in
            startThread(name: "midge-loop-\(index)") {
                EventLoop(server: state, index: index).run()
            }
        }
        server.threads.withLock { $0 = threads }
        settings.metrics.bridges.withLock { $0 = bridges.map { ($0.name, $0.counters) } }
        for bridge in bridges { bridge.start(host: state.gatewayHost) }
        return server
    }

    private static func makeLoopHandle(index: Int, groups: [ListenSocketGroup]) throws(ServerError) -> LoopHandle {
        var opened: [Int32] = []
        do throws(SyscallError) {
            let epollFD = try Syscall.blocking("epoll_create1") { epoll_create1(CLINUX_EPOLL_CLOEXEC) }
            opened.append(epollFD)
            let wakeFD = try Syscall.blocking("eventfd") { eventfd(0, CLINUX_EFD_NONBLOCK | CLINUX_EFD_CLOEXEC) }
            opened.append(wakeFD)
            try Syscall.epollControl(epollFD, EPOLL_CTL_ADD, wakeFD, events: CLINUX_EPOLLIN, token: EventLoop.wakeToken)
            var listeners: [(fd: Int32, port: UInt16)] = []
            for (position, group) in groups.enumerated() {
                let fd = group.fds[index]
                try Syscall.epollControl(
                    epollFD, EPOLL_CTL_ADD, fd, events: CLINUX_EPOLLIN,
                    token: EventLoop.listenerTokenBit | UInt64(position))
                listeners.append((fd, group.port))
            }
            return LoopHandle(index: index, epollFD: epollFD, wakeFD: wakeFD, listeners: listeners)
        } catch {
            for fd in opened { Syscall.close(fd) }
            throw ServerError(description: "Unable to set up event loop \(index): \(error).")
        }
    }

    /// Asks every loop to shut down: listeners close, every connection ends with `.serverShutdown` (no Wills),
    /// output is flushed. Returns at once; `wait` joins. Safe to call more than once, from any thread.
    public func stop() {
        for bridge in state.bridges { bridge.stop() }
        for handle in state.handles {
            handle.post { $0.stopRequested = true }
        }
    }

    /// Joins the loop threads (after `stop`), then releases the loops' fds.
    public func wait() {
        let threads = self.threads.withLock { threads in
            defer { threads = [] }
            return threads
        }
        guard !threads.isEmpty else { return }
        for thread in threads { pthread_join(thread, nil) }
        // Once the loops are gone nothing records any more: the gateways' last history is final.
        var seen: Set<ObjectIdentifier> = []
        for runtime in state.listenerOfGroup where seen.insert(ObjectIdentifier(runtime)).inserted {
            runtime.gateway?.stopSavingHistory()
        }
        // Before the fds below: the store's last completions still post to loop 0's eventfd.
        state.persistence?.close()
        // Only now: until every loop has exited, any of them may still post to another's eventfd.
        for handle in state.handles {
            Syscall.close(handle.epollFD)
            Syscall.close(handle.wakeFD)
        }
    }

    /// SIGHUP: every TLS listener re-reads its certificate, key and CA files. New handshakes use the new ones,
    /// connections keep theirs. A listener whose files are broken keeps its previous ones and the log says why.
    /// (The executable reloads the password and ACL files itself, before calling this.) Call from any thread but
    /// an event loop's: it reads files.
    public func hangup() {
        var seen: Set<ObjectIdentifier> = []
        for (position, runtime) in state.listenerOfGroup.enumerated() where runtime.tls != nil {
            guard seen.insert(ObjectIdentifier(runtime)).inserted else { continue }
            let port = listeners[position].port
            do {
                try runtime.reloadTLS()
                let files = runtime.configuration.tls?.preSharedKeys == nil ? "TLS certificate and keys" : "PSK file"
                state.logger.log(.notice, "Reloaded the \(files) of the listener on port \(port).")
            } catch {
                state.logger.log(
                    .error,
                    "Unable to reload the TLS files of the listener on port \(port), keeping the previous "
                        + "ones: \(error).")
            }
        }
    }

    /// One line a user can act on: which address, what went wrong, what to do.
    static func explain(_ error: SyscallError, address: IPAddress, port: UInt16) -> String {
        let place: String
        if case .unix(let path) = address {
            place = "the unix socket \(path)"
        } else {
            place = "\(address) port \(port)"
        }
        switch error.errno {
        case EADDRINUSE:
            return "Unable to listen on \(place): it is in use by another program; stop it or choose another "
                + "listener port."
        case EACCES, EPERM:
            return "Unable to listen on \(place): permission denied; start as root (ports below 1024, "
                + "bind_interface) or fix the directory's permissions."
        case EADDRNOTAVAIL:
            return "Unable to listen on \(place): no interface of this machine has that address."
        default:
            return "Unable to listen on \(place): \(error)."
        }
    }

    /// The subscription tree for SIGUSR2's report, built under the core's lock (holding up loop 0 for one walk of
    /// the trie, as mosquitto's print holds up its one thread); nil before the core runs.
    public func subscriptionTree(maxLines: Int, maxSubscribersPerLine: Int) -> SubscriptionTreeReport? {
        state.core.lock.withLock {
            state.core.broker?.subscriptionTree(maxLines: maxLines, maxSubscribersPerLine: maxSubscribersPerLine)
        }
    }

    /// Open client connections right now.
    public var connectionCount: Int { state.connectionCount.load(ordering: .relaxed) }

    /// Deliveries dropped so far because a session's queue was full (`queue_full_policy drop`). Published by loop 0
    /// before it writes a turn's packets, so it already counts every drop that preceded a packet a client received.
    public var droppedMessages: Int { state.droppedMessages.load(ordering: .acquiring) }

    /// The durable store's counters and health (nil without persistence), for `$SYS` and metrics. While
    /// `isHealthy` is false, QoS 1/2 publishes are not acknowledged.
    public var storeStatistics: StoreStatistics? { state.persistence?.statistics }
}

/// Raises the soft open-file limit to the hard limit (each connection is an fd) and logs what it did.
public func raiseOpenFileLimit(logger: Logger) {
    var limit = rlimit()
    guard getrlimit(RLIMIT_NOFILE_VALUE, &limit) == 0 else { return }
    guard limit.rlim_cur < limit.rlim_max else { return }
    let previous = limit.rlim_cur
    limit.rlim_cur = limit.rlim_max
    if setrlimit(RLIMIT_NOFILE_VALUE, &limit) == 0 {
        logger.log(.info, "Raised the open file limit from \(previous) to \(limit.rlim_max).")
    } else {
        let reason = String(cString: strerror(errno))
        logger.log(.warning, "Unable to raise the open file limit from \(previous): \(reason).")
    }
}

/// RLIMIT_NOFILE is an enum case in Glibc's module (`__rlimit_resource`); getrlimit takes its raw value.
private let RLIMIT_NOFILE_VALUE = __rlimit_resource_t(RLIMIT_NOFILE.rawValue)
