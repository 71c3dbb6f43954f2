// The durable store's public face: open (recovery), append with group commit, health, statistics, close.
import Dispatch
import Glibc
import MidgeRecords
import Synchronization

/// When appended records are forced to disk, and so when an append's completion runs.
public enum SyncPolicy: Sendable, Equatable {
    /// Completions run after the fsync covering their records: an acknowledged message survives `kill -9` and
    /// power loss. One fsync covers everything that arrived while the previous one ran (group commit).
    case always
    /// Completions run once the records are written (they survive `kill -9`); fsync at most every this many
    /// milliseconds, so a power loss can take the last interval.
    case periodic(milliseconds: Int)
    /// Never fsync while running (only when closing): the records survive a crashed process, not the machine.
    case none
}

public enum StoreLogLevel: Sendable, Equatable {
    case info, warning, error
}

/// Where the store's own log lines go; called from the store's threads.
public typealias StoreLogSink = @Sendable (StoreLogLevel, String) -> Void

public struct StoreOptions: Sendable {
    /// The log is compacted into a snapshot once it holds at least this many bytes…
    public var compactionMinimumBytes: Int
    /// …and at least this many times the size of the last snapshot, so a large state is not rewritten often.
    public var compactionSnapshotFactor: Int
    /// How long after a failed write or fsync the writer tries again.
    public var retryIntervalMilliseconds: Int

    public init(
        compactionMinimumBytes: Int = 64 << 20, compactionSnapshotFactor: Int = 4, retryIntervalMilliseconds: Int = 1000
    ) {
        self.compactionMinimumBytes = compactionMinimumBytes
        self.compactionSnapshotFactor = compactionSnapshotFactor
        self.retryIntervalMilliseconds = retryIntervalMilliseconds
    }
}

/// Counters for metrics (`$SYS`, Prometheus); each is read atomically, the set is not one instant.
public struct StoreStatistics: Sendable, Equatable {
    /// `append` calls.
    public var appends: Int
    /// Batches written: one write (and with `.always` one fsync) each.
    public var batches: Int
    /// Records written.
    public var records: Int
    /// Records never written: messages stored, delivered and acknowledged within one batch (`CancelledDeliveries`).
    public var cancelledRecords: Int
    public var bytes: Int
    public var fsyncs: Int
    public var lastFsyncNanoseconds: Int
    /// Log bytes not yet covered by a snapshot.
    public var logBytes: Int
    public var snapshots: Int
    public var lastSnapshotBytes: Int
    /// Records waiting for a write that failed to be retried.
    public var heldRecords: Int
    public var isHealthy: Bool
}

public enum StoreError: Error, Sendable, CustomStringConvertible {
    /// Another store (this process or another) has the directory open.
    case locked(directory: String)
    /// The directory cannot be created, read or written.
    case io(FileError)

    public var description: String {
        switch self {
        case .locked(let directory): "store directory \(directory) is in use by another process"
        case .io(let error): error.description
        }
    }
}

/// What callers and the writer thread share.
final class StoreShared: Sendable {
    struct Pending {
        var records: [StoreRecord] = []
        var completions: [@Sendable () -> Void] = []
        /// The writer found nothing to do and is (about to be) waiting: the next append must wake it.
        var writerIdle = false
        var closing = false
    }

    let pending = StoreLocked(Pending())
    let wake = DispatchSemaphore(value: 0)
    let healthy = Atomic<Bool>(true)
    let appends = Atomic<Int>(0)
    let batches = Atomic<Int>(0)
    let records = Atomic<Int>(0)
    let cancelledRecords = Atomic<Int>(0)
    let bytes = Atomic<Int>(0)
    let fsyncs = Atomic<Int>(0)
    let lastFsyncNanoseconds = Atomic<Int>(0)
    let logBytes = Atomic<Int>(0)
    let snapshots = Atomic<Int>(0)
    let snapshotBytes = Atomic<Int>(0)
    let snapshotRunning = Atomic<Bool>(false)
    /// Monotonic time before which no new snapshot is started, set when one failed.
    let snapshotRetryAfter = Atomic<UInt64>(0)
    let heldRecords = Atomic<Int>(0)
}

/// A write-ahead log of `StoreRecord`s with group commit, compacted into snapshots in the background.
///
/// Event loops call `append`, which costs a lock and at most one wake-up; the store's writer thread writes
/// everything appended since its last write in one go, forces it to disk per the `SyncPolicy`, then runs the
/// completions of that batch in append order. Nothing is ever dropped: when a write fails the store turns
/// unhealthy, keeps the batch and its completions, and retries until a write succeeds.
public final class DurableStore: Sendable {
    public let directory: String
    public let policy: SyncPolicy
    private let shared: StoreShared
    private let writerThread: Mutex<pthread_t?>

    private init(directory: String, policy: SyncPolicy, shared: StoreShared, writerThread: pthread_t) {
        self.directory = directory
        self.policy = policy
        self.shared = shared
        self.writerThread = Mutex(writerThread)
    }

    deinit { close() }

    /// Opens the store in `directory` (created if missing): recovers the newest readable snapshot and the log
    /// after it, cuts the log at the first torn or corrupt record, and starts the writer. Damaged contents never
    /// make this fail (the report says what was dropped and why); an unusable directory does.
    public static func open(
        directory: String, policy: SyncPolicy = .always, options: StoreOptions = StoreOptions(),
        log: @escaping StoreLogSink = { _, _ in }
    ) throws(StoreError) -> (DurableStore, StoreState, RecoveryReport) {
        try open(directory: directory, policy: policy, options: options, fileSystem: PosixFileSystem(), log: log)
    }

    static func open(
        directory: String, policy: SyncPolicy, options: StoreOptions, fileSystem fs: any StoreFileSystem,
        log: @escaping StoreLogSink
    ) throws(StoreError) -> (DurableStore, StoreState, RecoveryReport) {
        if case .periodic(let milliseconds) = policy {
            precondition(milliseconds > 0, "periodic fsync needs a positive interval")
        }
        let lock: OpenFile
        do {
            try fs.createDirectory(directory)
            lock = try fs.lock(StoreFiles.path(directory, StoreFiles.lockName))
        } catch {
            if error.code == EWOULDBLOCK { throw .locked(directory: directory) }
            throw .io(error)
        }
        let outcome: RecoveryOutcome
        let segment: OpenFile
        let segmentNumber: UInt64
        let segmentEnd: Int
        do {
            outcome = try Recovery.recover(directory: directory, fileSystem: fs)
            try Recovery.repair(outcome, directory: directory, fileSystem: fs)
            if let (number, end) = outcome.appendTarget {
                segment = try fs.openForWriting(
                    StoreFiles.path(directory, StoreFiles.segmentName(number)), truncate: false)
                (segmentNumber, segmentEnd) = (number, end)
            } else {
                segment = try createSegment(outcome.nextSegment, directory: directory, fileSystem: fs)
                (segmentNumber, segmentEnd) = (outcome.nextSegment, StoreFiles.segmentHeaderSize)
            }
        } catch {
            fs.close(lock)
            throw .io(error)
        }
        let shared = StoreShared()
        shared.snapshotBytes.store(outcome.snapshotBytes, ordering: .relaxed)
        let setup = StoreWriter.Setup(
            shared: shared, fileSystem: fs, directory: directory, policy: policy, options: options, log: log,
            state: outcome.state, lock: lock, segment: segment, segmentNumber: segmentNumber,
            segmentEnd: Int64(segmentEnd),
            logBytes: outcome.appendTarget == nil ? outcome.logBytes + segmentEnd : outcome.logBytes)
        let thread = startThread(name: "midge-store") { StoreWriter(setup).run() }
        let store = DurableStore(directory: directory, policy: policy, shared: shared, writerThread: thread)
        return (store, outcome.state, outcome.report)
    }

    /// Reads what `open` would recover without changing any file or taking the lock: for tools, and to check
    /// what is on disk while a store is running.
    public static func inspect(directory: String) throws(StoreError) -> (StoreState, RecoveryReport) {
        do {
            let outcome = try Recovery.recover(directory: directory, fileSystem: PosixFileSystem())
            return (outcome.state, outcome.report)
        } catch {
            throw .io(error)
        }
    }

    static func createSegment(_ number: UInt64, directory: String, fileSystem fs: any StoreFileSystem)
        throws(FileError) -> OpenFile
    {
        let file = try fs.openForWriting(StoreFiles.path(directory, StoreFiles.segmentName(number)), truncate: true)
        do throws(FileError) {
            try fs.write(StoreFiles.segmentHeader, to: file, at: 0)
            try fs.synchronize(file, dataOnly: false)
            try fs.synchronizeDirectory(directory)
        } catch {
            fs.close(file)
            throw error
        }
        return file
    }

    /// Queues `records`; `completion` runs on the writer thread once they are durable per the policy, after the
    /// completions of every earlier append. With no records it is a barrier: it runs after everything appended
    /// before it. While the store is unhealthy completions are held, never dropped and never run early.
    /// Completions should only hand work back to their event loop: the next batch waits for them.
    public func append(_ records: [StoreRecord], then completion: @escaping @Sendable () -> Void) {
        enqueue(records, completion)
    }

    /// Queues `records` with nothing to run when they are durable.
    public func append(_ records: [StoreRecord]) {
        enqueue(records, nil)
    }

    private func enqueue(_ records: [StoreRecord], _ completion: (@Sendable () -> Void)?) {
        shared.appends.wrappingAdd(1, ordering: .relaxed)
        let mustWake = shared.pending.withLock { pending in
            precondition(!pending.closing, "DurableStore.append after close()")
            // The first append since the writer took the last batch hands its array over whole: copying it record
            // by record (a retain per field, and a release when the caller's copy goes) was ~1.5% of loop 0.
            if pending.records.isEmpty {
                pending.records = records
            } else {
                pending.records.append(contentsOf: records)
            }
            if let completion { pending.completions.append(completion) }
            // Only the append that finds the writer idle pays for the wake-up.
            guard pending.writerIdle else { return false }
            pending.writerIdle = false
            return true
        }
        if mustWake { shared.wake.signal() }
    }

    /// False from a failed write or fsync until a retry succeeds. While false, do not acknowledge new QoS 1/2
    /// publishes: their acknowledgements would wait indefinitely.
    public var isHealthy: Bool { shared.healthy.load(ordering: .acquiring) }

    public var statistics: StoreStatistics {
        StoreStatistics(
            appends: shared.appends.load(ordering: .relaxed),
            batches: shared.batches.load(ordering: .relaxed),
            records: shared.records.load(ordering: .relaxed),
            cancelledRecords: shared.cancelledRecords.load(ordering: .relaxed),
            bytes: shared.bytes.load(ordering: .relaxed),
            fsyncs: shared.fsyncs.load(ordering: .relaxed),
            lastFsyncNanoseconds: shared.lastFsyncNanoseconds.load(ordering: .relaxed),
            logBytes: shared.logBytes.load(ordering: .relaxed),
            snapshots: shared.snapshots.load(ordering: .relaxed),
            lastSnapshotBytes: shared.snapshotBytes.load(ordering: .relaxed),
            heldRecords: shared.heldRecords.load(ordering: .relaxed),
            isHealthy: shared.healthy.load(ordering: .relaxed))
    }

    /// Writes and fsyncs what is queued, runs its completions, waits for a running snapshot and stops the writer.
    /// Records a failing disk still refuses are given up (and logged). Later calls do nothing.
    public func close() {
        let thread = writerThread.withLock { thread in
            defer { thread = nil }
            return thread
        }
        guard let thread else { return }
        shared.pending.withLock { $0.closing = true }
        shared.wake.signal()
        // The last reference may go inside a completion, on the writer thread itself: it finishes on its own.
        if pthread_equal(thread, pthread_self()) == 0 {
            pthread_join(thread, nil)
        } else {
            pthread_detach(thread)
        }
    }
}
