// The writer thread: group commit, the unhealthy state and its retries, segment rotation and snapshots.
import Dispatch
import Glibc
import MidgeRecords

/// Owned by the writer thread and never shared: it is built on that thread from a Sendable `Setup`.
final class StoreWriter {
    struct Setup: Sendable {
        let shared: StoreShared
        let fileSystem: any StoreFileSystem
        let directory: String
        let policy: SyncPolicy
        let options: StoreOptions
        let log: StoreLogSink
        let state: StoreState
        let lock: OpenFile
        let segment: OpenFile
        let segmentNumber: UInt64
        let segmentEnd: Int64
        let logBytes: Int
    }

    private let shared: StoreShared
    private let fs: any StoreFileSystem
    private let directory: String
    private let policy: SyncPolicy
    private let options: StoreOptions
    private let log: StoreLogSink
    private let lock: OpenFile

    /// Everything written so far, applied: what the next snapshot holds.
    private var state: StoreState
    private var segment: OpenFile
    private var segmentNumber: UInt64
    /// Where the next batch goes: the end of the last successful write.
    private var segmentEnd: Int64
    /// Bytes in segments the newest snapshot does not cover, for the compaction threshold.
    private var logBytes: Int

    /// Records and completions taken from callers and not yet durable: after a failed write they wait here.
    private var heldRecords: [StoreRecord] = []
    private var heldCompletions: [@Sendable () -> Void] = []
    private var encoded: [UInt8] = []
    /// Which held records cancel out before they reach the disk.
    private var cancelled = CancelledDeliveries()
    /// Batches still to write without looking for cancellations. Whether acknowledgements come back within one
    /// batch depends on the disk: with fast fsyncs, batches are small and nearly nothing cancels, and looking cost
    /// ~4% of the broker's CPU (durable QoS 1 fan-in). After a batch that stored bodies but cancelled under 1% of its
    /// records, the next 15 are not examined; cancelling is an optimisation, so skipping it is always correct.
    private var batchesWithoutCancelling = 0
    /// Written but not yet fsync'd (`.periodic`, `.none`).
    private var unsynced = false
    private var lastSync: UInt64

    /// The failure of the current unhealthy episode, and when to try again.
    private var failure: FileError?
    private var failureStarted: UInt64 = 0
    private var failedAttempts = 0
    private var nextRetry: UInt64 = 0

    private var snapshotThread: pthread_t?
    /// After a failed rotation or snapshot, compaction waits this long before trying again.
    static let compactionRetryNanoseconds: UInt64 = 10_000_000_000
    private var nextCompactionAttempt: UInt64 = 0

    init(_ setup: Setup) {
        shared = setup.shared
        fs = setup.fileSystem
        directory = setup.directory
        policy = setup.policy
        options = setup.options
        log = setup.log
        lock = setup.lock
        state = setup.state
        segment = setup.segment
        segmentNumber = setup.segmentNumber
        segmentEnd = setup.segmentEnd
        logBytes = setup.logBytes
        lastSync = monotonicNanoseconds()
        shared.logBytes.store(logBytes, ordering: .relaxed)
    }

    func run() {
        while true {
            let (received, closing) = takePending()
            let now = monotonicNanoseconds()
            if failure == nil || now >= nextRetry || closing {
                do {
                    if !heldRecords.isEmpty || !heldCompletions.isEmpty { try writeHeld() }
                    if unsynced && (closing || syncIsDue(now)) { try synchronize() }
                    if failure != nil { recovered() }
                    // Healthy again before any held completion runs, so a caller reacting to one sees it.
                    runCompletions()
                } catch {
                    failed(error)
                }
            }
            if failure == nil && heldRecords.isEmpty && !closing { compactIfDue(now) }
            if closing {
                finish()
                return
            }
            if !received { waitForWork(now) }
        }
    }

    /// Moves what callers appended into the held batch. Marks the writer idle when there was nothing.
    private func takePending() -> (received: Bool, closing: Bool) {
        shared.pending.withLock { pending in
            let closing = pending.closing
            if pending.records.isEmpty && pending.completions.isEmpty {
                if !closing { pending.writerIdle = true }
                return (false, closing)
            }
            // Swapping hands the callers back the emptied arrays with their capacity.
            if heldRecords.isEmpty {
                swap(&heldRecords, &pending.records)
            } else {
                heldRecords.append(contentsOf: pending.records)
                pending.records.removeAll(keepingCapacity: true)
            }
            if heldCompletions.isEmpty {
                swap(&heldCompletions, &pending.completions)
            } else {
                heldCompletions.append(contentsOf: pending.completions)
                pending.completions.removeAll(keepingCapacity: true)
            }
            return (true, closing)
        }
    }

    /// One write for the whole batch (after a failure, again from the same offset) and the fsync `.always` wants.
    /// The batch's completions stay held until `runCompletions`.
    private func writeHeld() throws(FileError) {
        if failure != nil {
            // A retry writes at least what the failed write held: had later appends cancelled some of it, a shorter
            // batch would leave the failed one's tail, checksums intact, past `segmentEnd` if its truncation failed.
            cancelled.skip()
        } else if batchesWithoutCancelling > 0 {
            batchesWithoutCancelling -= 1
            cancelled.skip()
        } else {
            cancelled.examine(heldRecords, against: &state)
            if cancelled.hadCandidates && cancelled.count * 100 < heldRecords.count { batchesWithoutCancelling = 15 }
        }
        encoded.removeAll(keepingCapacity: true)
        // One batch per write: recovery applies it whole or not at all, so a crash in the middle of this write
        // cannot leave half of an append (an inbound QoS 2 id without the message it routed, or the reverse).
        let written = LogBatch.append(heldRecords, to: &encoded) { !cancelled.isCancelled($0) }
        if !encoded.isEmpty {
            let offset = segmentEnd
            try fs.write(encoded, to: segment, at: offset)
            unsynced = true
            if policy == .always { try synchronize() }
            segmentEnd += Int64(encoded.count)
            logBytes += encoded.count
            shared.batches.wrappingAdd(1, ordering: .relaxed)
            shared.records.wrappingAdd(written, ordering: .relaxed)
            shared.bytes.wrappingAdd(encoded.count, ordering: .relaxed)
            shared.logBytes.store(logBytes, ordering: .relaxed)
        } else if policy == .always && unsynced {
            // A barrier on `.always` must not overtake data that a failed fsync left unsynced.
            try synchronize()
        }
        shared.cancelledRecords.wrappingAdd(cancelled.count, ordering: .relaxed)
        heldRecords.withUnsafeBufferPointer { records in
            for index in records.indices where !cancelled.isCancelled(index) { state.apply(records[index]) }
        }
        heldRecords.removeAll(keepingCapacity: true)
        shared.heldRecords.store(0, ordering: .relaxed)
    }

    /// In append order.
    private func runCompletions() {
        for completion in heldCompletions { completion() }
        heldCompletions.removeAll(keepingCapacity: true)
    }

    private func synchronize() throws(FileError) {
        let start = monotonicNanoseconds()
        try fs.synchronize(segment, dataOnly: true)
        let end = monotonicNanoseconds()
        unsynced = false
        lastSync = end
        shared.fsyncs.wrappingAdd(1, ordering: .relaxed)
        shared.lastFsyncNanoseconds.store(Int(end - start), ordering: .relaxed)
    }

    private func syncIsDue(_ now: UInt64) -> Bool {
        switch policy {
        case .always: true
        case .periodic(let milliseconds): now >= lastSync + UInt64(milliseconds) * 1_000_000
        case .none: false
        }
    }

    /// The first failure of an episode is logged; the rest are retried quietly every retry interval.
    private func failed(_ error: FileError) {
        let now = monotonicNanoseconds()
        nextRetry = now + UInt64(options.retryIntervalMilliseconds) * 1_000_000
        failedAttempts += 1
        shared.heldRecords.store(heldRecords.count, ordering: .relaxed)
        // Cut what the failed write left, so a crash now does not find half a batch (recovery would drop it anyway).
        try? fs.truncate(segment, to: segmentEnd)
        guard failure == nil else { return }
        failure = error
        failureStarted = now
        shared.healthy.store(false, ordering: .releasing)
        log(
            .error,
            "Store: \(error). New QoS 1/2 messages are not acknowledged until the store can write again; "
                + "\(heldCompletions.count) acknowledgements held, retrying every "
                + "\(options.retryIntervalMilliseconds) ms.")
    }

    private func recovered() {
        // Tenths of a second: enough to tell a blip from an outage in the log.
        let tenths = (Double(monotonicNanoseconds() - failureStarted) / 1e8).rounded()
        log(.info, "Store: writing again after \(tenths / 10) s and \(failedAttempts) failed attempts.")
        failure = nil
        failedAttempts = 0
        shared.healthy.store(true, ordering: .releasing)
    }

    private func waitForWork(_ now: UInt64) {
        var deadline: UInt64?
        if failure != nil {
            deadline = nextRetry
        } else if unsynced, case .periodic(let milliseconds) = policy {
            deadline = lastSync + UInt64(milliseconds) * 1_000_000
        }
        guard let deadline else {
            shared.wake.wait()
            return
        }
        guard deadline > now else { return }
        _ = shared.wake.wait(timeout: .now() + .nanoseconds(Int(deadline - now)))
    }

    /// Past the threshold, starts a new segment and writes a snapshot of the state so far on another thread; once
    /// that is durable, the snapshot thread removes the files it makes obsolete. Callers never wait for it.
    private func compactIfDue(_ now: UInt64) {
        let threshold = max(
            options.compactionMinimumBytes,
            options.compactionSnapshotFactor * shared.snapshotBytes.load(ordering: .relaxed))
        guard logBytes >= threshold, now >= nextCompactionAttempt,
            now >= shared.snapshotRetryAfter.load(ordering: .relaxed),
            !shared.snapshotRunning.load(ordering: .acquiring)
        else { return }
        if let thread = snapshotThread {
            pthread_join(thread, nil)
            snapshotThread = nil
        }
        let next = segmentNumber + 1
        do {
            if unsynced { try synchronize() }
            let file = try DurableStore.createSegment(next, directory: directory, fileSystem: fs)
            fs.close(segment)
            segment = file
        } catch {
            log(.warning, "Store: cannot start a new log segment for compaction: \(error).")
            nextCompactionAttempt = now + StoreWriter.compactionRetryNanoseconds
            return
        }
        segmentNumber = next
        segmentEnd = Int64(StoreFiles.segmentHeaderSize)
        logBytes = StoreFiles.segmentHeaderSize
        shared.logBytes.store(logBytes, ordering: .relaxed)
        shared.snapshotRunning.store(true, ordering: .releasing)
        // A copy of the state as of the end of the previous segment: later appends change the writer's own copy.
        let snapshot = state
        let (shared, fs, directory, log) = (self.shared, self.fs, self.directory, self.log)
        snapshotThread = startThread(name: "midge-snapshot") {
            do {
                let size = try Snapshot.write(snapshot, firstSegment: next, directory: directory, fileSystem: fs)
                shared.snapshotBytes.store(size, ordering: .relaxed)
                shared.snapshots.wrappingAdd(1, ordering: .relaxed)
                try Snapshot.removeObsoleteFiles(directory: directory, fileSystem: fs)
            } catch {
                log(.warning, "Store: snapshot not written: \(error). The log keeps everything meanwhile.")
                shared.snapshotRetryAfter.store(
                    monotonicNanoseconds() + StoreWriter.compactionRetryNanoseconds, ordering: .relaxed)
            }
            shared.snapshotRunning.store(false, ordering: .releasing)
        }
    }

    private func finish() {
        if !heldRecords.isEmpty || !heldCompletions.isEmpty {
            let why = failure.map { "\($0)" } ?? "unknown error"
            log(
                .error,
                "Store: closing with \(heldRecords.count) records that could not be written (\(why)); "
                    + "their \(heldCompletions.count) acknowledgements were never sent.")
        } else if let failure {
            // The closing pass of `run` tried once more to get everything on disk, whatever the policy.
            log(.error, "Store: closing without a final fsync: \(failure).")
        }
        if let thread = snapshotThread { pthread_join(thread, nil) }
        fs.close(segment)
        fs.close(lock)
    }
}
