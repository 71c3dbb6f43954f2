// One configured bridge while the server runs: its names, its counters, and the schedule of its connection
// attempts (connect, back off, reconnect; lazy and once start types), on a queue of its own.
import Dispatch
import Glibc
import MQTTCodec
import MidgeCore
import MidgeTLS
import Synchronization

/// What an attempt produced, for the loop that serves the connection.
struct BridgeSocket: Sendable {
    let bridge: Bridge
    let fd: Int32
    let address: BridgeConfiguration.Address
}

/// The side of the event loops a bridge talks to: loop 0 makes and ends its connections.
protocol BridgeHost: AnyObject, Sendable {
    /// A socket connected to the remote: serve it as the bridge's connection.
    func adopt(_ socket: BridgeSocket)
    /// Set up the bridge's local session with no remote, so what it subscribes to is kept while the remote is away.
    func prime(_ bridge: Bridge)
    /// End the bridge's connection (the main address is reachable again).
    func disconnect(_ bridge: Bridge, reason: String)
}

final class Bridge: Sendable {
    let configuration: BridgeConfiguration
    let remoteClientID: String
    let localClientID: String
    /// Where `1` and `0` are published, retained, when the bridge connects and disconnects (`notifications`).
    let notificationTopic: TopicName?
    let counters = BridgeCounters()
    private let logger: Logger
    private let queue: DispatchQueue
    /// Touched only on `queue`.
    private let schedule = LoopLocked(Schedule())
    private let host = LoopLocked<(any BridgeHost)?>(nil)

    private struct Schedule {
        enum State { case waiting, connecting, connected, idle, stopped }
        var state = State.waiting
        var addressIndex = 0
        /// The last backoff wait, in seconds (restart_timeout BASE CAP).
        var lastWait = 0
        /// Bumped whenever a pending timer becomes moot (a newer attempt or a stop).
        var generation = 0
        /// The connection was ended to move back to the main address: reconnect without waiting.
        var reconnectAtOnce = false
    }

    private let tlsContext: TLSClientContext?

    init(configuration: BridgeConfiguration, hostName: String, tlsContext: TLSClientContext?, logger: Logger) {
        self.configuration = configuration
        self.tlsContext = tlsContext
        remoteClientID = configuration.effectiveRemoteClientID(hostName: hostName)
        localClientID = configuration.effectiveLocalClientID(hostName: hostName)
        notificationTopic =
            configuration.notifications
            ? TopicName(configuration.effectiveNotificationTopic(hostName: hostName)) : nil
        self.logger = logger
        queue = DispatchQueue(label: "midge-bridge-\(configuration.name)")
    }

    var name: String { configuration.name }

    /// The TLS session of a new connection, nil without TLS; throws when OpenSSL cannot make one.
    func makeTLSConnection(for socket: BridgeSocket) throws(TLSError) -> TLSConnection? {
        guard let tlsContext else { return nil }
        return try TLSConnection(client: tlsContext, serverName: socket.address.host)
    }

    /// The running bridges of a configuration, named after this machine as mosquitto's default client ids are.
    static func make(_ configurations: [BridgeConfiguration], logger: Logger) throws(ServerError) -> [Bridge] {
        guard !configurations.isEmpty else { return [] }
        var buffer = [UInt8](repeating: 0, count: 256)
        let hostName =
            gethostname(&buffer, buffer.count - 1) == 0
            ? String(decoding: buffer.prefix { $0 != 0 }, as: UTF8.self) : "localhost"
        var bridges: [Bridge] = []
        for configuration in configurations {
            var tlsContext: TLSClientContext?
            if configuration.tls.isEnabled {
                do {
                    tlsContext = try TLSClientContext(configuration: configuration.tls.clientConfiguration)
                } catch {
                    let place = configuration.origin.line > 0 ? "\(configuration.origin): " : ""
                    throw ServerError(description: "\(place)bridge \(configuration.name): \(error)")
                }
            }
            bridges.append(
                Bridge(configuration: configuration, hostName: hostName, tlsContext: tlsContext, logger: logger))
        }
        return bridges
    }

    /// The remote answered our bridge flag (`try_private`) with "unacceptable protocol version": later attempts go
    /// without it, as mosquitto's do.
    let privateRefused = Atomic<Bool>(false)

    func log(_ level: LogLevel, _ message: @autoclosure () -> String) {
        logger.log(level, message())
    }

    /// At start-up: the local session first, then the first attempt unless the bridge is lazy.
    func start(host: any BridgeHost) {
        self.host.withLock { $0 = host }
        host.prime(self)
        queue.async { [self] in
            if configuration.startType == .lazy {
                schedule.withLock { $0.state = .idle }
                waitsForThreshold.store(true, ordering: .relaxed)
                logger.log(
                    .notice,
                    "Bridge \(name) is lazy: it connects once \(configuration.threshold) messages wait.")
            } else {
                attempt()
            }
        }
    }

    /// Not through the queue: it may be inside a connect that takes seconds. A connect that still succeeds is
    /// closed by loop 0, which is stopping too.
    func stop() {
        schedule.withLock {
            $0.state = .stopped
            $0.generation += 1
        }
    }

    /// From loop 0: the remote accepted the connection. The backoff starts from its base again.
    func remoteAccepted() {
        counters.connected.store(true, ordering: .relaxed)
        queue.async { [self] in
            let probe = schedule.withLock { schedule -> Bool in
                schedule.lastWait = 0
                return !configuration.roundRobin && schedule.addressIndex != 0
            }
            if probe { scheduleMainAddressProbe() }
        }
    }

    /// From loop 0: the connection is gone. `idle` is a lazy bridge's own disconnect after `idle_timeout`.
    func connectionEnded(idle: Bool) {
        counters.connected.store(false, ordering: .relaxed)
        queue.async { [self] in
            let next = schedule.withLock { schedule -> Schedule.State in
                guard schedule.state != .stopped else { return .stopped }
                schedule.generation += 1
                if configuration.startType == .once {
                    schedule.state = .stopped
                } else if configuration.startType == .lazy && idle {
                    schedule.state = .idle
                } else {
                    schedule.state = .waiting
                    if configuration.roundRobin {
                        schedule.addressIndex = (schedule.addressIndex + 1) % configuration.addresses.count
                    }
                }
                return schedule.state
            }
            let atOnce = schedule.withLock { schedule in
                defer { schedule.reconnectAtOnce = false }
                return schedule.reconnectAtOnce && schedule.state == .waiting
            }
            switch next {
            case .waiting where atOnce:
                attempt()
            case .stopped:
                if configuration.startType == .once {
                    logger.log(.notice, "Bridge \(name) ended and is not restarted (start_type once).")
                }
            case .idle:
                waitsForThreshold.store(true, ordering: .relaxed)
            default:
                retryLater()
            }
        }
    }

    /// From loop 0: a lazy bridge's local session holds `threshold` messages.
    func thresholdReached() {
        queue.async { [self] in
            guard schedule.withLock({ $0.state == .idle }) else { return }
            waitsForThreshold.store(false, ordering: .relaxed)
            logger.log(.notice, "Bridge \(name): \(configuration.threshold) messages wait; connecting.")
            attempt()
        }
    }

    /// A lazy bridge between connections: loop 0 compares its local session with the threshold while this is true.
    let waitsForThreshold = Atomic<Bool>(false)

    // MARK: On the queue

    private func attempt() {
        let index = schedule.withLock { schedule -> Int in
            schedule.state = .connecting
            schedule.generation += 1
            return schedule.addressIndex
        }
        let address = configuration.addresses[index]
        logger.log(.notice, "Connecting bridge \(name) (\(address)).")
        counters.attempts.add(1, ordering: .relaxed)
        switch OutboundSocket.connect(
            host: address.host, port: address.port, bindAddress: configuration.bindAddress,
            timeoutMilliseconds: Self.connectTimeoutMilliseconds)
        {
        case .success(let fd):
            schedule.withLock { $0.state = .connected }
            guard let host = host.withLock({ $0 }) else {
                Syscall.close(fd)
                return
            }
            host.adopt(BridgeSocket(bridge: self, fd: fd, address: address))
        case .failure(let error):
            logger.log(.warning, "Bridge \(name): unable to connect to \(address): \(error.description).")
            schedule.withLock { schedule in
                schedule.state = .waiting
                schedule.addressIndex = (schedule.addressIndex + 1) % configuration.addresses.count
            }
            retryLater()
        }
    }

    private func retryLater() {
        let (seconds, generation) = schedule.withLock { schedule -> (Int, Int) in
            let seconds = Self.nextWait(after: schedule.lastWait, restart: configuration.restartTimeout)
            schedule.lastWait = seconds
            return (seconds, schedule.generation)
        }
        logger.log(.notice, "Bridge \(name): next connection attempt in \(seconds) s.")
        queue.asyncAfter(deadline: .now() + .seconds(seconds)) { [self] in
            guard schedule.withLock({ $0.state == .waiting && $0.generation == generation }) else { return }
            attempt()
        }
    }

    /// mosquitto's `restart_timeout`: a constant wait, or "decorrelated jitter" between BASE and three times the
    /// last wait, capped at CAP, so many bridges refused at once do not come back in step.
    static func nextWait(after last: Int, restart: BridgeConfiguration.RestartTimeout) -> Int {
        switch restart {
        case .constant(let seconds):
            return seconds
        case .backoff(let base, let cap):
            guard last > 0 else { return base }
            return min(cap, Int.random(in: base...max(base, last * 3)))
        }
    }

    /// With `round_robin false` the first address is the main one: while connected elsewhere, it is tried every few
    /// seconds, and the bridge moves back as soon as it answers.
    private func scheduleMainAddressProbe() {
        let generation = schedule.withLock { $0.generation }
        queue.asyncAfter(deadline: .now() + .seconds(Self.mainAddressProbeSeconds)) { [self] in
            guard schedule.withLock({ $0.state == .connected && $0.generation == generation }) else { return }
            let main = configuration.addresses[0]
            switch OutboundSocket.connect(
                host: main.host, port: main.port, bindAddress: configuration.bindAddress,
                timeoutMilliseconds: Self.connectTimeoutMilliseconds)
            {
            case .success(let fd):
                Syscall.close(fd)
                schedule.withLock { schedule in
                    schedule.addressIndex = 0
                    schedule.lastWait = 0
                    schedule.reconnectAtOnce = true
                }
                host.withLock { $0 }?.disconnect(self, reason: "the main address \(main) is reachable again")
            case .failure:
                scheduleMainAddressProbe()
            }
        }
    }

    /// How long one connect may take before the next address is tried.
    static let connectTimeoutMilliseconds: Int32 = 10_000
    static let mainAddressProbeSeconds = 5
}

/// Per-bridge numbers for `/metrics`, written by loop 0 and the bridge's queue.
final class BridgeCounters: Sendable {
    let connected = Atomic<Bool>(false)
    let attempts = Atomic<UInt64>(0)
    let messagesOut = Atomic<UInt64>(0)
    let messagesIn = Atomic<UInt64>(0)
    /// Messages the local session holds for the remote, sampled by loop 0.
    let queued = Atomic<Int>(0)
}
