// The broker's numbers for $SYS and Prometheus: per-loop traffic counters, the snapshot loop 0 takes of the core's
// statistics, and the HTTP gateway's own counts.
import Glibc
import MQTTCodec
import MidgeCore
import MidgeStore
import Synchronization

/// One event loop's traffic. Only the thread holding the loop's turn lock writes it (its own, or one carrying out
/// deliveries while it sleeps, see `EventLoop.deliverWhileAsleep`): a relaxed load and store of a single writer
/// compile to a plain add (no `lock` prefix), so counting costs an integer add per read, write or packet. Readers
/// (loop 0, `/metrics`) sum the loops with relaxed loads; a sum may mix counts from slightly different moments,
/// which monitoring accepts.
/// One object per loop, so two loops never write the same cache line.
final class LoopCounters: Sendable {
    let bytesReceived = Atomic<UInt64>(0)
    let bytesSent = Atomic<UInt64>(0)
    /// MQTT packets of every type, as mosquitto's `$SYS/broker/messages/received|sent` count them.
    let packetsReceived = Atomic<UInt64>(0)
    let packetsSent = Atomic<UInt64>(0)
    let publishReceivedQoS0 = Atomic<UInt64>(0)
    let publishReceivedQoS1 = Atomic<UInt64>(0)
    let publishReceivedQoS2 = Atomic<UInt64>(0)
    let publishSentQoS0 = Atomic<UInt64>(0)
    let publishSentQoS1 = Atomic<UInt64>(0)
    let publishSentQoS2 = Atomic<UInt64>(0)
    /// Payload bytes of PUBLISH packets (mosquitto's `publish/bytes/received|sent`).
    let publishBytesReceived = Atomic<UInt64>(0)
    let publishBytesSent = Atomic<UInt64>(0)
    /// Turns the loop's own thread ran, one per return from `epoll_wait`.
    let turns = Atomic<UInt64>(0)
    /// Batches of the core's actions another loop carried out on this loop's connections while it slept.
    let batchesWhileAsleep = Atomic<UInt64>(0)

    /// Single-writer increment: see the type's comment.
    @inline(__always)
    private static func bump(_ counter: borrowing Atomic<UInt64>, _ amount: UInt64) {
        counter.store(counter.load(ordering: .relaxed) &+ amount, ordering: .relaxed)
    }

    @inline(__always) func countRead(_ count: Int) { Self.bump(bytesReceived, UInt64(truncatingIfNeeded: count)) }

    @inline(__always) func countWritten(_ count: Int) { Self.bump(bytesSent, UInt64(truncatingIfNeeded: count)) }

    @inline(__always) func countTurn() { Self.bump(turns, 1) }

    @inline(__always) func countBatchWhileAsleep() { Self.bump(batchesWhileAsleep, 1) }

    /// A decoded packet; PUBLISH counted by QoS with its payload size.
    @inline(__always)
    func countReceived(_ packet: Packet) {
        Self.bump(packetsReceived, 1)
        if case .publish(let publish) = packet {
            countPublish(publish.qos, payloadBytes: publish.payload.count, sent: false)
        }
    }

    /// A control packet the loop encoded for a client.
    @inline(__always) func countControlSent() { Self.bump(packetsSent, 1) }

    /// A PUBLISH the loop encoded for a client.
    @inline(__always)
    func countPublishSent(_ qos: QoS, payloadBytes: Int) {
        Self.bump(packetsSent, 1)
        countPublish(qos, payloadBytes: payloadBytes, sent: true)
    }

    @inline(__always)
    private func countPublish(_ qos: QoS, payloadBytes: Int, sent: Bool) {
        let bytes = UInt64(truncatingIfNeeded: payloadBytes)
        switch (qos, sent) {
        case (.atMostOnce, false): Self.bump(publishReceivedQoS0, 1)
        case (.atLeastOnce, false): Self.bump(publishReceivedQoS1, 1)
        case (.exactlyOnce, false): Self.bump(publishReceivedQoS2, 1)
        case (.atMostOnce, true): Self.bump(publishSentQoS0, 1)
        case (.atLeastOnce, true): Self.bump(publishSentQoS1, 1)
        case (.exactlyOnce, true): Self.bump(publishSentQoS2, 1)
        }
        if sent { Self.bump(publishBytesSent, bytes) } else { Self.bump(publishBytesReceived, bytes) }
    }

    var totals: TrafficTotals {
        TrafficTotals(
            bytesReceived: bytesReceived.load(ordering: .relaxed), bytesSent: bytesSent.load(ordering: .relaxed),
            packetsReceived: packetsReceived.load(ordering: .relaxed),
            packetsSent: packetsSent.load(ordering: .relaxed),
            publishReceived: [
                publishReceivedQoS0.load(ordering: .relaxed), publishReceivedQoS1.load(ordering: .relaxed),
                publishReceivedQoS2.load(ordering: .relaxed),
            ],
            publishSent: [
                publishSentQoS0.load(ordering: .relaxed), publishSentQoS1.load(ordering: .relaxed),
                publishSentQoS2.load(ordering: .relaxed),
            ],
            publishBytesReceived: publishBytesReceived.load(ordering: .relaxed),
            publishBytesSent: publishBytesSent.load(ordering: .relaxed))
    }
}

/// A loop's counters without reference counting. Taking a class reference out of an array retains and releases it
/// (seen in the release build: an atomic pair per packet, on the counters' own cache line); this trivial value is
/// copied instead, and `ServerMetrics` keeps the objects alive for as long as any loop runs.
struct LoopCountersRef: @unchecked Sendable {
    private let counters: Unmanaged<LoopCounters>

    init(_ counters: Unmanaged<LoopCounters>) {
        self.counters = counters
    }

    @inline(__always) func countRead(_ count: Int) { counters._withUnsafeGuaranteedRef { $0.countRead(count) } }

    @inline(__always) func countWritten(_ count: Int) {
        counters._withUnsafeGuaranteedRef { $0.countWritten(count) }
    }

    @inline(__always) func countReceived(_ packet: Packet) {
        counters._withUnsafeGuaranteedRef { $0.countReceived(packet) }
    }

    @inline(__always) func countControlSent() { counters._withUnsafeGuaranteedRef { $0.countControlSent() } }

    @inline(__always) func countPublishSent(_ qos: QoS, payloadBytes: Int) {
        counters._withUnsafeGuaranteedRef { $0.countPublishSent(qos, payloadBytes: payloadBytes) }
    }

    @inline(__always) func countTurn() { counters._withUnsafeGuaranteedRef { $0.countTurn() } }

    @inline(__always) func countBatchWhileAsleep() {
        counters._withUnsafeGuaranteedRef { $0.countBatchWhileAsleep() }
    }
}

/// Traffic summed over loops (or of one loop).
struct TrafficTotals: Sendable, Equatable {
    var bytesReceived: UInt64 = 0
    var bytesSent: UInt64 = 0
    var packetsReceived: UInt64 = 0
    var packetsSent: UInt64 = 0
    /// Indexed by QoS.
    var publishReceived: [UInt64] = [0, 0, 0]
    var publishSent: [UInt64] = [0, 0, 0]
    var publishBytesReceived: UInt64 = 0
    var publishBytesSent: UInt64 = 0

    var publishReceivedTotal: UInt64 { publishReceived.reduce(0, &+) }
    var publishSentTotal: UInt64 { publishSent.reduce(0, &+) }

    static func + (lhs: TrafficTotals, rhs: TrafficTotals) -> TrafficTotals {
        TrafficTotals(
            bytesReceived: lhs.bytesReceived &+ rhs.bytesReceived, bytesSent: lhs.bytesSent &+ rhs.bytesSent,
            packetsReceived: lhs.packetsReceived &+ rhs.packetsReceived,
            packetsSent: lhs.packetsSent &+ rhs.packetsSent,
            publishReceived: zip(lhs.publishReceived, rhs.publishReceived).map { $0 &+ $1 },
            publishSent: zip(lhs.publishSent, rhs.publishSent).map { $0 &+ $1 },
            publishBytesReceived: lhs.publishBytesReceived &+ rhs.publishBytesReceived,
            publishBytesSent: lhs.publishBytesSent &+ rhs.publishBytesSent)
    }
}

/// What loop 0 knows about the core, taken about once a second (`Broker.statistics` sums over every session).
struct CoreSnapshot: Sendable, Equatable {
    var statistics = BrokerStatistics()
    /// The most clients connected at once since start (mosquitto's `clients/maximum`), as seen by the snapshots.
    var clientsMaximum = 0
    /// Open sockets on every loop, counted by the server.
    var openConnections = 0
    /// The durable store's counters, when `persistence` is on.
    var store: StoreStatistics?
    /// When the snapshot was taken, monotonic nanoseconds.
    var takenAt: Int64 = 0
}

/// The HTTP gateway's counts. HTTP connections live on every loop, and HTTP is not a hot path: plain atomic adds.
final class GatewayCounters: Sendable {
    let requests = Atomic<UInt64>(0)
    /// Answers by status class, 2xx ... 5xx.
    let responses2xx = Atomic<UInt64>(0)
    let responses4xx = Atomic<UInt64>(0)
    let responses5xx = Atomic<UInt64>(0)
    /// Messages accepted through `POST /publish`.
    let published = Atomic<UInt64>(0)
    /// Events written to SSE streams and long-poll answers.
    let eventsDelivered = Atomic<UInt64>(0)
    /// SSE streams open now.
    let openStreams = Atomic<Int>(0)
    /// Long polls waiting now.
    let waitingPolls = Atomic<Int>(0)

    func countResponse(status: Int) {
        switch status {
        case 200..<300: responses2xx.wrappingAdd(1, ordering: .relaxed)
        case 400..<500: responses4xx.wrappingAdd(1, ordering: .relaxed)
        case 500..<600: responses5xx.wrappingAdd(1, ordering: .relaxed)
        default: break
        }
    }
}

/// The numbers every loop and every `/metrics` request share. Created once per server.
final class ServerMetrics: Sendable {
    /// `loops[i]` is written under event loop i's turn lock only.
    let loops: [LoopCountersRef]
    /// Keeps the counters `loops` refers to alive.
    private let counters: [LoopCounters]
    let gateway = GatewayCounters()
    /// The core's numbers as of loop 0's latest snapshot.
    let core = LoopLocked(CoreSnapshot())
    /// Monotonic nanoseconds at start, for uptime.
    let startedAt: Int64
    /// Seconds between `$SYS` updates; 0 publishes none (the metrics snapshot is still taken).
    let sysInterval: Int
    /// Loop 0's `$SYS` and snapshot state. Only loop 0 touches it (from `EventLoop.publishSystemTopics`).
    let loopZero: LoopZeroMetricsState

    /// `memory_limit` and the latest resident-size reading.
    let memory: MemoryCeiling
    /// Each bridge's counters, by name; set once at start.
    let bridges = LoopLocked<[(name: String, counters: BridgeCounters)]>([])

    init(loopCount: Int, sysInterval: Int, startedAt: Int64, memoryLimit: Int = 0) {
        memory = MemoryCeiling(limit: memoryLimit)
        counters = (0..<max(1, loopCount)).map { _ in LoopCounters() }
        loops = counters.map { LoopCountersRef(Unmanaged.passUnretained($0)) }
        self.sysInterval = sysInterval
        self.startedAt = startedAt
        loopZero = LoopZeroMetricsState(version: midgeVersion)
    }

    /// Every loop's traffic, summed now.
    var traffic: TrafficTotals { counters.reduce(TrafficTotals()) { $0 + $1.totals } }

    /// How many loops the server started (the counters exist for the most it may have); set at start.
    let runningLoops = Atomic<Int>(0)

    /// Each running loop's own turns and the batches others wrote for it while it slept, indexed by loop.
    var loopTurns: [(own: UInt64, whileAsleep: UInt64)] {
        counters.prefix(runningLoops.load(ordering: .relaxed)).map {
            ($0.turns.load(ordering: .relaxed), $0.batchesWhileAsleep.load(ordering: .relaxed))
        }
    }

    /// Stores what loop 0 just read from the core, keeping the running maximum of connected clients.
    func record(_ statistics: BrokerStatistics, openConnections: Int, store: StoreStatistics?, at now: Int64) {
        core.withLock { snapshot in
            snapshot.statistics = statistics
            snapshot.openConnections = openConnections
            snapshot.store = store
            snapshot.clientsMaximum = max(snapshot.clientsMaximum, statistics.connectedClients)
            snapshot.takenAt = now
        }
    }
}

/// Loop 0's bookkeeping between snapshots. Confined to loop 0's thread; `ServerMetrics` holds it only so the state
/// lives as long as the server without another field on the loop. The `@unchecked` is that confinement.
final class LoopZeroMetricsState: @unchecked Sendable {
    var sys: SysTopics
    /// Monotonic nanoseconds of the next core snapshot and the next `$SYS` round; 0 before the first.
    var nextSnapshot: Int64 = 0
    var nextSysRound: Int64 = 0
    /// The most resident memory a `$SYS` round has read (`heap/maximum`).
    var residentMaximum = 0

    init(version: String) {
        sys = SysTopics(version: version)
    }
}

/// CPU time of each event loop thread, read from procfs when `/metrics` is asked (not on any loop's regular path).
/// The loop threads are named `midge-loop-N`; time spent outside `epoll_wait` is what this counts, so it is the
/// loop's busy time (plus the kernel work its syscalls cause).
enum LoopCPUTime {
    /// `(loop index, seconds)` for every loop thread found, sorted by index. Empty when procfs is unreadable.
    static func read() -> [(loop: Int, seconds: Double)] {
        guard let directory = opendir("/proc/self/task") else { return [] }
        defer { closedir(directory) }
        let ticksPerSecond = Double(max(1, sysconf(Int32(_SC_CLK_TCK))))
        var result: [(loop: Int, seconds: Double)] = []
        // Bounded: a process has at most a few hundred threads here; the bound only guards against a broken readdir.
        for _ in 0..<4096 {
            guard let entry = readdir(directory) else { break }
            let name = withUnsafeBytes(of: entry.pointee.d_name) { raw in
                String(decoding: raw.prefix { $0 != 0 }, as: UTF8.self)
            }
            guard let tid = Int(name) else { continue }
            guard let comm = readSmallFile("/proc/self/task/\(tid)/comm"),
                comm.hasPrefix("midge-loop-"),
                let index = Int(comm.dropFirst("midge-loop-".count).filter { $0 != "\n" })
            else { continue }
            guard let stat = readSmallFile("/proc/self/task/\(tid)/stat"),
                let ticks = cpuTicks(stat: stat)
            else { continue }
            result.append((index, Double(ticks) / ticksPerSecond))
        }
        return result.sorted { $0.loop < $1.loop }
    }

    /// utime + stime (fields 14 and 15) of a `/proc/.../stat` line. The command name (field 2) may contain spaces
    /// and parentheses, so fields are counted after its last `)`.
    static func cpuTicks(stat: String) -> UInt64? {
        guard let close = stat.lastIndex(of: ")") else { return nil }
        let fields = stat[stat.index(after: close)...].split(separator: " ")
        // fields[0] is field 3 (state): utime is field 14, stime 15.
        guard fields.count > 12, let user = UInt64(fields[11]), let system = UInt64(fields[12]) else { return nil }
        return user &+ system
    }

    private static func readSmallFile(_ path: String) -> String? {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return nil }
        defer { Glibc.close(fd) }
        var buffer = [UInt8](repeating: 0, count: 1024)
        let count = buffer.withUnsafeMutableBytes { Glibc.read(fd, $0.baseAddress, $0.count) }
        guard count > 0 else { return nil }
        return String(decoding: buffer[0..<count], as: UTF8.self)
    }
}
