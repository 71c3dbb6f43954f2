// Recovery: replay of snapshot and log, torn and corrupt tails, damaged snapshots, interrupted compaction.
import Glibc
import MQTTCodec
import XCTest

@testable import MidgeStore

final class RecoveryTests: XCTestCase {
    private let segment1 = StoreFiles.segmentName(1)

    func testEmptyDirectoryOpensEmptyAndReopensWithWhatWasAppended() throws {
        let directory = TemporaryDirectory()
        let records = brokerHistory(count: 500, seed: 7)
        do {
            let (store, state, report) = try DurableStore.open(directory: directory.path)
            XCTAssertEqual(state, StoreState())
            XCTAssertTrue(report.isClean)
            appendAndWait(store, records)
            store.close()
        }
        let (store, state, report) = try DurableStore.open(directory: directory.path)
        defer { store.close() }
        XCTAssertEqual(state, StoreState(records: records))
        XCTAssertEqual(report.recordsReplayed, records.count)
        XCTAssertTrue(report.isClean, report.description)
    }

    /// A crash in the middle of an append, at every byte of the last record: everything before it is recovered
    /// and the report says one record was dropped.
    func testLogTruncatedAtEveryOffsetOfItsLastRecord() throws {
        let records = brokerHistory(count: 40, seed: 11)
        let full = segmentBytes(records)
        let lastFrame = records[records.count - 1].frame.count
        let expected = StoreState(records: records.dropLast())
        for cut in 0..<lastFrame {
            let directory = TemporaryDirectory()
            directory.write(segment1, Array(full[0..<(full.count - lastFrame + cut)]))
            let (state, report) = try DurableStore.inspect(directory: directory.path)
            XCTAssertEqual(state, expected, "cut \(cut)")
            XCTAssertEqual(report.recordsReplayed, records.count - 1, "cut \(cut)")
            if cut == 0 {
                XCTAssertNil(report.stopReason, "a cut at a record boundary is a clean end")
                continue
            }
            XCTAssertEqual(report.recordsDropped, 1, "cut \(cut)")
            XCTAssertEqual(report.bytesDropped, cut, "cut \(cut)")
            XCTAssertTrue(report.stopReason?.isTornTail ?? false, "cut \(cut): \(report)")
            XCTAssertTrue(report.description.contains("dropped 1 record ("), report.description)
        }
    }

    /// After `open` cut a torn tail, new appends follow the good records and the next start is clean.
    func testOpenCutsTheTornTailSoNewAppendsAreClean() throws {
        let directory = TemporaryDirectory()
        let records = brokerHistory(count: 30, seed: 12)
        let full = segmentBytes(records)
        directory.write(segment1, Array(full[0..<(full.count - 3)]))
        let more = brokerHistory(count: 30, seed: 13).filter {
            if case .messageStored = $0 { return false } else { return true }
        }
        do {
            let (store, state, report) = try DurableStore.open(directory: directory.path)
            XCTAssertEqual(state, StoreState(records: records.dropLast()))
            XCTAssertEqual(report.recordsDropped, 1)
            appendAndWait(store, more)
            store.close()
        }
        // The new records went right after the good ones, in the same segment.
        XCTAssertEqual(directory.names.compactMap(StoreFiles.segmentNumber), [1])
        XCTAssertEqual(
            directory.read(segment1).count,
            full.count - records[records.count - 1].frame.count + segmentBytes(more).count - 16)
        let (state, report) = try DurableStore.inspect(directory: directory.path)
        XCTAssertTrue(report.isClean, report.description)
        XCTAssertEqual(state, StoreState(records: Array(records.dropLast()) + more))
        XCTAssertFalse(directory.names.contains { $0.hasSuffix(".damaged") }, "a torn tail is not worth keeping")
    }

    /// A flipped byte inside a record in the middle: replay stops there, says "checksum mismatch", and counts the
    /// damaged record and every one after it as dropped.
    func testFlippedByteInTheMiddleStopsThereWithChecksumMismatch() throws {
        let records = brokerHistory(count: 21, seed: 21)
        var bytes = segmentBytes(records)
        let damagedIndex = 10
        let start = StoreFiles.segmentHeaderSize + records[0..<damagedIndex].reduce(0) { $0 + $1.frame.count }
        bytes[start + StoreRecord.frameHeaderSize + 1] ^= 0x10
        let directory = TemporaryDirectory()
        directory.write(segment1, bytes)

        let (state, report) = try DurableStore.inspect(directory: directory.path)
        XCTAssertEqual(state, StoreState(records: records[0..<damagedIndex]))
        XCTAssertEqual(report.stopReason, .frame(.checksumMismatch))
        XCTAssertEqual(report.recordsReplayed, damagedIndex)
        XCTAssertEqual(report.recordsDropped, records.count - damagedIndex)
        XCTAssertEqual(report.stopLocation, "\(segment1) offset \(start)")
        XCTAssertTrue(report.description.hasSuffix(": checksum mismatch."), report.description)

        // open keeps the dropped bytes aside for a person, and the log ends before the damage from then on.
        let (store, reopened, _) = try DurableStore.open(directory: directory.path)
        store.close()
        XCTAssertEqual(reopened, state)
        XCTAssertEqual(directory.read(segment1 + ".damaged"), Array(bytes[start...]))
        let (again, cleanReport) = try DurableStore.inspect(directory: directory.path)
        XCTAssertEqual(again, state)
        XCTAssertTrue(cleanReport.isClean, cleanReport.description)
    }

    /// Whatever byte of a record is damaged (length, checksum, type, body), nothing after it is applied.
    func testAnyDamagedByteOfARecordStopsReplayBeforeIt() throws {
        let records = brokerHistory(count: 12, seed: 5)
        let clean = segmentBytes(records)
        let index = 6
        let start = StoreFiles.segmentHeaderSize + records[0..<index].reduce(0) { $0 + $1.frame.count }
        let expected = StoreState(records: records[0..<index])
        for offset in start..<(start + records[index].frame.count) {
            for mask in [UInt8(0x01), 0x80] {
                var bytes = clean
                bytes[offset] ^= mask
                let directory = TemporaryDirectory()
                directory.write(segment1, bytes)
                let (state, report) = try DurableStore.inspect(directory: directory.path)
                XCTAssertEqual(state, expected, "byte \(offset - start) mask \(mask)")
                XCTAssertNotNil(report.stopReason, "byte \(offset - start) mask \(mask)")
                XCTAssertGreaterThanOrEqual(report.recordsDropped, 1)
            }
        }
    }

    func testLaterSegmentsAfterADamagedOneAreDroppedAndSetAside() throws {
        let first = brokerHistory(count: 20, seed: 31)
        let second = [StoreRecord.retainedSet(topic: topic("late"), payload: [1], qos: .atMostOnce)]
        var bytes = segmentBytes(first)
        bytes[bytes.count - 2] ^= 0xFF
        let directory = TemporaryDirectory()
        directory.write(segment1, bytes)
        directory.write(StoreFiles.segmentName(2), segmentBytes(second))
        let (store, state, report) = try DurableStore.open(directory: directory.path)
        store.close()
        XCTAssertEqual(state, StoreState(records: first.dropLast()))
        XCTAssertEqual(report.recordsDropped, 2)
        XCTAssertTrue(directory.names.contains(StoreFiles.segmentName(2) + ".damaged"), "\(directory.names)")
        let (_, cleanReport) = try DurableStore.inspect(directory: directory.path)
        XCTAssertTrue(cleanReport.isClean, cleanReport.description)
    }

    func testMissingSegmentStopsReplay() throws {
        let directory = TemporaryDirectory()
        let first = [StoreRecord.retainedSet(topic: topic("one"), payload: [1], qos: .atMostOnce)]
        directory.write(segment1, segmentBytes(first))
        directory.write(StoreFiles.segmentName(3), segmentBytes([.retainedCleared(topic: topic("one"))]))
        let (state, report) = try DurableStore.inspect(directory: directory.path)
        XCTAssertEqual(state, StoreState(records: first))
        XCTAssertEqual(report.stopReason, .missingSegment(2))
        XCTAssertEqual(report.recordsDropped, 1)
    }

    /// A segment created just before a crash, header never written: ignored and removed.
    func testTornSegmentHeaderAtTheEndIsRemoved() throws {
        let directory = TemporaryDirectory()
        let records = brokerHistory(count: 10, seed: 2)
        directory.write(segment1, segmentBytes(records))
        directory.write(StoreFiles.segmentName(2), [0x4D, 0x49, 0x44])
        let (store, state, report) = try DurableStore.open(directory: directory.path)
        store.close()
        XCTAssertEqual(state, StoreState(records: records))
        XCTAssertNil(report.stopReason, report.description)
        XCTAssertFalse(directory.names.contains(StoreFiles.segmentName(2)), "\(directory.names)")
        XCTAssertTrue(try DurableStore.inspect(directory: directory.path).1.isClean)
    }

    func testForeignFileAsSegmentDoesNotPreventStartUp() throws {
        let directory = TemporaryDirectory()
        directory.write(segment1, Array("this is not a log segment at all".utf8))
        let (store, state, report) = try DurableStore.open(directory: directory.path)
        store.close()
        XCTAssertEqual(state, StoreState())
        XCTAssertEqual(report.stopReason, .badSegmentHeader("not a log segment (bad magic)"))
    }

    func testSecondOpenOfTheSameDirectoryIsRefused() throws {
        let directory = TemporaryDirectory()
        let (store, _, _) = try DurableStore.open(directory: directory.path)
        defer { store.close() }
        XCTAssertThrowsError(try DurableStore.open(directory: directory.path)) { error in
            guard case StoreError.locked = error else { return XCTFail("\(error)") }
        }
    }

    // MARK: Snapshots

    private func smallCompaction() -> StoreOptions {
        StoreOptions(compactionMinimumBytes: 4096, compactionSnapshotFactor: 1, retryIntervalMilliseconds: 10)
    }

    /// Appends in batches so the writer sees the threshold crossed several times, waiting for snapshots between.
    private func appendWithCompaction(_ store: DurableStore, _ records: [StoreRecord], batch: Int = 100) {
        var index = 0
        while index < records.count {
            let slice = Array(records[index..<min(index + batch, records.count)])
            let done = Counter()
            store.append(slice) { done.increment() }
            XCTAssertTrue(eventually { done.count == 1 })
            index += batch
        }
    }

    func testSnapshotPlusLogEqualsDirectApplication() throws {
        let directory = TemporaryDirectory()
        let records = brokerHistory(count: 4000, seed: 99)
        do {
            let (store, _, _) = try DurableStore.open(directory: directory.path, options: smallCompaction())
            appendWithCompaction(store, records)
            XCTAssertTrue(eventually { store.statistics.snapshots >= 2 }, "\(store.statistics)")
            store.close()
        }
        let (store, state, report) = try DurableStore.open(directory: directory.path)
        store.close()
        XCTAssertEqual(state, StoreState(records: records))
        XCTAssertNotNil(report.snapshot, report.description)
        XCTAssertTrue(report.isClean, report.description)
        XCTAssertLessThanOrEqual(directory.names.filter { $0.hasSuffix(".snap") }.count, 2, "\(directory.names)")
        // Only what the two kept snapshots need remains of the log.
        let segments = directory.names.compactMap(StoreFiles.segmentNumber)
        let snapshots = directory.names.compactMap(StoreFiles.snapshotNumber).sorted()
        XCTAssertGreaterThanOrEqual(segments.min() ?? 0, snapshots.first ?? 0, "\(directory.names)")
    }

    /// Crash after the snapshot's rename, before the old segments were removed: they are not applied twice
    /// (queued deliveries would be duplicated if they were).
    func testCrashBetweenSnapshotRenameAndLogDeletion() throws {
        let directory = TemporaryDirectory()
        let records = brokerHistory(count: 3000, seed: 5150)
        let fs = FaultyFileSystem()
        fs.skipRemoves.store(true, ordering: .relaxed)
        do {
            let (store, _, _) = try DurableStore.open(
                directory: directory.path, policy: .always, options: smallCompaction(), fileSystem: fs, log: { _, _ in }
            )
            appendWithCompaction(store, records)
            XCTAssertTrue(eventually { store.statistics.snapshots >= 3 }, "\(store.statistics)")
            store.close()
        }
        XCTAssertTrue(directory.names.contains(segment1), "the removal was skipped: \(directory.names)")
        XCTAssertGreaterThanOrEqual(directory.names.filter { $0.hasSuffix(".snap") }.count, 3)

        let (store, state, report) = try DurableStore.open(directory: directory.path)
        store.close()
        XCTAssertEqual(state, StoreState(records: records))
        XCTAssertTrue(report.isClean, report.description)
        XCTAssertFalse(directory.names.contains(segment1), "open finishes the interrupted clean-up")
        XCTAssertEqual(directory.names.filter { $0.hasSuffix(".snap") }.count, 2)
    }

    func testDamagedNewestSnapshotFallsBackToThePreviousOne() throws {
        let directory = TemporaryDirectory()
        let records = brokerHistory(count: 4000, seed: 77)
        do {
            let (store, _, _) = try DurableStore.open(directory: directory.path, options: smallCompaction())
            appendWithCompaction(store, records)
            XCTAssertTrue(eventually { store.statistics.snapshots >= 2 })
            store.close()
        }
        let snapshots = directory.names.filter { $0.hasSuffix(".snap") }.sorted()
        XCTAssertEqual(snapshots.count, 2)
        guard let newest = snapshots.last else { return }
        var bytes = directory.read(newest)
        bytes[bytes.count / 2] ^= 0x01
        directory.write(newest, bytes)

        let (store, state, report) = try DurableStore.open(directory: directory.path)
        store.close()
        XCTAssertEqual(state, StoreState(records: records))
        XCTAssertEqual(report.snapshot, snapshots.first)
        XCTAssertEqual(report.warnings, ["snapshot \(newest) is unusable (checksum mismatch)"])
        XCTAssertTrue(directory.names.contains(newest + ".damaged"))
    }

    /// With no readable snapshot at all, start-up still succeeds with whatever the log holds, and says so.
    func testNoUsableSnapshotStillStarts() throws {
        let directory = TemporaryDirectory()
        let records = brokerHistory(count: 4000, seed: 78)
        do {
            let (store, _, _) = try DurableStore.open(directory: directory.path, options: smallCompaction())
            appendWithCompaction(store, records)
            XCTAssertTrue(eventually { store.statistics.snapshots >= 2 })
            store.close()
        }
        for name in directory.names where name.hasSuffix(".snap") {
            directory.write(name, Array(directory.read(name).prefix(40)))
        }
        let (store, _, report) = try DurableStore.open(directory: directory.path)
        store.close()
        XCTAssertEqual(report.warnings.count, 3, "two unusable snapshots and a log that starts late: \(report)")
        XCTAssertNil(report.snapshot)
    }

    /// A snapshot must be whole before it exists under its name: a leftover temporary file is ignored and removed.
    func testLeftoverTemporarySnapshotIsIgnored() throws {
        let directory = TemporaryDirectory()
        let records = brokerHistory(count: 50, seed: 8)
        directory.write(segment1, segmentBytes(records))
        directory.write(StoreFiles.snapshotName(2) + ".tmp", [1, 2, 3])
        let (store, state, report) = try DurableStore.open(directory: directory.path)
        store.close()
        XCTAssertEqual(state, StoreState(records: records))
        XCTAssertTrue(report.isClean, report.description)
        XCTAssertFalse(directory.names.contains { $0.hasSuffix(".tmp") })
    }
}

extension RecoveryTests {
    /// Restarts keep appending to the last segment instead of leaving a small file behind each time.
    func testRestartsAppendToTheLastSegment() throws {
        let directory = TemporaryDirectory()
        var all: [StoreRecord] = []
        for round in 0..<5 {
            let (store, state, report) = try DurableStore.open(directory: directory.path)
            XCTAssertEqual(state, StoreState(records: all))
            XCTAssertTrue(report.isClean, report.description)
            let more = [
                StoreRecord.retainedSet(topic: topic("round/\(round)"), payload: [UInt8(round)], qos: .atMostOnce)
            ]
            appendAndWait(store, more)
            all += more
            store.close()
        }
        XCTAssertEqual(directory.names.compactMap(StoreFiles.segmentNumber), [1])
    }
}
