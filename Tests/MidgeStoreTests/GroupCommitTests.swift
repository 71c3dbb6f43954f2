// Group commit: every completion runs once, in order, after its records are durable; one fsync serves many.
import Dispatch
import Glibc
import MQTTCodec
import MQTTTestSupport
import Synchronization
import XCTest

@testable import MidgeRecords
@testable import MidgeStore

final class GroupCommitTests: XCTestCase {
    private static func record(_ thread: Int, _ index: Int) -> StoreRecord {
        .retainedSet(topic: topic("t/\(thread)/\(index)"), payload: [UInt8(index & 0xFF)], qos: .atLeastOnce)
    }

    /// 10,000 appends from 4 threads on the real disk: each completion runs exactly once, everything is on disk,
    /// and there are fewer fsyncs than appends.
    func testTenThousandAppendsFromFourThreads() throws {
        let directory = TemporaryDirectory()
        let (store, _, _) = try DurableStore.open(directory: directory.path, policy: .always)
        let perThread = 2500
        let runs = Mutex([Int](repeating: 0, count: 4 * perThread))
        DispatchQueue.concurrentPerform(iterations: 4) { thread in
            for index in 0..<perThread {
                store.append([Self.record(thread, index)]) {
                    runs.withLock { $0[thread * perThread + index] += 1 }
                }
            }
        }
        store.close()
        let counts = runs.withLock { $0 }
        XCTAssertEqual(counts.count, 10_000)
        XCTAssertTrue(counts.allSatisfy { $0 == 1 }, "completion run counts: \(Set(counts))")
        let statistics = store.statistics
        XCTAssertEqual(statistics.appends, 10_000)
        XCTAssertEqual(statistics.records, 10_000)
        XCTAssertLessThan(statistics.fsyncs, statistics.appends)
        XCTAssertEqual(statistics.fsyncs, statistics.batches, "one fsync per batch with .always")
        print(
            "group commit: 10000 appends from 4 threads -> \(statistics.batches) batches, \(statistics.fsyncs) fsyncs")
        let (state, _) = try DurableStore.inspect(directory: directory.path)
        XCTAssertEqual(state.retained.count, 10_000)
    }

    /// The first fsync is held until all 10,000 appends are in: they can only be covered by one more fsync.
    func testOneFsyncCoversEverythingThatArrivedMeanwhile() throws {
        let directory = TemporaryDirectory()
        let fs = FaultyFileSystem()
        let (store, _, _) = try DurableStore.open(
            directory: directory.path, policy: .always, options: StoreOptions(), fileSystem: fs, log: { _, _ in })
        fs.gateFirstSync.store(true, ordering: .releasing)
        let done = Counter()
        store.append([Self.record(9, 0)]) { done.increment() }
        XCTAssertTrue(eventually { !fs.gateFirstSync.load(ordering: .acquiring) }, "the writer reached its fsync")
        DispatchQueue.concurrentPerform(iterations: 4) { thread in
            for index in 0..<2500 { store.append([Self.record(thread, index)]) { done.increment() } }
        }
        XCTAssertEqual(done.count, 0, "nothing completes before its fsync")
        fs.gate.signal()
        XCTAssertTrue(eventually { done.count == 10_001 })
        XCTAssertEqual(store.statistics.fsyncs, 2)
        XCTAssertEqual(store.statistics.batches, 2)
        store.close()
    }

    func testCompletionsRunInAppendOrder() throws {
        let directory = TemporaryDirectory()
        let (store, _, _) = try DurableStore.open(directory: directory.path)
        let order = Mutex<[Int]>([])
        for index in 0..<2000 {
            store.append([Self.record(0, index)]) { order.withLock { $0.append(index) } }
        }
        store.close()
        XCTAssertEqual(order.withLock { $0 }, Array(0..<2000))
    }

    /// An append with no records completes after everything appended before it.
    func testEmptyAppendIsABarrier() throws {
        let directory = TemporaryDirectory()
        let (store, _, _) = try DurableStore.open(directory: directory.path)
        defer { store.close() }
        let done = Counter()
        for index in 0..<100 { store.append([Self.record(1, index)]) }
        store.append([]) { done.increment() }
        XCTAssertTrue(eventually { done.count == 1 })
        XCTAssertEqual(store.statistics.records, 100)
    }

    /// Written with `.always` and acknowledged: another reader sees it on disk while the store is still open.
    func testAcknowledgedRecordsAreOnDiskBeforeClose() throws {
        let directory = TemporaryDirectory()
        let (store, _, _) = try DurableStore.open(directory: directory.path, policy: .always)
        defer { store.close() }
        let records = brokerHistory(count: 300, seed: 3)
        appendAndWait(store, records)
        let (state, report) = try DurableStore.inspect(directory: directory.path)
        XCTAssertEqual(state, StoreState(records: records))
        XCTAssertTrue(report.isClean, report.description)
    }

    func testPeriodicPolicyAcknowledgesAfterTheWriteAndSyncsLater() throws {
        let directory = TemporaryDirectory()
        let fs = FaultyFileSystem()
        let (store, _, _) = try DurableStore.open(
            directory: directory.path, policy: .periodic(milliseconds: 5), options: StoreOptions(), fileSystem: fs,
            log: { _, _ in })
        appendAndWait(store, brokerHistory(count: 200, seed: 4))
        XCTAssertTrue(eventually { fs.dataSyncs.load(ordering: .relaxed) >= 1 }, "the timer fsyncs what was written")
        store.close()
        XCTAssertEqual(
            try DurableStore.inspect(directory: directory.path).0,
            StoreState(records: brokerHistory(count: 200, seed: 4)))
    }

    func testNoSyncPolicyOnlySyncsOnClose() throws {
        let directory = TemporaryDirectory()
        let fs = FaultyFileSystem()
        let (store, _, _) = try DurableStore.open(
            directory: directory.path, policy: .none, options: StoreOptions(), fileSystem: fs, log: { _, _ in })
        appendAndWait(store, brokerHistory(count: 200, seed: 6))
        XCTAssertEqual(fs.dataSyncs.load(ordering: .relaxed), 0)
        store.close()
        XCTAssertEqual(fs.dataSyncs.load(ordering: .relaxed), 1)
    }

    /// Not a pass/fail test: prints what 100k records cost on this machine, per policy.
    func testPrintThroughputFor100kRecords() throws {
        for policy in [SyncPolicy.always, .periodic(milliseconds: 100), .none] {
            let directory = TemporaryDirectory()
            let (store, _, _) = try DurableStore.open(directory: directory.path, policy: policy)
            let payload = [UInt8](repeating: 0x5A, count: 64)
            let done = Counter()
            let start = DispatchTime.now().uptimeNanoseconds
            DispatchQueue.concurrentPerform(iterations: 4) { thread in
                for index in 0..<25_000 {
                    let id = UInt64(thread * 25_000 + index + 1)
                    store.append([
                        .messageStored(id: id, topic: topic("bench/\(thread)"), payload: payload, qos: .atLeastOnce)
                    ]) {
                        done.increment()
                    }
                }
            }
            XCTAssertTrue(eventually(seconds: 120) { done.count == 100_000 })
            let seconds = Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
            let statistics = store.statistics
            store.close()
            let rounded = (seconds * 1000).rounded() / 1000
            print(
                "store throughput (\(policy)): 100000 records from 4 threads in \(rounded) s = "
                    + "\(Int(100_000 / seconds)) appends/s, \(statistics.batches) batches, "
                    + "\(statistics.fsyncs) fsyncs, \(statistics.bytes) bytes, "
                    + "last fsync \(statistics.lastFsyncNanoseconds / 1000) us")
        }
    }
}
