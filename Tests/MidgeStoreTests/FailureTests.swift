// A disk that refuses writes: the store turns unhealthy, holds completions, retries, and loses nothing.
import Glibc
import MQTTCodec
import MQTTTestSupport
import XCTest

@testable import MidgeRecords
@testable import MidgeStore

final class FailureTests: XCTestCase {
    private let options = StoreOptions(retryIntervalMilliseconds: 5)

    private func open(_ directory: TemporaryDirectory, _ fs: FaultyFileSystem, _ log: LogCapture) throws -> DurableStore
    {
        try DurableStore.open(
            directory: directory.path, policy: .always, options: options, fileSystem: fs, log: log.sink
        ).0
    }

    private func checkHeldThenReleased(
        _ fault: (FaultyFileSystem, Bool) -> Void, failures: (FaultyFileSystem) -> Int, file: StaticString = #filePath,
        line: UInt = #line
    ) throws {
        let directory = TemporaryDirectory()
        let fs = FaultyFileSystem()
        let log = LogCapture()
        let store = try open(directory, fs, log)
        let before = brokerHistory(count: 50, seed: 1)
        appendAndWait(store, before, file: file, line: line)
        XCTAssertTrue(store.isHealthy, "healthy at first", file: file, line: line)

        fault(fs, true)
        let held = brokerHistory(count: 120, seed: 2).filter {
            if case .messageStored = $0 { return false } else { return true }
        }
        let done = Counter()
        for record in held { store.append([record]) { done.increment() } }
        XCTAssertTrue(eventually { !store.isHealthy }, "turns unhealthy", file: file, line: line)
        XCTAssertTrue(eventually { failures(fs) >= 5 }, "retries go on", file: file, line: line)
        XCTAssertEqual(done.count, 0, "no completion runs while its records are not durable", file: file, line: line)
        XCTAssertGreaterThan(store.statistics.heldRecords, 0, file: file, line: line)
        XCTAssertEqual(log.count(.error), 1, "logged once per episode: \(log.all)", file: file, line: line)

        fault(fs, false)
        XCTAssertTrue(eventually { done.count == held.count }, "released: \(done.count)", file: file, line: line)
        XCTAssertTrue(store.isHealthy, "healthy again", file: file, line: line)
        XCTAssertEqual(log.count(.info), 1, "\(log.all)", file: file, line: line)
        store.close()

        let (state, report) = try DurableStore.inspect(directory: directory.path)
        XCTAssertEqual(state, StoreState(records: before + held), file: file, line: line)
        XCTAssertTrue(report.isClean, report.description, file: file, line: line)
    }

    func testFailedWritesHoldCompletionsUntilTheDiskAcceptsWritesAgain() throws {
        try checkHeldThenReleased(
            { $0.failWrites.store($1, ordering: .releasing) }, failures: { $0.writeFailures.load(ordering: .relaxed) })
    }

    /// Half of each failed write reached the file: the retry overwrites it from the same offset.
    func testPartialWritesBeforeENOSPCLeaveNoGarbage() throws {
        try checkHeldThenReleased(
            { fs, on in
                fs.partialWriteBeforeFailure.store(true, ordering: .relaxed)
                fs.failWrites.store(on, ordering: .releasing)
            }, failures: { $0.writeFailures.load(ordering: .relaxed) })
    }

    func testFailedFsyncsHoldCompletionsToo() throws {
        try checkHeldThenReleased(
            { $0.failSyncs.store($1, ordering: .releasing) }, failures: { $0.syncFailures.load(ordering: .relaxed) })
    }

    /// Closing on a disk that never recovers gives up the held records without running their completions.
    func testCloseWhileFailingDoesNotRunHeldCompletions() throws {
        let directory = TemporaryDirectory()
        let fs = FaultyFileSystem()
        let log = LogCapture()
        let store = try open(directory, fs, log)
        fs.failWrites.store(true, ordering: .releasing)
        let done = Counter()
        store.append([.retainedSet(topic: topic("x"), payload: [1], qos: .atLeastOnce)]) { done.increment() }
        XCTAssertTrue(eventually { !store.isHealthy })
        store.close()
        XCTAssertEqual(done.count, 0)
        XCTAssertEqual(log.count(.error), 2, "the failure, and what closing gave up: \(log.all)")
    }
}
