// Recovery: replay of snapshot and log, torn and corrupt tails, damaged snapshots, interrupted compaction.
import Glibc
import MQTTCodec
import MQTTTestSupport
import XCTest

@testable import MidgeRecords
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

    /// A crash in the middle of a write, at every byte of the last batch: its records are recovered all or none,
    /// and when none, the report counts every one of them as dropped (once its header is readable).
    func testBatchCutAtEveryOffsetOfItsLastWriteRecoversAllOrNone() throws {
        let records = brokerHistory(count: 60, seed: 11)
        let batches = randomBatches(Array(records.dropLast(7)), largest: 6, seed: 1) + [Array(records.suffix(7))]
        let full = segmentBytes(batches: batches)
        let last = batchSize(batches[batches.count - 1])
        let before = StoreState(records: records.dropLast(7))
        for cut in 0...last {
            let directory = TemporaryDirectory()
            directory.write(segment1, Array(full[0..<(full.count - last + cut)]))
            let (state, report) = try DurableStore.inspect(directory: directory.path)
            if cut == last {
                XCTAssertEqual(state, StoreState(records: records), "the whole batch")
                XCTAssertTrue(report.isClean, report.description)
                continue
            }
            XCTAssertEqual(state, before, "cut \(cut): none of the batch")
            XCTAssertEqual(report.recordsReplayed, records.count - 7, "cut \(cut)")
            if cut == 0 {
                XCTAssertNil(report.stopReason, "a cut at a batch boundary is a clean end")
                continue
            }
            XCTAssertEqual(report.bytesDropped, cut, "cut \(cut)")
            XCTAssertTrue(report.stopReason?.isTornTail ?? false, "cut \(cut): \(report)")
            if cut >= LogBatch.headerSize {
                XCTAssertEqual(report.recordsDropped, 7, "cut \(cut): the header says how many")
                XCTAssertEqual(
                    report.stopReason, .frame(.tornBatch(size: last, available: cut, records: 7)), "cut \(cut)")
                XCTAssertTrue(report.description.contains("dropped 7 records ("), report.description)
                let reason = "torn batch (file ends \(cut) bytes into a \(last)-byte batch of 7 records)."
                XCTAssertTrue(report.description.hasSuffix(reason), report.description)
            } else {
                XCTAssertLessThanOrEqual(report.recordsDropped, 1, "cut \(cut): no header to count from")
            }
        }
    }

    /// The same through `open`: the torn batch is cut off, not kept aside, and appends continue after the good ones.
    func testOpenCutsTheTornTailSoNewAppendsAreClean() throws {
        let directory = TemporaryDirectory()
        let records = brokerHistory(count: 30, seed: 12)
        let batches = randomBatches(records, largest: 5, seed: 12)
        let full = segmentBytes(batches: batches)
        let kept = full.count - batchSize(batches[batches.count - 1])
        directory.write(segment1, Array(full[0..<(full.count - 3)]))
        let more = brokerHistory(count: 30, seed: 13).filter {
            if case .messageStored = $0 { return false } else { return true }
        }
        let good = Array(batches.dropLast().joined())
        do {
            let (store, state, report) = try DurableStore.open(directory: directory.path)
            XCTAssertEqual(state, StoreState(records: good))
            XCTAssertEqual(report.recordsDropped, batches[batches.count - 1].count)
            appendAndWait(store, more)
            store.close()
        }
        // The new records went right after the good ones, in the same segment.
        XCTAssertEqual(directory.names.compactMap(StoreFiles.segmentNumber), [1])
        XCTAssertEqual(Array(directory.read(segment1).prefix(kept)), Array(full[0..<kept]))
        let (state, report) = try DurableStore.inspect(directory: directory.path)
        XCTAssertTrue(report.isClean, report.description)
        XCTAssertEqual(report.recordsReplayed, good.count + more.count)
        XCTAssertEqual(state, StoreState(records: good + more))
        XCTAssertFalse(directory.names.contains { $0.hasSuffix(".damaged") }, "a torn tail is not worth keeping")
    }

    /// A flipped byte inside a batch in the middle: replay stops at the batch's start, none of its records is
    /// applied, and it and every batch after it count as dropped.
    func testFlippedByteInsideABatchDropsTheBatchAndEverythingAfter() throws {
        let records = brokerHistory(count: 80, seed: 21)
        let batches = randomBatches(records, largest: 8, seed: 21)
        let damaged = batches.count / 2
        var bytes = segmentBytes(batches: batches)
        let start = StoreFiles.segmentHeaderSize + batches[0..<damaged].reduce(0) { $0 + batchSize($1) }
        bytes[start + LogBatch.headerSize + (batchSize(batches[damaged]) - LogBatch.headerSize) / 2] ^= 0x10
        let directory = TemporaryDirectory()
        directory.write(segment1, bytes)

        let applied = batches[0..<damaged].joined()
        let (state, report) = try DurableStore.inspect(directory: directory.path)
        XCTAssertEqual(state, StoreState(records: applied))
        XCTAssertEqual(report.stopReason, .frame(.checksumMismatch))
        XCTAssertEqual(report.recordsReplayed, applied.count)
        XCTAssertEqual(report.recordsDropped, records.count - applied.count)
        XCTAssertEqual(report.stopLocation, "\(segment1) offset \(start)")
        XCTAssertTrue(report.description.hasSuffix(": checksum mismatch."), report.description)
        XCTAssertFalse(report.stopReason?.isTornTail ?? true, "damage, not a torn write")

        // open keeps the dropped bytes aside for a person, and the log ends before the damage from then on.
        let (store, reopened, _) = try DurableStore.open(directory: directory.path)
        store.close()
        XCTAssertEqual(reopened, state)
        XCTAssertEqual(directory.read(segment1 + ".damaged"), Array(bytes[start...]))
        let (again, cleanReport) = try DurableStore.inspect(directory: directory.path)
        XCTAssertEqual(again, state)
        XCTAssertTrue(cleanReport.isClean, cleanReport.description)
    }

    /// Whatever byte of a batch is damaged (its header, a record's length, checksum, type or body), none of its
    /// records and nothing after it is applied.
    func testAnyDamagedByteOfABatchStopsReplayBeforeIt() throws {
        let records = brokerHistory(count: 16, seed: 5)
        let batches = [Array(records[0..<6]), Array(records[6..<10]), Array(records[10...])]
        let clean = segmentBytes(batches: batches)
        let start = StoreFiles.segmentHeaderSize + batchSize(batches[0])
        let expected = StoreState(records: batches[0])
        for offset in start..<(start + batchSize(batches[1])) {
            for mask in [UInt8(0x01), 0x80] {
                var bytes = clean
                bytes[offset] ^= mask
                let directory = TemporaryDirectory()
                directory.write(segment1, bytes)
                let (state, report) = try DurableStore.inspect(directory: directory.path)
                XCTAssertEqual(state, expected, "byte \(offset - start) mask \(mask)")
                XCTAssertEqual(report.recordsReplayed, 6, "byte \(offset - start) mask \(mask)")
                XCTAssertNotNil(report.stopReason, "byte \(offset - start) mask \(mask)")
                XCTAssertGreaterThanOrEqual(report.recordsDropped, 1)
                XCTAssertEqual(report.stopLocation, "\(segment1) offset \(start)")
            }
        }
    }

    // MARK: Version-1 segments (records without batches), as stores written before batches hold them

    /// A small version-1 segment, bytes as the old encoder wrote them.
    static let unbatchedFixture: [UInt8] = hexBytes(
        "4d4944474557414c01000000a29c18d2150000004d3e4324030a006f6c642d636c69656e7400f1536500000000150000",
        "005a69a54a060a006f6c642d636c69656e7405006f6c642f230117000000f5cae18e08050000000000000005006f6c64",
        "2f310102000000763117000000d8668c8d090a006f6c642d636c69656e740500000000000000010018000000a60a726e",
        "010c006f6c642f72657461696e656400040000006b657074")

    static let unbatchedFixtureRecords: [StoreRecord] = [
        .sessionCreated(clientID: "old-client", unixSeconds: 1_700_000_000),
        .subscriptionAdded(clientID: "old-client", filter: filter("old/#"), qos: .atLeastOnce),
        .messageStored(id: 5, topic: topic("old/1"), payload: Array("v1".utf8), qos: .atLeastOnce),
        .deliveryQueued(clientID: "old-client", messageID: 5, qos: .atLeastOnce, retain: false),
        .retainedSet(topic: topic("old/retained"), payload: Array("kept".utf8), qos: .atMostOnce),
    ]

    /// An existing store still starts: its version-1 segment is replayed, then left as it is while new batches go
    /// to a new version-2 segment, and the next start reads both.
    func testUnbatchedSegmentWrittenByTheOldEncoderStillRecovers() throws {
        XCTAssertEqual(Self.unbatchedFixture, unbatchedSegmentBytes(Self.unbatchedFixtureRecords), "encoder unchanged")
        let directory = TemporaryDirectory()
        directory.write(segment1, Self.unbatchedFixture)
        let more: [StoreRecord] = [
            .deliveryInFlight(
                clientID: "old-client", messageID: 5, packetID: packet(3), qos: .atLeastOnce, retain: false,
                state: .publishSent),
            .retainedSet(topic: topic("new/retained"), payload: [2], qos: .atLeastOnce),
        ]
        do {
            let (store, state, report) = try DurableStore.open(directory: directory.path)
            XCTAssertEqual(state, StoreState(records: Self.unbatchedFixtureRecords))
            XCTAssertEqual(state.sessions["old-client"]?.queue.map(\.messageID), [5])
            XCTAssertEqual(report.recordsReplayed, 5)
            XCTAssertTrue(report.isClean, report.description)
            appendAndWait(store, more)
            store.close()
        }
        XCTAssertEqual(directory.read(segment1), Self.unbatchedFixture, "nothing appended to a version-1 segment")
        let segment2 = directory.read(StoreFiles.segmentName(2))
        XCTAssertEqual(StoreFiles.checkSegmentHeader(segment2), .valid(version: StoreFiles.segmentFormatVersion))
        let (state, report) = try DurableStore.inspect(directory: directory.path)
        XCTAssertEqual(state, StoreState(records: Self.unbatchedFixtureRecords + more))
        XCTAssertEqual(report.segmentsReplayed, 2)
        XCTAssertTrue(report.isClean, report.description)
    }

    /// A version-1 segment cut at every byte of its last record: records are applied one by one, as before.
    func testUnbatchedLogTruncatedAtEveryOffsetOfItsLastRecord() throws {
        let records = brokerHistory(count: 40, seed: 11)
        let full = unbatchedSegmentBytes(records)
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

    /// A torn version-1 tail is cut off, and new batches start a new segment rather than follow it.
    func testTornUnbatchedTailIsCutAndAppendsGoToANewSegment() throws {
        let directory = TemporaryDirectory()
        let records = brokerHistory(count: 30, seed: 14)
        let full = unbatchedSegmentBytes(records)
        directory.write(segment1, Array(full[0..<(full.count - 2)]))
        let more = [StoreRecord.retainedSet(topic: topic("after"), payload: [1], qos: .atMostOnce)]
        do {
            let (store, state, report) = try DurableStore.open(directory: directory.path)
            XCTAssertEqual(state, StoreState(records: records.dropLast()))
            XCTAssertEqual(report.recordsDropped, 1)
            appendAndWait(store, more)
            store.close()
        }
        XCTAssertEqual(directory.read(segment1).count, full.count - records[records.count - 1].frame.count)
        XCTAssertEqual(directory.names.compactMap(StoreFiles.segmentNumber).sorted(), [1, 2])
        let (state, report) = try DurableStore.inspect(directory: directory.path)
        XCTAssertTrue(report.isClean, report.description)
        XCTAssertEqual(state, StoreState(records: Array(records.dropLast()) + more))
    }

    /// A damaged version-1 record in the middle: as before, replay stops there and everything after is dropped.
    func testFlippedByteInAnUnbatchedSegmentStopsThereWithChecksumMismatch() throws {
        let records = brokerHistory(count: 21, seed: 21)
        var bytes = unbatchedSegmentBytes(records)
        let damagedIndex = 10
        let start = StoreFiles.segmentHeaderSize + records[0..<damagedIndex].reduce(0) { $0 + $1.frame.count }
        bytes[start + StoreRecord.frameHeaderSize + 1] ^= 0x10
        let directory = TemporaryDirectory()
        directory.write(segment1, bytes)
        let (state, report) = try DurableStore.inspect(directory: directory.path)
        XCTAssertEqual(state, StoreState(records: records[0..<damagedIndex]))
        XCTAssertEqual(report.stopReason, .frame(.checksumMismatch))
        XCTAssertEqual(report.recordsDropped, records.count - damagedIndex)
        XCTAssertEqual(report.stopLocation, "\(segment1) offset \(start)")
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

/// Bytes from hex strings, for fixtures.
func hexBytes(_ lines: String...) -> [UInt8] {
    let digits = Array(lines.joined().utf8)
    return stride(from: 0, to: digits.count - 1, by: 2).map { index in
        let text = String(decoding: digits[index...index + 1], as: UTF8.self)
        guard let byte = UInt8(text, radix: 16) else { fatalError("BUG: not hex: \(text)") }
        return byte
    }
}
