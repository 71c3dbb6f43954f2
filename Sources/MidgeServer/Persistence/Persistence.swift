// Persistence in the server: the settings, opening the durable store and restoring the core from it, the store as
// the core's record log (one append per run of the core, acknowledgements released by the append's completion),
// closing the store.
import Glibc
import MidgeCore
import MidgeRecords
import MidgeStore
import Synchronization

/// `persistence_fsync`: when an acknowledged QoS 1/2 message is forced to disk.
public enum PersistenceFsync: Sendable, Equatable {
    /// PUBACK/PUBREC only after the fsync covering the message (group commit): survives `kill -9` and power loss.
    case always
    /// After the write; fsync at most every this many milliseconds: survives `kill -9`, a power loss can take the
    /// last interval.
    case periodic(milliseconds: Int)
    /// After the write, no fsync while running: survives a crashed broker, not a crashed machine.
    case none

    /// Parses the key's values: `always`, `periodic MILLISECONDS` (1-60000) or `none`.
    init?(_ words: [String]) {
        switch words.first {
        case "always" where words.count == 1: self = .always
        case "none" where words.count == 1: self = .none
        case "periodic" where words.count == 2:
            guard let milliseconds = Int(words[1]), (1...60_000).contains(milliseconds) else { return nil }
            self = .periodic(milliseconds: milliseconds)
        default: return nil
        }
    }

    var syncPolicy: SyncPolicy {
        switch self {
        case .always: .always
        case .periodic(let milliseconds): .periodic(milliseconds: milliseconds)
        case .none: .none
        }
    }

    /// `persistent_client_expiration` as mosquitto writes it: a positive count and a unit, h (hours), d (days),
    /// w (weeks), m (months of 30 days) or y (years of 365 days); Midge also takes s (seconds).
    static func expirationSeconds(_ text: String) -> Int64? {
        guard let unit = text.last, let count = Int64(text.dropLast()), count > 0 else { return nil }
        let unitSeconds: Int64
        switch unit {
        case "s": unitSeconds = 1
        case "h": unitSeconds = 3600
        case "d": unitSeconds = 86_400
        case "w": unitSeconds = 7 * 86_400
        case "m": unitSeconds = 30 * 86_400
        case "y": unitSeconds = 365 * 86_400
        default: return nil
        }
        let (seconds, overflow) = count.multipliedReportingOverflow(by: unitSeconds)
        return overflow ? nil : seconds
    }
}

/// Where and how the broker's durable state is kept; nil in `ServerSettings` means memory only.
public struct PersistenceSettings: Sendable, Equatable {
    public var directory: String
    public var fsync: PersistenceFsync

    public init(directory: String, fsync: PersistenceFsync = .always) {
        self.directory = directory
        self.fsync = fsync
    }

    /// From the configuration file's `persistence`, `persistence_location` and `persistence_fsync`.
    public init?(configuration: Configuration) {
        guard configuration.persistence else { return nil }
        let location = configuration.persistenceLocation
        self.init(directory: location.isEmpty ? "." : location, fsync: configuration.persistenceFsync)
    }
}

/// The open store, shared by the server and loop 0. Only loop 0 appends; completions run on the store's writer
/// thread and only post the batch back to loop 0's mailbox.
final class Persistence: Sendable {
    let store: DurableStore
    private let logger: Logger
    /// What recovery found, handed to the core once by loop 0 and then dropped.
    private let recovered: Mutex<StoreState?>

    private init(store: DurableStore, state: StoreState, logger: Logger) {
        self.store = store
        self.logger = logger
        self.recovered = Mutex(state)
    }

    /// Opens (and recovers) the store. Damaged contents never stop start-up: the report line says what was
    /// dropped. An unusable or locked directory does.
    static func open(_ settings: PersistenceSettings, logger: Logger) throws(ServerError) -> Persistence {
        let started = Syscall.monotonicNanoseconds()
        let opened: (DurableStore, StoreState, RecoveryReport)
        do {
            opened = try DurableStore.open(
                directory: settings.directory, policy: settings.fsync.syncPolicy,
                log: { level, message in
                    switch level {
                    case .info: logger.log(.info, message)
                    case .warning: logger.log(.warning, message)
                    case .error: logger.log(.error, message)
                    }
                })
        } catch {
            throw ServerError(description: "Unable to open the persistence store in \(settings.directory): \(error).")
        }
        let (store, state, report) = opened
        let milliseconds = (Syscall.monotonicNanoseconds() - started) / 1_000_000
        logger.log(report.isClean ? .notice : .warning, "\(report.description) (\(milliseconds) ms)")
        return Persistence(store: store, state: state, logger: logger)
    }

    /// Loop 0, as it creates the broker: rebuilds the core from the recovered state and turns persistence on, with
    /// the store as its record log; `owner` is the loop whose mailbox gets the confirmations.
    func restore(into broker: Broker, now: Int64, owner: LoopHandle) {
        let state = recovered.withLock { state in
            defer { state = nil }
            return state ?? StoreState()
        }
        let started = Syscall.monotonicNanoseconds()
        let summary = broker.enableDurability(
            restoring: state, log: WriteAheadRecordLog(store: store, owner: owner), unixSeconds: Int64(time(nil)),
            now: MonotonicTime(nanoseconds: now))
        let milliseconds = (Syscall.monotonicNanoseconds() - started) / 1_000_000
        logger.log(.notice, "\(summary.description.dropLast()) in \(milliseconds) ms.")
    }

    /// At the end of every run of the core, before writing: tells the core whether the store can write, and has it
    /// append the run's records in one append (group commit happens in the store: one fsync covers every append
    /// that arrived while the previous one ran).
    func endOfRun(_ broker: Broker) {
        broker.setStoreWritable(store.isHealthy)
        broker.appendRecords()
    }

    /// After the loops have stopped: writes and fsyncs what is queued, then stops the writer. Its last completions
    /// still post to loop 0's mailbox, so the loops' eventfds must be open until this returns.
    func close() {
        store.close()
    }

    var statistics: StoreStatistics { store.statistics }
}

/// The write-ahead log as the core's `RecordLog`. Appends come from whichever loop runs the core, under the core's
/// lock, so they reach the store in sequence order; the store runs completions in append order on its writer
/// thread, and each only posts its sequence to loop 0's mailbox, where `releaseDurableAppends` hands it to the core.
final class WriteAheadRecordLog: RecordLog {
    private let store: DurableStore
    private let owner: LoopHandle

    init(store: DurableStore, owner: LoopHandle) {
        self.store = store
        self.owner = owner
    }

    func append(_ records: [StoreRecord], sequence: UInt64, confirm: Bool) {
        guard confirm else { return store.append(records) }
        let owner = self.owner
        // Completions run in order, so the highest sequence posted is the one that counts.
        store.append(records) { owner.post { $0.durableThrough = max($0.durableThrough, sequence) } }
    }
}

extension EventLoop {
    /// Loop 0: appends the store made durable release the acknowledgements held behind them, in order.
    func releaseDurableAppends() {
        guard let broker, spare.durableThrough != 0 else { return }
        broker.run(
            .recordsDurable(through: spare.durableThrough), now: MonotonicTime(nanoseconds: sharedCore.latestNow),
            into: &output.actions)
        spare.durableThrough = 0
        routeCoreActions()
    }
}
